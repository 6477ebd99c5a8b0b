"""Metrics against scikit-learn / scipy, bootstrap coverage, no false discovery and seed ensembles of stored
predictions (the backtest: test_backtest)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.signal import lfilter
from sklearn import metrics as skm

from cryptotft.config import Config, ConfigError, DataError, from_ms, with_overrides
from cryptotft.evaluate import (
    auc,
    block_bootstrap_indices,
    bootstrap_weights,
    ensemble_predictions,
    evaluate_split,
    f1,
    ic_symbol,
    ic_time,
    mae,
    precision,
    r2,
    rank_ic_symbol,
    rank_ic_time,
    recall,
    rmse,
    side_sample,
    win_rate,
    avg_trade,
    forecast,
    save_predictions,
    stored_predictions,
)


def _ar1(rng, shape, phi):
    "Unit-variance AR(1) series along the last axis."
    e = rng.standard_normal((*shape[:-1], shape[-1] + 200))
    return lfilter([1], [1, -phi], e, axis=-1)[..., 200:] * np.sqrt(1 - phi**2)


@pytest.mark.parametrize('seed', [0, 1])
def test_metrics_of_a_resample_equal_sklearn_on_the_repeated_rows(seed):
    rng = np.random.default_rng(seed)
    n = 300
    y, p = rng.normal(size=n), rng.normal(size=n) + 0.3 * rng.normal(size=n)
    p[:20] = 0.0  # ties in the score
    s = side_sample(y, p, np.arange(n), np.zeros(n, int), n, 1)
    W = np.vstack([np.ones(n), bootstrap_weights(n, 3, 30, seed)])
    reps = [np.arange(n), *block_bootstrap_indices(n, 3, 30, seed)]
    for b, rep in enumerate(reps):
        yt, yp = y[rep], p[rep]
        lab, dec = yt > 0, yp > 0
        assert np.isclose(mae(W, s)[b], skm.mean_absolute_error(yt, yp))
        assert np.isclose(rmse(W, s)[b], np.sqrt(skm.mean_squared_error(yt, yp)))
        assert np.isclose(r2(W, s)[b], skm.r2_score(yt, yp))
        assert np.isclose(precision(W, s)[b], skm.precision_score(lab, dec))
        assert np.isclose(recall(W, s)[b], skm.recall_score(lab, dec))
        assert np.isclose(f1(W, s)[b], skm.f1_score(lab, dec))
        assert np.isclose(auc(W, s, max_cells=500)[b], skm.roc_auc_score(lab, yp))  # chunked path
        assert np.isclose(win_rate(W, s)[b], lab[dec].mean()) and np.isclose(avg_trade(W, s)[b], yt[dec].mean())


def test_information_coefficients_equal_scipy_per_timestamp_and_per_symbol():
    rng = np.random.default_rng(5)
    T, S = 40, 6
    Y = rng.normal(size=(T, S))
    X = 0.5 * Y + rng.normal(size=(T, S))
    X[rng.random((T, S)) < 0.1] = np.nan
    r, c = np.nonzero(np.isfinite(X))
    s = side_sample(Y[r, c], X[r, c], r, c, T, S)
    one = np.ones((1, T))
    rows = [(X[t][np.isfinite(X[t])], Y[t][np.isfinite(X[t])]) for t in range(T)]
    rows = [(a, b) for a, b in rows if len(a) >= 3]
    cols = [(X[np.isfinite(X[:, j]), j], Y[np.isfinite(X[:, j]), j]) for j in range(S)]
    assert np.isclose(ic_time(one, s)[0], np.mean([stats.pearsonr(a, b)[0] for a, b in rows]))
    assert np.isclose(rank_ic_time(one, s)[0], np.mean([stats.spearmanr(a, b)[0] for a, b in rows]))
    assert np.isclose(ic_symbol(one, s)[0], np.mean([stats.pearsonr(a, b)[0] for a, b in cols]))
    assert np.isclose(rank_ic_symbol(one, s)[0], np.mean([stats.spearmanr(a, b)[0] for a, b in cols]))


def test_block_bootstrap_intervals_cover_the_true_mean_of_ar1_series():
    rng = np.random.default_rng(0)
    n, n_series = 96 * 30, 200
    x = _ar1(rng, (n_series, n), 0.5)  # true mean 0
    means = x @ bootstrap_weights(n, 400, 96, seed=1).T / n  # (series, resamples)
    lo, hi = np.percentile(means, [2.5, 97.5], axis=1)
    coverage = np.mean((lo <= 0) & (0 <= hi))
    assert 0.88 <= coverage <= 0.99, coverage
    # resampling single bars instead of days ignores the autocorrelation and under-covers badly
    naive = x @ bootstrap_weights(n, 400, 1, seed=1).T / n
    lo1, hi1 = np.percentile(naive, [2.5, 97.5], axis=1)
    assert np.mean((lo1 <= 0) & (0 <= hi1)) < coverage - 0.1


def test_block_bootstrap_intervals_cover_the_true_information_coefficient():
    rng = np.random.default_rng(1)
    n, true_ic = 96 * 30, 0.5 / np.sqrt(1.25)
    W = bootstrap_weights(n, 300, 96, seed=2)
    hits = 0
    for _ in range(200):
        p, noise = _ar1(rng, (2, n), 0.7)
        s = side_sample(0.5 * p + noise, p, np.arange(n), np.zeros(n, int), n, 1)
        lo, hi = np.percentile(ic_symbol(W, s), [2.5, 97.5])
        hits += lo <= true_ic <= hi
    assert 0.88 <= hits / 200 <= 0.99, hits


def _planted_panel(signal: float, n_days=40, symbols=4, seed=0):
    "A processed frame whose labels load on feature f0 with `signal` (0 = pure noise), noise autocorrelated."
    rng = np.random.default_rng(seed)
    n = 96 * n_days
    frames = []
    for k in range(symbols):
        f = rng.normal(size=(n, 3))
        noise = _ar1(rng, (2, n), 0.8).T * 1.5
        frames.append(
            pd.DataFrame(
                {
                    'symbol': f'S{k}USDT',
                    'timestamp': from_ms(np.arange(n) * 900_000),
                    'f0': f[:, 0],
                    'f1': f[:, 1],
                    'f2': f[:, 2],
                    'buy_return': signal * f[:, 0] + noise[:, 0],
                    'sell_return': -signal * f[:, 0] + noise[:, 1],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _dataset(df):
    from cryptotft.dataset import dataset_from_frame

    cfg = with_overrides(
        Config(),
        model=dict(sequence_length=8, prediction_horizon=4),
        training=dict(val_fraction=0.15, test_fraction=0.3),
    )
    return dataset_from_frame(df, cfg, features=['f0', 'f1', 'f2'])


def _tiny_tft(ds, epochs=3):
    "A tiny TFT fitted on the training windows (the real trainer is exercised in test_train)."
    import keras
    from cryptotft.dataset import get_batch
    from cryptotft.tft import TFTConfig, build_tft, prediction_loss

    keras.utils.set_random_seed(0)
    tc = TFTConfig(
        n_features=ds.features.shape[1],
        n_symbols=len(ds.symbols),
        sequence_length=8,
        d_model=8,
        num_heads=2,
        dropout=0.0,
    )
    model = build_tft(tc)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss={'prediction': prediction_loss(tc)})
    x, y = get_batch(ds, ds.ends('train'))
    model.fit(x, {'prediction': y}, batch_size=256, epochs=epochs, verbose=0)
    return model


@pytest.mark.parametrize('signal', [0.5, 0.0])
def test_model_and_lightgbm_beat_zero_only_when_a_signal_is_planted(signal):
    from cryptotft.evaluate import point_forecast
    from cryptotft.train import predict_windows

    ds = _dataset(_planted_panel(signal))
    model = _tiny_tft(ds)
    test = ds.ends('test')
    pred = point_forecast(predict_windows(model, ds, test), (0.1, 0.5, 0.9))
    table = evaluate_split(ds, ds.ends('train'), test, pred, 'regression', n_boot=300)
    table = table[table.reference == 'zero']  # the model is also compared with every baseline: here, with zero
    key = table.set_index(['predictor', 'side', 'metric'])
    for who in ('model', 'lightgbm'):
        for side in ('buy', 'sell'):
            for m in ('r2', 'mae', 'rank_ic_time', 'ic_symbol'):
                beats = bool(key.loc[(who, side, m), 'beats_reference'])
                assert beats == (signal > 0), (who, side, m, key.loc[(who, side, m)].to_dict())
    for who in ('train_mean', 'always_long', 'always_short'):
        assert not table[(table.predictor == who) & table.metric.isin(['r2', 'rank_ic_time', 'auc'])][
            'beats_reference'
        ].any()
    assert {'zero', 'train_mean', 'lightgbm', 'always_long', 'always_short', 'model'} <= set(table.predictor)


def fake_run(path, pred, ends=(2, 5, 9), target_scale='none', quantiles=(0.1, 0.5, 0.9)):
    "A run folder as the trainer leaves it, for what an ensemble reads: model file, run.json, stored predictions."
    path.mkdir()
    (path / 'model.keras').write_bytes(path.name.encode())
    meta = {
        'task': 'regression',
        'config': {'training': {'target_scale': target_scale}},
        'tft_config': {'quantiles': list(quantiles), 'mean_head': True},
    }
    (path / 'run.json').write_text(json.dumps(meta))
    save_predictions(path, ends, pred)
    return path


def test_ensemble_predictions_average_the_stored_predictions_of_two_seed_runs(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 2, 4))  # windows 2, 5, 9: mean, q10, q50, q90 per side
    seeds = [fake_run(tmp_path / 's42', a), fake_run(tmp_path / 's43', b)]
    mix = ensemble_predictions(seeds, [9, 5])
    np.testing.assert_allclose(mix, (a[[2, 1]] + b[[2, 1]]) / 2)  # element-wise, in the order of `ends`
    np.testing.assert_allclose(forecast(mix).point, (forecast(a).point[[2, 1]] + forecast(b).point[[2, 1]]) / 2)
    np.testing.assert_array_equal(ensemble_predictions(seeds[:1], [5, 2]), stored_predictions(seeds[0], [5, 2]))


def test_ensemble_predictions_refuse_runs_that_do_not_mean_the_same_thing(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 2, 4))
    base = fake_run(tmp_path / 'base', a)
    for odd in (
        fake_run(tmp_path / 'vol', a, target_scale='volatility'),
        fake_run(tmp_path / 'q', a, quantiles=(0.2, 0.5, 0.8)),
    ):
        with pytest.raises(ConfigError, match='cannot be averaged'):
            ensemble_predictions([base, odd], [2])
    with pytest.raises(ConfigError, match='predict'):
        ensemble_predictions([base, fake_run(tmp_path / 'shape', a[:, :, :3])], [2])
    with pytest.raises(DataError, match='no current predictions'):
        ensemble_predictions([base, fake_run(tmp_path / 'short', a[:2], ends=(2, 5))], [2, 9])  # 9 not stored
    with pytest.raises(ConfigError, match='at least one'):
        ensemble_predictions([], [2])


def test_a_rank_target_run_loads_as_scores_with_a_warning(tiny_run, caplog):
    "A run that learned cross-sectional ranks says so where it is loaded, and nothing multiplies its scores."
    import shutil
    from pathlib import Path
    from cryptotft.evaluate import load_run_artifacts

    cfg, _, res, _ = tiny_run
    rank_dir = Path(cfg.training.runs_dir) / 'tiny_rank'
    shutil.copytree(res.run_dir, rank_dir, dirs_exist_ok=True)
    meta = json.loads((rank_dir / 'run.json').read_text())
    meta['config']['training']['target_scale'] = 'rank'
    (rank_dir / 'run.json').write_text(json.dumps(meta))
    with caplog.at_level('WARNING', logger='cryptotft.evaluate'):
        art = load_run_artifacts(cfg, 'tiny_rank', runs_dir=cfg.training.runs_dir)
    assert art.target_scale == 'rank'
    assert 'scores in [-1, 1], not percent' in caplog.text
    ends = art.ds.ends('val')
    scores = np.random.default_rng(0).uniform(-1, 1, (len(ends), 2)).astype(np.float32)
    assert np.array_equal(art.ds.unscale(scores, ends, art.target_scale), scores)
    plain = load_run_artifacts(cfg, 'tiny', runs_dir=cfg.training.runs_dir)
    assert plain.target_scale == 'none'
