"The backtest: trades by hand, one position at a time, and the same results from the snapshot or the database."

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptotft.backtest import (
    EXIT_BARS,
    backtest,
    backtest_run,
    has_exit_bars,
    reference_predictions,
    select_trades,
    threshold_sweep,
    trade_frame,
)
from cryptotft.config import Config, DataError, RiskProfile, from_ms, with_overrides
from cryptotft.labels import expected_returns


def _three_trade_frame():
    ex = pd.DataFrame(
        {
            'timestamp': from_ms(np.arange(7) * 900_000),
            'open': [100, 100, 101, 102, 102, 101, 101.0],
            'high': [100, 101.3, 101, 102.2, 102, 101, 101.0],
            'low': [100, 100, 100.4, 101.8, 100.5, 101, 101.0],
            'close': [100, 101, 100.5, 102, 101, 101, 101.0],
        }
    )
    return pd.concat([ex[['timestamp']].assign(symbol='X'), expected_returns(ex, RiskProfile(), horizon=2)], axis=1)


def test_backtest_reproduces_three_trades_by_hand_with_overlap_skipping_and_fees():
    frame = _three_trade_frame()
    pred = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0, 0], [0, 0], [0, 0.0]])
    res = backtest(frame, pred, threshold=0.5, risk_fraction=0.1, leverage=5)
    want = np.array(
        [
            -0.055 + 0.2 * (1.2 - 0.02 * 1.012) + 0.8 * (0.5 - 0.055 * 1.005),  # TP1 then timeout
            -0.055 - (102 / 100.5 - 1) * 100 - 0.055 * 102 / 100.5,  # short gapped through its stop
            -0.055 - 1.1 - 0.055 * 0.989,
        ]
    )  # long stopped at -1.1%
    assert res.trades['side'].tolist() == ['buy', 'sell', 'buy']
    assert (res.trades['entry_time'] == from_ms(np.array([0, 2, 3]) * 900_000)).all()  # bar 1 skipped: overlap
    assert (res.trades['exit_time'] == from_ms(np.array([2, 3, 4]) * 900_000)).all()
    assert np.allclose(res.trades['return_pct'], want)
    assert np.allclose(res.trades['pnl'], 0.5 * want / 100)
    assert np.isclose(res.stats['total_return'], np.prod(1 + 0.5 * want / 100) - 1)
    eq = np.cumprod(1 + 0.5 * want / 100)
    assert np.isclose(res.stats['max_drawdown'], eq[-1] / eq[0] - 1)
    assert np.isclose(res.stats['profit_factor'], want[0] / -want[1:].sum())
    assert res.stats['n_trades'] == 3 and np.isclose(res.stats['avg_trade_pct'], want.mean())
    assert res.per_symbol['n_trades'].tolist() == [3]


def test_select_trades_takes_the_better_side_and_waits_for_the_exit():
    t = np.arange(8) * 900_000
    pred = np.array([[2, 1], [3, 0], [0, 0], [1, 4], [2, 0], [0, 0], [0, 0], [5, 0.0]])
    bars = np.full((8, 2), 3)
    rows, side = select_trades(t, pred, bars, np.ones((8, 2)), 0.5)
    assert rows.tolist() == [0, 3, 7] and side.tolist() == [0, 1, 0]
    # a missing bar: exits are measured in time, so the entry after a gap is still correct
    rows, _ = select_trades(np.r_[0, 1, 5, 6] * 900_000, np.ones((4, 2)), np.full((4, 2), 2), np.ones((4, 2)), 0.0)
    assert rows.tolist() == [0, 2]


def test_threshold_sweep_and_references_trade_less_as_the_bar_rises():
    frame = _three_trade_frame()
    pred = np.array([[1, 0], [1, 0], [0, 2], [3, 0], [0, 0], [0, 0], [0, 0.0]])
    sw = threshold_sweep(frame, pred, [0.5, 1.5, 2.5, 9])
    assert sw['n_trades'].tolist() == [3, 2, 1, 0]
    refs = reference_predictions(pred, 0.5, seed=0)
    assert backtest(frame, refs['always_long'], 0.5).trades['side'].eq('buy').all()


def _no_database(cfg):
    "`cfg` pointing at a server that is not there (port 1): any use of the database fails."
    return with_overrides(cfg, database=dict(url_override='postgresql://postgres@127.0.0.1:1/none'))


def test_a_dataset_without_exit_bar_values_is_not_backtested_from_nan_exits():
    from cryptotft.dataset import dataset_from_frame

    n = 96 * 4
    df = pd.DataFrame(
        {
            'symbol': 'XUSDT',
            'timestamp': from_ms(np.arange(n) * 900_000),
            'f0': np.sin(np.arange(n)),
            'buy_return': 0.1,
            'sell_return': -0.1,
        }
    )  # returns but no exit-bar columns
    cfg = with_overrides(
        Config(),
        model=dict(sequence_length=4, prediction_horizon=2),
        training=dict(val_fraction=0.2, test_fraction=0.2),
    )
    ds = dataset_from_frame(df, cfg, features=['f0'])
    assert set(EXIT_BARS) <= set(ds.label_names) and not has_exit_bars(ds)
    with pytest.raises(DataError, match='no exit bars'):
        trade_frame(ds, ds.ends('test'))


def test_backtest_run_needs_no_database_when_the_snapshot_has_exit_bars(tiny_run):
    from cryptotft.dataset import load_dataset

    cfg, _, res, _ = tiny_run
    cfg = _no_database(cfg)  # like a rented GPU: the run folder only
    bt = backtest_run(cfg, 'tiny', threshold=-1e9, runs_dir=cfg.training.runs_dir)  # every bar signals
    assert bt.stats['n_trades'] > 10
    for _, g in bt.trades.groupby('symbol'):
        assert (g['entry_time'].iloc[1:].to_numpy() >= g['exit_time'].iloc[:-1].to_numpy()).all()  # never overlap
    # each trade is the snapshot's label of its entry bar: return and exit
    ds = load_dataset(res.run_dir / 'dataset.npz')
    lab = pd.DataFrame(
        {
            'symbol': np.asarray(ds.symbols)[ds.symbol_id],
            'entry_time': from_ms(ds.timestamps).to_numpy(),
            'buy': ds.label('buy_return'),
            'sell': ds.label('sell_return'),
            'buy_bars': ds.label('buy_exit_bars'),
            'sell_bars': ds.label('sell_exit_bars'),
        }
    )
    m = bt.trades.merge(lab, on=['symbol', 'entry_time'])
    assert len(m) == len(bt.trades)
    buy = m['side'] == 'buy'
    assert np.allclose(m['return_pct'], np.where(buy, m['buy'], m['sell']), atol=1e-4)
    held = (m['exit_time'] - m['entry_time']) / pd.Timedelta(minutes=15)
    assert np.array_equal(held.to_numpy(), np.where(buy, m['buy_bars'], m['sell_bars']))
    assert {'random_entry', 'always_long'} == set(bt.references.index) and len(bt.sweep) >= 2
    assert list(bt.summary.index) == ['model', 'random_entry', 'always_long']
    for f in ('backtest.json', 'backtest.png', 'backtest_trades.csv', 'backtest_per_symbol.csv'):
        assert (res.run_dir / f).exists()
    none = backtest_run(cfg, 'tiny', threshold=1e9, runs_dir=cfg.training.runs_dir)
    assert none.stats['n_trades'] == 0 and none.stats['total_return'] == 0


def test_an_old_snapshot_backtests_from_the_database_with_identical_results(tiny_run):
    from cryptotft.dataset import LABELS, export_dataset, load_dataset

    cfg, db, res, _ = tiny_run
    old_dir = Path(cfg.training.runs_dir) / 'tiny_v1'
    shutil.copytree(res.run_dir, old_dir, dirs_exist_ok=True)
    ds = load_dataset(old_dir / 'dataset.npz')
    export_dataset(
        dataclasses.replace(ds, labels=np.ascontiguousarray(ds.labels[:, :4]), label_names=LABELS[:4]),
        old_dir / 'dataset.npz',
    )  # a version-1 snapshot: returns and profit flags only
    assert not has_exit_bars(load_dataset(old_dir / 'dataset.npz'))
    new = backtest_run(_no_database(cfg), 'tiny', runs_dir=cfg.training.runs_dir)
    old = backtest_run(cfg, 'tiny_v1', runs_dir=cfg.training.runs_dir, db=db)
    assert old.sweep['n_trades'].max() > 0  # the comparison covers real trades
    pd.testing.assert_frame_equal(new.trades, old.trades)
    pd.testing.assert_series_equal(pd.Series(new.stats), pd.Series(old.stats))
    pd.testing.assert_frame_equal(new.references, old.references)
    pd.testing.assert_frame_equal(new.sweep, old.sweep)
    with pytest.raises(DataError, match='cannot reach database'):  # an old snapshot does need the database
        backtest_run(_no_database(cfg), 'tiny_v1', runs_dir=cfg.training.runs_dir)


def test_the_threshold_is_chosen_on_validation_and_test_data_cannot_change_it(tiny_run):
    import json

    from cryptotft.backtest import validation_strategy
    from cryptotft.config import with_overrides
    from cryptotft.evaluate import load_run_artifacts

    cfg, _, res, _ = tiny_run
    cfg = _no_database(cfg)
    bt = backtest_run(cfg, 'tiny', runs_dir=cfg.training.runs_dir)
    recorded = json.loads((res.run_dir / 'run.json').read_text())['strategy']
    assert bt.threshold == recorded['threshold']  # the validation choice is the one applied to test
    rule = with_overrides(
        cfg, training={'threshold_rule': recorded['rule'], 'threshold_min_trades': recorded['min_trades']}
    )
    art = load_run_artifacts(rule, 'tiny', cfg.training.runs_dir)
    fresh = validation_strategy(art, rule)
    assert fresh['threshold'] == recorded['threshold']
    test = art.ds.ends('test')
    labels = art.ds.labels.copy()
    labels[test] = -10 * labels[test]  # another test period: every outcome reversed and inflated
    tampered = art._replace(ds=dataclasses.replace(art.ds, labels=labels))
    assert validation_strategy(tampered, rule) == fresh
    val = art.ds.ends('val')
    labels[val] = -10 * labels[val]  # while the validation data does decide it
    moved = validation_strategy(art._replace(ds=dataclasses.replace(art.ds, labels=labels)), rule)
    assert moved['validation_sweep'] != fresh['validation_sweep']
    doc = json.loads((res.run_dir / 'backtest.json').read_text())
    assert doc['strategy']['threshold'] == bt.threshold and 'diagnostic_test_sweep' in doc


def test_with_a_database_the_run_is_also_backtested_as_a_capped_portfolio(tiny_run):
    import json

    from cryptotft.config import with_overrides

    cfg, db, res, _ = tiny_run
    capped = with_overrides(cfg, training={'max_positions': 1})
    bt = backtest_run(capped, 'tiny', threshold=-1e9, runs_dir=cfg.training.runs_dir, db=db)  # every bar signals
    assert list(bt.portfolio.index) == ['model', 'always_long', 'random_entry']
    assert bt.portfolio.loc['model', 'n_trades'] > 0 and bt.portfolio.loc['model', 'exposure'] <= 1
    trades = pd.read_csv(res.run_dir / 'portfolio_trades.csv', parse_dates=['entry_time', 'exit_time'])
    trades = trades.sort_values('entry_time')
    assert (trades['entry_time'].iloc[1:].to_numpy() >= trades['exit_time'].iloc[:-1].to_numpy()).all()  # cap 1
    doc = json.loads((res.run_dir / 'portfolio.json').read_text())
    assert doc['max_positions'] == 1 and set(doc['summary']) == {'model', 'always_long', 'random_entry'}
    for f in ('portfolio.png', 'portfolio_per_symbol.csv', 'portfolio_per_month.csv'):
        assert (res.run_dir / f).exists()
