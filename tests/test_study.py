"""The study notebook (nbs/reports/study.ipynb) end to end with papermill on a SYNTHETIC market: a tiny TFT and
LightGBM on two walk-forward folds, the configuration chosen on validation, the headline table written as CSV.
(The context inputs' causality and alignment are tested in test_context.py.)"""

import json
import os
import subprocess
import sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / 'nbs' / 'reports' / 'study.ipynb'
TINY = {  # a few minutes on 2 CPU cores: 7 symbols x 30 days, 16-bar windows and horizon, d_model 8, one epoch
    'synthetic': True,
    'symbols': 'BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,BNBUSDT,DOGEUSDT,ADAUSDT',  # 7: neutral IC: 2 beyond 5 fits
    'synthetic_days': 30,
    'fold_starts': '',
    'folds': 2,
    'horizon': 16,
    'sequence_length': 16,
    'd_model': 8,
    'num_heads': 2,
    'epochs': 1,
    'window_stride': 2,
    'n_boot': 30,
    # the vol-scaled, rank-IC-checkpointed one, a cross-sectional rank target, and a seed ensemble (one more tiny
    # run: seed 42 is 'indicators')
    'candidates': 'indicators,context,indicators-vol-rank-ic,indicators-csrank,indicators-x2,context-csneutral-anon',
}


@pytest.fixture(scope='module')
def study(tmp_path_factory):
    "Execute the study once: (executed notebook, out_dir)."
    d = tmp_path_factory.mktemp('study')
    out = d / 'out'
    params = [a for k, v in {**TINY, 'out_dir': str(out)}.items() for a in ('-p', k, str(v))]
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'MPLBACKEND': 'Agg'}
    cmd = [
        sys.executable,
        '-m',
        'papermill',
        '-k',
        'python3',
        '--language',
        'python',
        str(STUDY),
        str(d / 'study.ipynb'),
    ]
    r = subprocess.run([*cmd, *params], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    return d / 'study.ipynb', out


def errors(path):
    nb = json.loads(Path(path).read_text())
    return [
        o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if o['output_type'] == 'error'
    ]


def test_study_runs_end_to_end_on_the_synthetic_market_and_says_so(study):
    nb, out = study
    assert errors(nb) == []
    assert 'SYNTHETIC DATA' in nb.read_text()
    record = json.loads((out / 'study.json').read_text())
    assert record['synthetic'] is True and record['folds'] == ['1', '2'] and record['wall_s'] > 0


def test_headline_has_per_fold_and_pooled_rank_ic_of_the_tft_and_lightgbm_on_both_sides(study):
    _, out = study
    head = pd.read_csv(out / 'headline.csv', dtype={'fold': str})
    for metric in ('rank_ic_time_tied', 'rank_ic_time'):  # outcomes within 5 bp tied (the goal's), and exact
        ic = head[head.metric == metric]
        for predictor in ('model', 'lightgbm'):
            for side in ('buy', 'sell'):
                rows = ic[(ic.predictor == predictor) & (ic.side == side)]
                assert sorted(rows.fold) == ['1', '2', 'pooled']
                assert np.isfinite(rows[['value', 'lo', 'hi']].to_numpy()).all()
                assert (rows.lo <= rows.hi).all()
        tft = ic[ic.predictor == 'model']
        assert np.isfinite(tft[['vs_lightgbm', 'vs_lightgbm_lo', 'vs_lightgbm_hi']].to_numpy()).all()  # paired
    # beyond the mechanics (the two ATRs, the symbol's mean, the funding carry), and what the ranking earns: per fold
    # and pooled, both sides
    for metric in ('rank_ic_neutral', 'top_quarter_excess'):
        rows = head[(head.metric == metric) & head.predictor.isin(['model', 'lightgbm'])]
        assert len(rows) == 2 * 2 * 3 and np.isfinite(rows[['value', 'lo', 'hi']].to_numpy()).all(), metric
    mae = head[head.metric == 'mae']
    assert {'model', 'lightgbm', 'zero', 'train_mean', 'train_median'} <= set(mae.predictor)
    money = head[head.metric == 'backtest_total_return']
    for strategy in ('model', 'lightgbm', 'always_long', 'random_entry'):
        assert sorted(money[money.predictor == strategy].fold) == ['1', '2']


def test_choice_table_records_every_configuration_and_the_walk_forward_uses_the_chosen_one(study):
    _, out = study
    choices = pd.read_csv(out / 'choices.csv')
    tft = choices[choices.model == 'TFT']
    assert sorted(tft.configuration) == [
        'context',
        'context-csneutral-anon',
        'indicators',
        'indicators-csrank',
        'indicators-vol-rank-ic',
        'indicators-x2',
    ]
    assert tft.set_index('configuration').seeds.to_dict() == {
        'indicators': 1,
        'context': 1,
        'indicators-vol-rank-ic': 1,
        'indicators-csrank': 1,
        'indicators-x2': 2,
        'context-csneutral-anon': 1,
    }
    assert np.isfinite(tft[['val_rank_ic_buy', 'val_rank_ic_sell', 'val_rank_ic']].to_numpy()).all()
    assert np.isfinite(tft[['val_rank_ic_tied_buy', 'val_rank_ic_tied_sell', 'val_rank_ic_tied']].to_numpy()).all()
    options = tft.set_index('configuration')[['checkpoint_metric', 'target_scale']]
    assert options.loc['indicators'].tolist() == ['loss', 'none']
    assert options.loc['indicators-vol-rank-ic'].tolist() == ['rank_ic', 'volatility']
    assert options.loc['indicators-csrank'].tolist() == ['loss', 'rank']
    assert options.loc['context-csneutral-anon'].tolist() == ['loss', 'rank_neutral']  # the mechanics taken out
    ranked = tft.set_index('configuration').loc['indicators-vol-rank-ic']
    assert ranked.best_epoch == 1 and np.isfinite(float(ranked.val_rank_ic_per_epoch))  # one epoch, its rank IC
    assert choices.chosen.sum() == 1
    chosen = tft.loc[tft.val_rank_ic_tied.idxmax(), 'configuration']  # the default score: outcomes within 5 bp tie
    assert choices.loc[choices.chosen, 'configuration'].item() == chosen  # the best validation score, nothing else
    assert json.loads((out / 'study.json').read_text())['budget']['tied'] is True
    assert json.loads((out / 'study.json').read_text())['budget']['choose_by'] == 'rank_ic'
    # every TFT and LightGBM row is scored beyond the mechanics too (a name lookup may rank as the control does)
    scored = choices[(choices.model == 'TFT') | choices.configuration.str.startswith('lightgbm')]
    neutral = scored[['val_rank_ic_neutral_buy', 'val_rank_ic_neutral_sell']].to_numpy(float)
    assert len(scored) == 10 and np.isfinite(neutral).all()
    assert np.allclose(scored.val_rank_ic_neutral, neutral.mean(1))
    references = {'lightgbm-indicators', 'lightgbm-context', 'lightgbm-indicators-csrank', 'lightgbm-context-csrank'}
    assert references | {'symbol-mean', 'symbol-mean-csrank'} <= set(choices.configuration)
    metrics = pd.read_csv(out / 'metrics.csv', dtype={'fold': str})
    runs = sorted(set(metrics.run_id.dropna()))
    base = chosen.removesuffix('-x2')
    seeds = [f'-s{s}' for s in range(43, 42 + int(tft.set_index('configuration').seeds[chosen]))]
    assert runs == ['+'.join([f'study-{base}-f{k}', *(f'study-{base}{s}-f{k}' for s in seeds)]) for k in (1, 2)]
    inputs = {'indicators': 51, 'context': 88}[chosen.split('-')[0]]
    first_run = out / 'runs' / runs[0].split('+')[0]
    assert len(json.loads((first_run / 'run.json').read_text())['feature_names']) == inputs


def test_a_seed_ensemble_is_scored_on_the_mean_of_its_seed_runs_predictions(study):
    from cryptotft.dataset import load_dataset
    from cryptotft.evaluate import eval_frame, forecast, panel_rank_ic, stored_predictions

    _, out = study
    row = pd.read_csv(out / 'choices.csv').set_index('configuration').loc['indicators-x2']
    ds = load_dataset(out / 'dataset-indicators.npz')
    ends = ds.ends('val', 1)
    members = [out / 'runs' / rid for rid in ('study-indicators-f1', 'study-indicators-s43-f1')]
    assert [json.loads((m / 'run.json').read_text())['config']['training']['seed'] for m in members] == [42, 43]
    pred = np.mean([stored_predictions(m, ends) for m in members], axis=0)
    ic = panel_rank_ic(eval_frame(ds, ends), forecast(pred).point)
    assert np.allclose([row.val_rank_ic_buy, row.val_rank_ic_sell], ic)
    tied = panel_rank_ic(eval_frame(ds, ends), forecast(pred).point, tied=True)
    assert np.allclose([row.val_rank_ic_tied_buy, row.val_rank_ic_tied_sell], tied)


def test_a_rank_target_study_meets_lightgbm_on_its_own_target_too(tmp_path):
    "When the chosen TFT learns cross-sectional ranks, LightGBM on the same ranks is a reference in every table."
    out = tmp_path / 'out'
    tiny = {
        **TINY,
        'candidates': 'indicators-csrank,indicators-csrank-anon',
        'n_boot': 20,
        'out_dir': str(out),
        'funding': False,  # and without funding: labels of the trade outcome alone
        'tied': False,  # and exact ranks: the choice and the goal read `rank_ic_time`
        'volatility_target_pct': 0.4,  # and levels scaled by volatility, returns of positions sized by the scale
        'risk_sized': True,
        'choose_by': 'rank_ic_neutral',  # and the choice by the validation rank IC beyond the mechanics
    }
    params = [a for k, v in tiny.items() for a in ('-p', k, str(v))]
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'MPLBACKEND': 'Agg'}
    cmd = [sys.executable, '-m', 'papermill', '-k', 'python3', '--language', 'python', str(STUDY)]
    r = subprocess.run(
        [*cmd, str(tmp_path / 'study.ipynb'), *params], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    head = pd.read_csv(out / 'headline.csv', dtype={'fold': str})
    ic = head[(head.metric == 'rank_ic_time') & (head.predictor == 'model')]
    assert np.isfinite(ic[['vs_lightgbm', 'vs_lightgbm_rank']].to_numpy()).all()  # paired with both LightGBMs
    ranked = head[(head.metric == 'rank_ic_time') & (head.predictor == 'lightgbm_rank')]
    assert sorted(ranked.fold.unique()) == ['1', '2', 'pooled']
    bt = pd.read_csv(out / 'backtest.csv')
    assert {'lightgbm', 'lightgbm_rank'} <= set(bt.strategy)
    choices = pd.read_csv(out / 'choices.csv').set_index('configuration')
    chosen = json.loads((out / 'study.json').read_text())['chosen']
    scores = choices.loc[['indicators-csrank', 'indicators-csrank-anon'], 'val_rank_ic_neutral']
    assert scores.notna().all() and chosen == scores.idxmax()
    assert json.loads((out / 'study.json').read_text())['budget']['choose_by'] == 'rank_ic_neutral'
    embedding = {
        name: json.loads((out / 'runs' / f'study-{name}-f1' / 'run.json').read_text())['tft_config']['symbol_embedding']
        for name in ('indicators-csrank', 'indicators-csrank-anon')
    }
    assert embedding == {'indicators-csrank': True, 'indicators-csrank-anon': False}
    means = head[(head.metric == 'rank_ic_time') & head.predictor.isin(['symbol_mean', 'symbol_mean_rank'])]
    assert len(means) == 2 * 2 * 3  # both symbol means, both sides, folds 1, 2 and pooled
    assert np.isfinite(ic[['vs_symbol_mean_rank', 'vs_symbol_mean_rank_lo', 'vs_symbol_mean_rank_hi']].to_numpy()).all()
    # funding=False: every label is the trade without funding, every funding input the default, no carry reference;
    # the levels scaled by volatility and the returns divided by the scale (positions sized by it)
    from cryptotft.config import RiskProfile, to_ms
    from cryptotft.dataset import load_dataset
    from cryptotft.labels import expected_returns, level_scale
    from cryptotft.synthetic import synthetic_market

    assert json.loads((out / 'study.json').read_text())['budget']['funding'] is False
    assert json.loads((out / 'study.json').read_text())['budget']['tied'] is False
    ds = load_dataset(out / 'dataset-context.npz')
    assert np.all(ds.features[:, ds.feature_names.index('funding_bp')] == 1.0)
    assert 'funding-carry' not in choices.index  # constant funding inputs: no carry to rank by
    candles, events = synthetic_market(TINY['symbols'].split(','), days=TINY['synthetic_days'], seed=42)
    btc = candles[candles.symbol == 'BTCUSDT'].sort_values('timestamp').reset_index(drop=True)
    mine = ds.symbol_id == list(ds.symbols).index('BTCUSDT')
    got = ds.labels[mine][:, list(ds.label_names).index('buy_return')]
    at = np.searchsorted(to_ms(btc['timestamp']), ds.timestamps[mine])  # the dataset's BTC rows among the candles
    assert np.array_equal(to_ms(btc['timestamp'])[at], ds.timestamps[mine])
    risk = RiskProfile(volatility_target_pct=0.4)
    assert json.loads((out / 'study.json').read_text())['budget']['volatility_target_pct'] == 0.4
    scale = level_scale(btc['high'], btc['low'], btc['close'], risk)[at]
    assert np.isfinite(scale).any() and np.nanstd(scale) > 0.05  # the scale moves on this market
    bare = expected_returns(btc, risk, TINY['horizon'], None, '15')['buy_return'].to_numpy()[at] / scale
    paid = expected_returns(btc, risk, TINY['horizon'], events[events.symbol == 'BTCUSDT'], '15')['buy_return']
    assert np.allclose(got, bare, equal_nan=True) and not np.allclose(got, paid.to_numpy()[at] / scale, equal_nan=True)
    fixed = expected_returns(btc, RiskProfile(), TINY['horizon'], None, '15')['buy_return'].to_numpy()[at]
    assert not np.allclose(got, fixed, equal_nan=True)


def test_the_symbol_mean_reference_is_each_symbols_training_mean_scored_on_validation(study):
    "The `symbol-mean` rows of the choice table: a predictor that knows only the symbol's name, recomputed here."
    from cryptotft.dataset import load_dataset
    from cryptotft.evaluate import eval_frame, panel_rank_ic

    _, out = study
    choices = pd.read_csv(out / 'choices.csv').set_index('configuration')
    ds = load_dataset(out / 'dataset-context.npz')
    train, val = ds.ends('train', 1), ds.ends('val', 1)
    frame = eval_frame(ds, val)
    for name, y in (
        ('symbol-mean', ds.targets('regression')),
        ('symbol-mean-csrank', ds.targets('regression', 'rank')),
    ):
        means = {s: np.nanmean(y[train][ds.symbol_id[train] == s], axis=0) for s in np.unique(ds.symbol_id[val])}
        pred = np.stack([means[s] for s in ds.symbol_id[val]])
        assert np.allclose(
            choices.loc[name, ['val_rank_ic_buy', 'val_rank_ic_sell']].to_numpy(float), panel_rank_ic(frame, pred)
        )
        assert choices.loc[name, 'inputs'] == 0
    # and `volatility-mean`: the same for each decile of the window's ATR, edges from the training windows
    from cryptotft.evaluate import VOLATILITY_INPUT, volatility_means

    atr = ds.features[:, ds.feature_names.index(VOLATILITY_INPUT)]
    for name, y in (
        ('volatility-mean', ds.targets('regression')),
        ('volatility-mean-csrank', ds.targets('regression', 'rank')),
    ):
        pred = volatility_means(y[train], atr[train], atr[val])
        assert np.allclose(
            choices.loc[name, ['val_rank_ic_buy', 'val_rank_ic_sell']].to_numpy(float), panel_rank_ic(frame, pred)
        )
        assert choices.loc[name, 'inputs'] == 1


def test_the_neutral_validation_score_is_the_rank_ic_beyond_the_mechanics(study):
    """`val_rank_ic_neutral`: each row's validation forecast neutralised against the context set's ATRs, funding
    carry and symbol mean rank (recomputed here); the controls themselves have none."""
    from cryptotft.dataset import load_dataset
    from cryptotft.evaluate import (
        VOLATILITY_INPUT,
        baseline_predictions,
        eval_frame,
        mechanics_controls,
        panel_rank_ic,
        volatility_means,
    )

    _, out = study
    choices = pd.read_csv(out / 'choices.csv').set_index('configuration')
    ds = load_dataset(out / 'dataset-context.npz')
    train, val = ds.ends('train', 1), ds.ends('val', 1)
    frame = eval_frame(ds, val)
    refs = baseline_predictions(ds, train, val, seed=42, target_scale='rank')
    controls = mechanics_controls(ds, val, refs, 'rank')
    assert sorted(controls) == ['atr', 'atr_day', 'funding_carry', 'symbol_mean']
    atr = ds.features[:, ds.feature_names.index(VOLATILITY_INPUT)]
    pred = volatility_means(ds.targets('regression', 'rank')[train], atr[train], atr[val])
    want = panel_rank_ic(frame, pred, controls=controls)
    got = choices.loc['volatility-mean-csrank', ['val_rank_ic_neutral_buy', 'val_rank_ic_neutral_sell']]
    assert np.allclose(got.to_numpy(float), want)
    plain = choices.loc['volatility-mean-csrank', ['val_rank_ic_tied_buy', 'val_rank_ic_tied_sell']].to_numpy(float)
    assert not np.allclose(want, plain)  # another number than the plain tied rank IC
    for control in ('symbol-mean-csrank', 'funding-carry'):  # a control itself ranks nothing beyond the controls
        assert choices.loc[control, ['val_rank_ic_neutral_buy', 'val_rank_ic_neutral_sell']].isna().all()
    # the choice score's interval (here the tied rank IC, the default) over the study's day-block resamples
    from cryptotft.evaluate import bootstrap_block, bootstrap_weights, panel_rank_ic_resampled

    n = frame['timestamp'].nunique()
    W = bootstrap_weights(n, TINY['n_boot'], bootstrap_block(TINY['horizon']), 42)
    score = panel_rank_ic_resampled(frame, pred, W, tied=True).mean(1)
    row = choices.loc['volatility-mean-csrank']
    assert np.allclose([row.score_lo, row.score_hi], np.percentile(score, [2.5, 97.5]))
    chosen = choices.index[choices.chosen].item()
    assert choices.loc[chosen, ['vs_chosen_lo', 'vs_chosen_hi']].tolist() == [0.0, 0.0]  # paired with itself
    assert (choices.score_lo.dropna() <= choices.score_hi.dropna()).all() and choices.score_lo.notna().sum() >= 9
    # the choice score per calendar month of validation: the same score over each month's bars alone
    by_month = pd.read_csv(out / 'choices_by_month.csv', index_col='configuration')
    month = frame['timestamp'].dt.strftime('%Y-%m').to_numpy()
    assert list(by_month.columns) == sorted(set(month)) and set(by_month.index) == set(choices.index)
    for m in by_month.columns:
        k = month == m
        want = np.mean(panel_rank_ic(frame[k].reset_index(drop=True), pred[k], tied=True))
        assert np.isclose(by_month.loc['volatility-mean-csrank', m], want)


def test_the_funding_carry_reference_is_the_last_rate_times_the_settlements_due(study):
    "The `funding-carry` row: the funding a long pays (a short receives) over the horizon, counted here bar by bar."
    from cryptotft.dataset import load_dataset
    from cryptotft.evaluate import eval_frame, panel_rank_ic

    _, out = study
    choices = pd.read_csv(out / 'choices.csv').set_index('configuration')
    assert 'funding-carry' in choices.index and 'lightgbm-indicators' in choices.index
    assert not any(c.startswith('funding-carry-') for c in choices.index)  # only the context inputs hold funding
    ds = load_dataset(out / 'dataset-context.npz')
    val = ds.ends('val', 1)
    col = {n: ds.features[val, ds.feature_names.index(n)].astype(float) for n in ('funding_bp', 'hours_to_funding')}
    every = ds.features[val, ds.feature_names.index('funding_interval_h')].astype(float)
    window_h = TINY['horizon'] * 0.25  # 15-minute bars
    settlements = np.zeros(len(val))
    for i in range(len(val)):  # settlements at hours_to_funding, + every, + 2 every, ... up to the window's end
        t = col['hours_to_funding'][i]
        while t <= window_h:
            settlements[i] += 1
            t += every[i]
    cost = col['funding_bp'] / 100 * settlements
    assert settlements.max() >= 1  # a 4-hour window of 8-hourly settlements: some bars see one
    pred = np.stack([-cost, cost], axis=1)
    got = choices.loc['funding-carry', ['val_rank_ic_buy', 'val_rank_ic_sell']].to_numpy(float)
    assert np.allclose(got, panel_rank_ic(eval_frame(ds, val), pred), equal_nan=True)
    got = choices.loc['funding-carry', ['val_rank_ic_tied_buy', 'val_rank_ic_tied_sell']].to_numpy(float)
    assert np.allclose(got, panel_rank_ic(eval_frame(ds, val), pred, tied=True), equal_nan=True)
    assert choices.loc['funding-carry', 'inputs'] == 3
