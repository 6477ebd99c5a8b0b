"A tiny trained run end to end: evaluate_run, backtest_run, predict_run and predict_latest on SQLite."
import json
import numpy as np
import pandas as pd
import pytest

from cryptotft.config import Config, DataError, from_ms, to_ms, with_overrides
from cryptotft.db import connect
from cryptotft.labels import expected_returns, labels_for_storage
from cryptotft.synthetic import synthetic_market

FEATURES = ['log_return', 'range_pct', 'vol_16']
H = 16


def _processed(candles, funding, cfg):
    "SYNTHETIC processed rows: three scale-free features and the labels, per symbol."
    out = []
    for s, c in candles.groupby('symbol', sort=False):
        c = c.reset_index(drop=True)
        lr = np.log(c.close).diff()
        f = pd.DataFrame({'symbol': s, 'interval': '15', 'timestamp': c.timestamp, 'log_return': lr,
                          'range_pct': np.log(c.high / c.low), 'vol_16': lr.rolling(16).std()})
        lab = labels_for_storage(expected_returns(c, cfg.risk_profile, H, funding[funding.symbol == s]))
        out.append(pd.concat([f, lab], axis=1))
    return pd.concat(out, ignore_index=True)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    from cryptotft.dataset import dataset_from_db
    from cryptotft.train import train
    tmp = tmp_path_factory.mktemp('run')
    url = f"sqlite:///{tmp / 'test.db'}"
    cfg = with_overrides(Config(), database=dict(url_override=url),
                         model=dict(sequence_length=8, prediction_horizon=H, d_model=8, num_heads=2, epochs=1, batch_size=256),
                         training=dict(val_fraction=0.2, test_fraction=0.25, walk_forward_folds=1, runs_dir=str(tmp / 'runs')))
    db = connect(url); db.init_db()
    candles, funding = synthetic_market(('BTCUSDT', 'ETHUSDT'), days=16, seed=3)
    db.upsert('raw_market_data', candles.assign(interval='15'))
    db.upsert('funding_rates', funding)
    db.upsert('processed_market_data', _processed(candles, funding, cfg))
    ds = dataset_from_db(db, cfg, features=FEATURES)
    res = train(cfg, ds, run_id='tiny', db=db, progress=False, live_plots=False)
    return cfg, db, res, candles


def test_evaluate_run_reports_the_model_next_to_every_baseline_and_writes_files(run):
    from cryptotft.evaluate import evaluate_run
    cfg, db, res, _ = run
    table = evaluate_run(cfg, 'tiny', runs_dir=cfg.training.runs_dir, db=db, n_boot=50)
    test = table[table.split == 'test']
    assert {'model', 'zero', 'train_mean', 'lightgbm', 'always_long', 'always_short'} == set(test.predictor)
    assert set(table[table.split == 'val'].fold) == {1} and 'model' not in set(table[table.split == 'val'].predictor)
    row = test[(test.predictor == 'model') & (test.side == 'buy') & (test.metric == 'mae')].iloc[0]
    assert row.lo <= row.value <= row.hi
    for f in ('metrics.csv', 'metrics.json', 'metrics.png'): assert (res.run_dir / f).exists()
    assert len(json.loads((res.run_dir / 'metrics.json').read_text())) == len(table)
    assert 'test' in db.read_runs().set_index('run_id').loc['tiny', 'metrics']


def test_backtest_run_trades_the_label_simulator_outcomes_one_position_per_symbol(run):
    from cryptotft.evaluate import backtest_run, BacktestResult
    from cryptotft.dataset import load_dataset
    cfg, db, res, candles = run
    bt = backtest_run(cfg, 'tiny', threshold=-1e9, runs_dir=cfg.training.runs_dir, db=db)  # every bar signals
    assert isinstance(bt, BacktestResult) and bt.stats['n_trades'] > 10
    for _, g in bt.trades.groupby('symbol'):
        assert (g['entry_time'].iloc[1:].to_numpy() >= g['exit_time'].iloc[:-1].to_numpy()).all()  # never overlap
    # the re-simulated returns are the snapshot's labels
    ds = load_dataset(res.run_dir / 'dataset.npz')
    lab = pd.DataFrame({'symbol': np.asarray(ds.symbols)[ds.symbol_id], 'entry_time': from_ms(ds.timestamps).to_numpy(),
                        'buy': ds.labels[:, 0], 'sell': ds.labels[:, 1]})
    m = bt.trades.merge(lab, on=['symbol', 'entry_time'])
    assert len(m) == len(bt.trades)
    assert np.allclose(m['return_pct'], np.where(m['side'] == 'buy', m['buy'], m['sell']), atol=1e-4)
    assert {'random_entry', 'always_long'} == set(bt.references.index) and len(bt.sweep) >= 2
    assert list(bt.summary.index) == ['model', 'random_entry', 'always_long']
    for f in ('backtest.json', 'backtest.png', 'backtest_trades.csv', 'backtest_per_symbol.csv'): assert (res.run_dir / f).exists()
    none = backtest_run(cfg, 'tiny', threshold=1e9, runs_dir=cfg.training.runs_dir, db=db)
    assert none.stats['n_trades'] == 0 and none.stats['total_return'] == 0


def test_predict_run_stores_every_test_window_with_its_label_idempotently(run):
    from cryptotft.predict import predict_run
    from cryptotft.dataset import load_dataset
    cfg, db, res, _ = run
    n = predict_run(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir)
    ds = load_dataset(res.run_dir / 'dataset.npz')
    assert n == len(ds.ends('test'))
    assert predict_run(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir) == n and db.count_rows('model_predictions') == n
    got = db.read_sql("SELECT * FROM model_predictions WHERE run_id = 'tiny' ORDER BY symbol, timestamp")
    assert got[['buy_q10', 'buy_q50', 'sell_q90', 'buy_return', 'sell_return']].notna().all().all()
    assert got['buy_prob'].isna().all()
    assert np.allclose(np.sort(got['buy_return']), np.sort(ds.labels[ds.ends('test'), 0]), atol=1e-5)


def test_predict_latest_scores_the_newest_bar_of_every_symbol(run):
    from cryptotft.predict import predict_latest
    cfg, db, res, candles = run
    sig = predict_latest(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir)
    assert sig['symbol'].tolist() == ['BTCUSDT', 'ETHUSDT']
    newest = candles.groupby('symbol').timestamp.max()
    assert (to_ms(sig['timestamp']) == to_ms(newest.loc[sig['symbol']].to_numpy())).all()
    assert sig['predicted_return'].notna().all() and set(sig['signal']) <= {'long', 'short', 'none'}
    assert ((sig['signal'] != 'none') == (sig['predicted_return'] > 0)).all()
    every = predict_latest(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir, threshold=-1e9)
    assert (every['signal'] == np.where(every['side'] == 'buy', 'long', 'short')).all()


def test_a_missing_run_folder_says_what_to_do(run):
    from cryptotft.evaluate import evaluate_run
    cfg = run[0]
    with pytest.raises(DataError, match='train a model first'):
        evaluate_run(cfg, 'nope', runs_dir=cfg.training.runs_dir)
