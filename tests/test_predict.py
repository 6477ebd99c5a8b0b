"A tiny trained run (conftest.tiny_run) end to end: evaluate_run, predict_run and predict_latest on SQLite."

import json
import numpy as np
import pytest

from cryptotft.config import DataError, to_ms


def test_evaluate_run_reports_the_model_next_to_every_baseline_and_writes_files(tiny_run):
    from cryptotft.evaluate import evaluate_run

    cfg, db, res, _ = tiny_run
    table = evaluate_run(cfg, 'tiny', runs_dir=cfg.training.runs_dir, db=db, n_boot=50)
    test = table[table.split == 'test']
    names = {'model', 'model_median', 'zero', 'train_mean', 'train_median', 'lightgbm', 'symbol_mean'}
    names |= {'always_long', 'always_short'}
    assert names == set(test.predictor) and set(table.split) == {'test'}
    versus = table[(table.predictor == 'model') & (table.reference != 'zero')]
    assert {'lightgbm', 'train_median', 'model_median'} <= set(versus.reference)  # the model against every baseline
    row = test[(test.predictor == 'model') & (test.side == 'buy') & (test.metric == 'mae')].iloc[0]  # vs zero first
    assert row.lo <= row.value <= row.hi
    for f in ('metrics.csv', 'metrics.json', 'metrics.png'):
        assert (res.run_dir / f).exists()
    assert len(json.loads((res.run_dir / 'metrics.json').read_text())) == len(table)
    assert 'test' in db.read_runs().set_index('run_id').loc['tiny', 'metrics']


def test_predict_run_stores_every_test_window_with_its_label_idempotently(tiny_run):
    from cryptotft.predict import predict_run
    from cryptotft.dataset import load_dataset

    cfg, db, res, _ = tiny_run
    n = predict_run(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir)
    ds = load_dataset(res.run_dir / 'dataset.npz')
    assert n == len(ds.ends('test'))
    assert predict_run(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir) == n
    got = db.read_sql("SELECT * FROM model_predictions WHERE run_id = 'tiny' ORDER BY symbol, timestamp")
    assert len(got) == n  # written twice, stored once (other runs share this session's database)
    assert got[['buy_q10', 'buy_q50', 'sell_q90', 'buy_return', 'sell_return']].notna().all().all()
    assert got['buy_prob'].isna().all()
    assert np.allclose(np.sort(got['buy_return']), np.sort(ds.labels[ds.ends('test'), 0]), atol=1e-5)


def test_predict_latest_scores_the_newest_bar_of_every_symbol(tiny_run):
    from cryptotft.predict import predict_latest

    cfg, db, res, candles = tiny_run
    sig = predict_latest(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir)
    assert sig['symbol'].tolist() == ['BTCUSDT', 'ETHUSDT']
    newest = candles.groupby('symbol').timestamp.max()
    assert (to_ms(sig['timestamp']) == to_ms(newest.loc[sig['symbol']].to_numpy())).all()
    assert sig['predicted_return'].notna().all() and set(sig['signal']) <= {'long', 'short', 'none'}
    strategy = json.loads((res.run_dir / 'run.json').read_text()).get('strategy') or {}
    threshold = strategy.get('threshold', 0.0)  # the one chosen on validation, once a backtest has chosen it
    assert ((sig['signal'] != 'none') == (sig['predicted_return'] > threshold)).all()
    every = predict_latest(cfg, db, 'tiny', runs_dir=cfg.training.runs_dir, threshold=-1e9)
    assert (every['signal'] == np.where(every['side'] == 'buy', 'long', 'short')).all()


def test_a_missing_run_folder_says_what_to_do(tiny_run):
    from cryptotft.evaluate import evaluate_run

    cfg = tiny_run[0]
    with pytest.raises(DataError, match='train a model first'):
        evaluate_run(cfg, 'nope', runs_dir=cfg.training.runs_dir)
