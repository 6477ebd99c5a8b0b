"The portfolio backtest: a hand-computed 3-candidate example, every trade equal to its label, the cap, the references."

import logging

import numpy as np
import pandas as pd
import pytest

from cryptotft.config import ConfigError, DataError, RiskProfile, to_ms
from cryptotft.labels import expected_returns
from cryptotft.portfolio import (
    candidates,
    labelled,
    market_arrays,
    portfolio_backtest,
    portfolio_with_references,
    reference_signals,
    select_entries,
    signals_from_predictions,
    summary,
    trade_marks,
)
from cryptotft.synthetic import synthetic_market


def candles_from(rows, start='2024-01-01', gaps=()):
    "Tiny candle frame from (open, high, low, close) rows; `gaps` are bar numbers left out."
    ts = pd.date_range(start, periods=len(rows) + len(gaps), freq='15min', tz='UTC').delete(list(gaps))
    return pd.DataFrame(rows, columns=['open', 'high', 'low', 'close'], dtype=float).assign(timestamp=ts)


def hand_market():
    "X: long A from bar 0 (TP1 in bar 1, funding in bar 2, timeout in bar 3). Y: short C from bar 3, stopped in bar 5."
    x = candles_from(
        [(100, 100, 100, 100), (100, 101.3, 99.95, 101), (101, 101.1, 100.4, 100.5), (100.5, 100.8, 100.2, 100.6)]
        + [(100.6,) * 4] * 3
    )
    y = candles_from(
        [(50, 50, 50, 50), (50, 50.2, 49.9, 50.1), (50.1, 50.3, 50, 50.2), (50.2, 50.3, 50, 50)]
        + [(50, 50.1, 49.7, 49.8), (49.8, 50.6, 49.8, 50.5), (50.5,) * 4]
    )
    fund_x = pd.DataFrame({'timestamp': x.timestamp[[2]], 'rate': [0.0001]})
    return x, y, fund_x


HAND_SIGNALS = pd.DataFrame(
    {
        'symbol': ['X', 'Y', 'Y'],
        'timestamp': pd.date_range('2024-01-01', periods=4, freq='15min', tz='UTC')[[0, 1, 3]],
        'side': ['buy', 'buy', 'sell'],  # A, B, C
        'score': 1.0,
    }
)


def test_hand_example_three_candidates_two_symbols_cap_one_marked_every_bar():
    x, y, fund_x = hand_market()
    market = market_arrays({'X': x, 'Y': y}, {'X': fund_x})
    res = portfolio_backtest(
        market, HAND_SIGNALS, RiskProfile(), horizon=3, max_positions=1, risk_fraction=0.1, leverage=5
    )
    # notional = 0.1 x 5 = half the marked equity at entry. Marks in fractions of entry notional
    # (fees 0.055 / 0.02 / 0.055 %):
    # A (long X from 100): bar 0: entry fee                                         -0.00055
    #   bar 1: TP1 20% at 101.2: 0.2 x (0.012 - 0.0002 x 1.012) = 0.00235952; rest 0.8 x (101/100 - 1) = 0.008
    #          mark -0.00055 + 0.00235952 + 0.008                                   = 0.00980952
    #   bar 2: funding 0.0001 x 0.8 x 101/100 = 0.0000808; rest 0.8 x 0.005 = 0.004  -> 0.00572872
    #   bar 3: timeout at 100.6: 0.8 x (0.006 - 0.00055 x 1.006) = 0.00435736       -> 0.00608608 (the label)
    # B (long Y at bar 1): A holds the only slot: skipped.
    # C (short Y from 50 at bar 3, after A's exit): cash 1 + 0.5 x 0.00608608 = 1.00304304, notional 0.50152152
    #   bar 3: -0.00055; bar 4: -0.00055 + (1 - 49.8/50) = 0.00345
    #   bar 5: high 50.6 >= stop 50.55: -0.00055 - 0.011 - 0.00055 x 1.011            = -0.01210605 (the label)
    equity = [
        0.999725,  # 1 + 0.5 x -0.00055
        1.00490476,  # 1 + 0.5 x 0.00980952
        1.00286436,  # 1 + 0.5 x 0.00572872
        1.002767203164,  # 1.00304304 + 0.50152152 x -0.00055
        1.004773289244,  # 1.00304304 + 0.50152152 x 0.00345
        0.9969715954028,  # 1.00304304 + 0.50152152 x -0.01210605
        0.9969715954028,  # flat
    ]
    np.testing.assert_allclose(res.equity.to_numpy(), equity, rtol=0, atol=1e-12)
    assert res.open_positions.tolist() == [1, 1, 1, 1, 1, 0, 0]
    tr = res.trades
    assert tr.symbol.tolist() == ['X', 'Y'] and tr.side.tolist() == ['buy', 'sell'] and tr.exit_bars.tolist() == [3, 2]
    assert (tr.entry_time == HAND_SIGNALS.timestamp[[0, 2]].to_numpy()).all()
    np.testing.assert_allclose(tr.return_pct, [0.608608, -1.210605], atol=1e-12)
    np.testing.assert_allclose(tr.notional, [0.5, 0.50152152], atol=1e-12)
    np.testing.assert_allclose(tr.pnl, [0.00304304, 0.50152152 * -0.01210605], atol=1e-12)
    labels = [
        expected_returns(x, RiskProfile(), 3, fund_x).buy_return[0],
        expected_returns(y, RiskProfile(), 3).sell_return[3],
    ]
    np.testing.assert_allclose(tr.return_pct, labels, atol=1e-12)
    st = res.stats
    assert st['n_trades'] == 2 and st['n_candidates'] == 3 and st['win_rate'] == 0.5
    assert np.isclose(st['exposure'], 5 / 7) and np.isclose(st['total_return'], 0.9969715954028 - 1)
    assert np.isclose(st['max_drawdown'], 0.9969715954028 - 1)  # one day, below the starting 1
    assert res.per_month.n_trades.tolist() == [2] and np.isclose(res.per_month['return'][0], st['total_return'])
    assert res.per_symbol.pnl.round(8).tolist() == [0.00304304, -0.00607144]
    two = portfolio_backtest(market, HAND_SIGNALS, RiskProfile(), 3, max_positions=2, risk_fraction=0.1, leverage=5)
    assert two.trades.symbol.tolist() == ['X', 'Y'] and two.stats['n_trades'] == 2  # B taken: C finds Y busy
    assert two.trades.entry_time[1] == HAND_SIGNALS.timestamp[1] and two.open_positions.max() == 2


@pytest.fixture(scope='module')
def synthetic():
    "Four SYNTHETIC symbols over 12 days with funding, two of them with gaps."
    candles, funding = synthetic_market(['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT'], days=12, seed=5)
    drop = candles.index[(candles.symbol == 'ETHUSDT')][[100, 101, 500]].append(
        candles.index[candles.symbol == 'XRPUSDT'][[700]]
    )
    return candles.drop(drop).reset_index(drop=True), funding


def _labels(candles, funding, profile, horizon):
    "Label frame of every symbol with its symbol and timestamp, sorted like a Market."
    parts = []
    for s, c in candles.groupby('symbol', sort=True):
        c = c.reset_index(drop=True)
        lab = expected_returns(c, profile, horizon, funding[funding.symbol == s])
        parts.append(lab.assign(symbol=s, timestamp=to_ms(c.timestamp)))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize('horizon', [1, 40])
@pytest.mark.parametrize('volatility_target_pct', [0.0, 0.3])  # fixed levels; levels scaled by volatility
def test_every_trade_path_ends_at_its_label_with_gaps_funding_and_both_sides(synthetic, horizon, volatility_target_pct):
    candles, funding = synthetic
    profile = RiskProfile(
        stop_loss_pct=0.8,
        take_profit_pct=(0.4, 0.9, 1.5, 2.5),
        volatility_target_pct=volatility_target_pct,
        volatility_period=24,
    )
    market = market_arrays(candles, funding, profile=profile)
    lab = _labels(candles, funding, profile, horizon)
    assert np.array_equal(lab.timestamp, market.ts) and np.array_equal(
        lab.buy_return.notna(), labelled(market, horizon)
    )
    bars = np.flatnonzero(labelled(market, horizon))
    for side, name in ((1, 'buy'), (-1, 'sell')):
        marks, offsets = trade_marks(market, bars, np.full(len(bars), side), profile, horizon)
        np.testing.assert_allclose(
            100 * marks[offsets[1:] - 1], lab[f'{name}_return'].to_numpy()[bars], rtol=0, atol=1e-12
        )
        assert np.array_equal(np.diff(offsets) - 1, lab[f'{name}_exit_bars'].to_numpy()[bars])


def test_an_open_trade_is_marked_as_its_timeout_label_without_the_exit_fee(synthetic):
    "While open after bar k, a trade's mark equals the label of the same trade with horizon k plus the exit fee saved."
    candles, funding = synthetic
    profile, horizon = RiskProfile(), 60
    market = market_arrays(candles, funding)
    bars = np.flatnonzero(labelled(market, horizon))
    for side, name in ((1, 'buy'), (-1, 'sell')):
        marks, offsets = trade_marks(market, bars, np.full(len(bars), side), profile, horizon)
        exit_bars = np.diff(offsets) - 1
        for k in (1, 7, 30):
            short = _labels(candles, funding, profile, k)
            still_open = exit_bars > k
            t = bars[still_open]
            hits = short[f'{name}_tp_hits'].to_numpy()[t].astype(int)
            open_fraction = 1 - np.r_[0, np.cumsum(profile.take_profit_fractions)][hits]
            saved_fee = open_fraction * profile.exit_fee_pct * market.close[t + k] / market.close[t]
            want = short[f'{name}_return'].to_numpy()[t] + saved_fee
            assert still_open.sum() > 50
            np.testing.assert_allclose(100 * marks[offsets[:-1][still_open] + k], want, rtol=0, atol=1e-10)


def _plain_selection(lab, sig, cap, bar_ms=900_000):
    "The entry rule written out with dicts: (symbol, entry ms, side) of the trades taken."
    exit_bars = lab.set_index(['symbol', 'timestamp'])[['buy_exit_bars', 'sell_exit_bars']]
    sig = sig.assign(timestamp=to_ms(sig.timestamp)).sort_values(
        ['timestamp', 'score', 'symbol'], ascending=[True, False, True], kind='stable'
    )
    busy, taken = {}, []
    for s, t, side in zip(sig.symbol, sig.timestamp, sig.side):
        k = exit_bars.loc[(s, t), f'{side}_exit_bars']
        if np.isnan(k):
            continue
        busy = {sym: until for sym, until in busy.items() if until > t}
        if s in busy or len(busy) >= cap:
            continue
        busy[s] = t + int(k) * bar_ms
        taken.append((s, t, side))
    return taken


def _random_signals(candles, n, seed):
    rng = np.random.default_rng(seed)
    rows = candles.iloc[np.sort(rng.choice(len(candles), n, replace=False))]
    score = rng.integers(0, 3, n).astype(float)  # coarse scores: ties at one bar happen
    return pd.DataFrame(
        {
            'symbol': rows.symbol.to_numpy(),
            'timestamp': rows.timestamp.to_numpy(),
            'side': rng.choice(['buy', 'sell'], n),
            'score': score,
        }
    )


@pytest.mark.parametrize('cap', [1, 2, 4])
def test_entries_follow_the_rule_written_out_by_hand_and_never_break_the_caps(synthetic, cap):
    candles, funding = synthetic
    horizon = 50
    market = market_arrays(candles, funding)
    lab = _labels(candles, funding, RiskProfile(), horizon)
    sig = _random_signals(candles, 2000, seed=cap)
    res = portfolio_backtest(market, sig, RiskProfile(), horizon, max_positions=cap)
    got = list(zip(res.trades.symbol.astype(str), to_ms(res.trades.entry_time), res.trades.side))
    assert got == _plain_selection(lab, sig, cap)
    assert res.open_positions.max() == cap and len(got) > 20
    for _, tr in res.trades.groupby('symbol', observed=True):
        assert (tr.entry_time.to_numpy()[1:] >= tr.exit_time.to_numpy()[:-1]).all()  # one position per symbol


def test_ties_at_one_bar_go_to_the_higher_score_then_the_symbol_name():
    bars = [(100, 100, 100, 100), (100, 100, 97, 98)] * 3
    market = market_arrays({s: candles_from(bars) for s in ('A', 'B', 'C')})
    t0 = pd.Timestamp('2024-01-01', tz='UTC')
    sig = pd.DataFrame({'symbol': ['A', 'C', 'B'], 'timestamp': t0, 'side': 'buy', 'score': [0.1, 0.9, 0.5]})
    assert portfolio_backtest(market, sig, horizon=1, max_positions=1).trades.symbol.tolist() == ['C']
    assert portfolio_backtest(market, sig, horizon=1, max_positions=2).trades.symbol.tolist() == ['C', 'B']
    assert portfolio_backtest(market, sig.assign(score=0.0), horizon=1, max_positions=1).trades.symbol.tolist() == ['A']


def test_equity_is_cash_of_closed_trades_plus_open_trades_at_their_marks(synthetic):
    candles, funding = synthetic
    horizon = 30
    market = market_arrays(candles, funding)
    res = portfolio_backtest(market, _random_signals(candles, 300, seed=9), RiskProfile(), horizon, max_positions=3)
    tr = res.trades
    marks, offsets = trade_marks(
        market,
        candidates(market, tr.rename(columns={'entry_time': 'timestamp'}), horizon)['bar'],
        np.where(tr.side == 'buy', 1, -1),
        RiskProfile(),
        horizon,
    )
    grid = to_ms(res.equity.index)
    entry, exit_ = to_ms(tr.entry_time), to_ms(tr.exit_time)
    want = []
    for g in grid:
        value = 1.0 + tr.pnl[exit_ <= g].sum()
        for i in np.flatnonzero((entry <= g) & (exit_ > g)):
            value += tr.notional[i] * marks[offsets[i] + (g - entry[i]) // 900_000]
        want.append(value)
    np.testing.assert_allclose(res.equity.to_numpy(), want, rtol=0, atol=1e-12)
    # each notional is 2% x 10 = a fifth of the equity before its bar's entries (which pay the entry fee)
    entered = tr.groupby('entry_time').notional.sum()
    before = res.equity[entered.index] + 0.00055 * entered
    np.testing.assert_allclose(tr.notional, 0.2 * before[tr.entry_time].to_numpy(), rtol=1e-12)
    assert len(tr) > 30
    assert np.isclose(res.stats['total_return'], tr.pnl.sum())  # all trades closed by the end


def test_daily_sharpe_and_drawdown_come_from_the_marked_daily_equity(synthetic):
    candles, funding = synthetic
    res = portfolio_backtest(market_arrays(candles, funding), _random_signals(candles, 400, 3), RiskProfile(), 30)
    daily = res.equity.groupby(res.equity.index.floor('D')).last()
    r = np.diff(np.r_[1.0, daily.to_numpy()]) / np.r_[1.0, daily.to_numpy()[:-1]]
    assert len(daily) == 12 and np.isclose(res.stats['sharpe'], r.mean() / r.std(ddof=1) * np.sqrt(365))
    peak = np.maximum.accumulate(np.r_[1.0, daily.to_numpy()])[1:]
    assert np.isclose(res.stats['max_drawdown'], (daily.to_numpy() / peak - 1).min())
    assert np.isclose(res.stats['exposure'], res.open_positions.mean()) and res.stats['exposure'] > 0


def test_per_symbol_and_per_month_tables_add_up_to_the_totals():
    candles, funding = synthetic_market(['BTCUSDT', 'ETHUSDT', 'SOLUSDT'], days=70, seed=2, start='2024-01-20')
    res = portfolio_backtest(market_arrays(candles, funding), _random_signals(candles, 500, 4), RiskProfile(), 100, 2)
    pm, ps = res.per_month, res.per_symbol
    assert pm.month.tolist() == ['2024-01', '2024-02', '2024-03']
    assert pm.n_trades.sum() == ps.n_trades.sum() == res.stats['n_trades']
    assert np.isclose(np.prod(1 + pm['return']) - 1, res.stats['total_return'])
    assert np.isclose(ps.pnl.sum(), res.trades.pnl.sum()) and np.isclose(pm.pnl.sum(), res.trades.pnl.sum())
    assert np.isclose((ps.exposure).sum(), res.stats['exposure'])


def test_references_run_under_the_same_cap_and_are_seeded(synthetic):
    candles, funding = synthetic
    market = market_arrays(candles, funding)
    sig = _random_signals(candles, 150, 1)
    out = portfolio_with_references(market, sig, RiskProfile(), 40, seed=7, max_positions=2)
    table = summary(out)
    assert table.index.tolist() == ['model', 'always_long', 'random_entry']
    n_valid = len(candidates(market, sig, 40))  # signals with a label
    assert table.loc['random_entry', 'n_candidates'] == table.loc['model', 'n_candidates'] == n_valid
    assert (out['always_long'].trades.side == 'buy').all() and set(out['random_entry'].trades.side) == {'buy', 'sell'}
    assert all(r.open_positions.max() <= 2 for r in out.values())
    start, end = to_ms(sig.timestamp).min(), to_ms(sig.timestamp).max()
    for r in out.values():
        assert to_ms(r.trades.entry_time).min() >= start and to_ms(r.trades.entry_time).max() <= end
    again = portfolio_with_references(market, sig, RiskProfile(), 40, seed=7, max_positions=2)
    assert summary(again).equals(table)
    other = reference_signals(market, 150, 40, start, end, seed=8)['random_entry']
    assert not other.equals(reference_signals(market, 150, 40, start, end, seed=7)['random_entry'])


def test_sides_as_names_or_codes_and_signals_from_predictions_agree(synthetic, caplog):
    candles, funding = synthetic
    market = market_arrays(candles, funding)
    rows = candles.iloc[::7].reset_index(drop=True)
    pred = np.random.default_rng(0).normal(size=(len(rows), 2))
    sig = signals_from_predictions(rows, pred, threshold=1.0)
    assert (sig.side == np.argmax(pred[pred.max(1) > 1.0], 1)).all()
    with caplog.at_level(logging.WARNING, logger='cryptotft.portfolio'):
        by_code = portfolio_backtest(market, sig, horizon=20)
    assert 'signals dropped' in caplog.text  # the last bars of each symbol have no label
    by_name = portfolio_backtest(market, sig.assign(side=np.where(sig.side == 0, 'buy', 'sell')), horizon=20)
    pd.testing.assert_frame_equal(by_code.trades, by_name.trades)


def test_bad_inputs_say_what_is_wrong():
    c = candles_from([(100, 100, 100, 100)] * 3)
    with pytest.raises(DataError, match='once'):
        market_arrays(pd.concat([c, c.iloc[[1]]]).assign(symbol='X'))
    with pytest.raises(DataError, match='NaN'):
        market_arrays({'X': c.assign(close=[100, np.nan, 100])})
    market = market_arrays({'X': c})
    with pytest.raises(DataError, match='sides'):
        candidates(market, pd.DataFrame({'symbol': ['X'], 'timestamp': c.timestamp[:1], 'side': ['long']}), 1)
    cand = candidates(market, pd.DataFrame({'symbol': ['X'], 'timestamp': c.timestamp[:1], 'side': ['buy']}), 1)
    with pytest.raises(ConfigError, match='max_positions'):
        select_entries(market, cand, horizon=1, max_positions=0)
    with pytest.raises(DataError, match='contiguous'):
        trade_marks(market, [2], [1], horizon=1)


def test_no_signals_give_flat_equity_and_empty_tables(synthetic):
    candles, funding = synthetic
    market = market_arrays(candles, funding)
    none = pd.DataFrame({'symbol': [], 'timestamp': pd.to_datetime([], utc=True), 'side': [], 'score': []})
    res = portfolio_backtest(market, none, horizon=20)
    assert (res.equity == 1).all() and res.stats['n_trades'] == 0 and res.stats['total_return'] == 0
    assert len(res.trades) == 0 and len(res.per_symbol) == 0 and (res.per_month.n_trades == 0).all()
    assert str(res.trades.entry_time.dtype) == 'datetime64[ns, UTC]'
