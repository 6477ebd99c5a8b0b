"""Expected-return labels: every rule of shared/specs/labels.md by hand, and kernel == plain-Python reference."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from reference_labels import reference_labels  # noqa: E402

from cryptotft.config import ConfigError, DataError, RiskProfile
from cryptotft.labels import (
    EXIT_REASONS,
    LABEL_COLUMNS,
    expected_returns,
    labels_for_storage,
    labels_from_storage,
    segment_ends,
    simulate_entries,
)

NO_FEES = RiskProfile(entry_fee_pct=0, take_profit_fee_pct=0, exit_fee_pct=0)
FLAT = (100, 100, 100, 100)
# a long entered at 100 fills take-profit levels 1.2, 2.4 and 3.5 %, then dips back to 102.3
CLIMB_THEN_DIP = [
    (100, 101.3, 100.1, 101),
    (101, 102.5, 100.5, 102),
    (102, 103.6, 101.5, 103),
    (103, 103.1, 102.3, 102.5),
]
NUMERIC = [c for c in LABEL_COLUMNS if not c.endswith('exit_reason')]


def candles_from(rows, gaps=(), start='2024-01-01'):
    """Candle frame from (open, high, low, close) rows; bar numbers in `gaps` are missing."""
    ts = pd.date_range(start, periods=len(rows) + len(gaps), freq='15min', tz='UTC').delete(list(gaps))
    return pd.DataFrame(rows, columns=['open', 'high', 'low', 'close'], dtype=float).assign(timestamp=ts)


def first_trade(rows, profile=NO_FEES, horizon=None, funding=None, side='buy'):
    """Labels of the trade entered at the close of the first row, checked against the reference too."""
    candles = candles_from(rows)
    horizon = len(rows) - 1 if horizon is None else horizon
    labels = expected_returns(candles, profile, horizon, funding)
    ref = reference_labels(candles, profile, horizon, funding)
    assert_same_labels(labels, ref)
    row = labels.iloc[0]
    return (row[f'{side}_return'], row[f'{side}_exit_reason'], row[f'{side}_exit_bars'], row[f'{side}_tp_hits'])


def assert_same_labels(labels, ref):
    """Kernel frame equals reference frame: numbers to 1e-9, reasons exactly, NaN where NaN."""
    assert list(labels.columns) == LABEL_COLUMNS
    for c in NUMERIC:
        np.testing.assert_allclose(labels[c].to_numpy(float), ref[c].to_numpy(float), rtol=0, atol=1e-9, err_msg=c)
    for c in ('buy_exit_reason', 'sell_exit_reason'):
        got = [None if pd.isna(x) else str(x) for x in labels[c]]
        want = [None if x is None or (isinstance(x, float) and math.isnan(x)) else x for x in ref[c]]
        assert got == want, c


def test_spec_worked_example_partial_take_profit_then_breakeven_stop():
    rows = [FLAT, (100, 101.3, 99.95, 101), (101, 101.1, 99.9, 100.5)]
    ret, reason, bars, hits = first_trade(rows)
    assert ret == pytest.approx(0.24) and reason == 'trailing_stop' and bars == 2 and hits == 1


def test_gap_through_stop_closes_at_the_open():
    ret, reason, bars, hits = first_trade([FLAT, (98.5, 99, 98, 98.7), FLAT, FLAT])
    assert ret == pytest.approx(-1.5) and reason == 'stop_loss' and bars == 1 and hits == 0


def test_short_gap_through_stop_closes_at_the_open():
    ret, reason, bars, _ = first_trade([FLAT, (101.5, 102, 101, 101.3), FLAT], side='sell')
    assert ret == pytest.approx(-1.5) and reason == 'stop_loss' and bars == 1


def test_bar_touching_stop_and_take_profit_counts_as_stopped():
    ret, reason, bars, hits = first_trade([FLAT, (100, 101.5, 98.8, 100), FLAT])
    assert ret == pytest.approx(-1.1) and reason == 'stop_loss' and bars == 1 and hits == 0


def test_several_take_profits_fill_in_one_bar_and_ladder_jumps_to_their_stop():
    rows = [FLAT, (100, 103.6, 99.5, 103), (103, 103.2, 102.3, 102.5), FLAT]
    ret, reason, bars, hits = first_trade(rows)
    assert ret == pytest.approx(0.2 * 1.2 + 0.3 * 2.4 + 0.3 * 3.5 + 0.2 * 2.4)
    assert reason == 'trailing_stop' and bars == 2 and hits == 3


def test_all_take_profits_in_one_bar_end_the_trade():
    ret, reason, bars, hits = first_trade([FLAT, (100, 106, 99.5, 105), FLAT])
    assert ret == pytest.approx(0.2 * 1.2 + 0.3 * 2.4 + 0.3 * 3.5 + 0.2 * 5.8)
    assert reason == 'take_profit' and bars == 1 and hits == 4


def test_stop_move_takes_effect_from_the_next_bar():
    # TP1 fills in bar 1 whose low (99.5) is under breakeven: still open, because bar 1's stop is 98.9
    rows = [FLAT, (100, 101.3, 99.5, 100.5), (100.5, 100.8, 100.1, 100.6), (100.6, 100.7, 99.9, 100)]
    ret, reason, bars, hits = first_trade(rows)
    assert ret == pytest.approx(0.24) and reason == 'trailing_stop' and bars == 3 and hits == 1


def test_ladder_step_two_locks_first_take_profit_level():
    rows = [FLAT, (100, 101.3, 100.1, 101), (101, 102.5, 100.5, 102), (102, 102.2, 101.1, 101.5), FLAT]
    ret, reason, bars, hits = first_trade(rows)
    assert ret == pytest.approx(0.2 * 1.2 + 0.3 * 2.4 + 0.5 * 1.2) and reason == 'trailing_stop'
    assert bars == 3 and hits == 2


def test_ladder_step_three_locks_second_take_profit_level():
    rows = [FLAT, *CLIMB_THEN_DIP, FLAT]
    ret, reason, bars, hits = first_trade(rows)
    assert ret == pytest.approx(0.2 * 1.2 + 0.3 * 2.4 + 0.3 * 3.5 + 0.2 * 2.4) and reason == 'trailing_stop'
    assert bars == 4 and hits == 3


def test_timeout_closes_the_rest_at_the_last_close():
    rows = [FLAT, (100, 100.5, 99.5, 100.2), (100.2, 100.6, 99.6, 100.3)]
    ret, reason, bars, hits = first_trade(rows)
    assert ret == pytest.approx(0.3) and reason == 'timeout' and bars == 2 and hits == 0
    rows = [FLAT, (100, 101.3, 100.1, 101), (101, 101.1, 100.5, 100.8)]
    ret, reason, bars, hits = first_trade(rows)
    assert ret == pytest.approx(0.2 * 1.2 + 0.8 * 0.8) and reason == 'timeout' and hits == 1


def test_short_on_the_mirrored_path_equals_the_long():
    rows = [FLAT, *CLIMB_THEN_DIP, (98.5, 99, 98, 98.7), FLAT, FLAT]
    for start in range(5):  # the trade from each row, on the path mirrored around its entry
        path, e = rows[start : start + 3], rows[start][3]
        mirror = [(2 * e - o, 2 * e - low, 2 * e - high, 2 * e - c) for o, high, low, c in path]
        long = expected_returns(candles_from(path), NO_FEES, 2).iloc[0]
        short = expected_returns(candles_from(mirror), NO_FEES, 2).iloc[0]
        for c in ('return', 'mfe', 'mae'):
            assert long[f'buy_{c}'] == pytest.approx(short[f'sell_{c}'], abs=1e-9)
        for c in ('exit_bars', 'exit_reason', 'tp_hits'):
            assert long[f'buy_{c}'] == short[f'sell_{c}']


def test_fees_entry_maker_take_profit_and_taker_exit():
    fees = RiskProfile()  # 0.055% entry, 0.02% take-profit, 0.055% stop and timeout
    ret, *_ = first_trade([FLAT, (100, 106, 99.5, 105), FLAT], fees)
    tp_fee = 0.02 * (0.2 * 1.012 + 0.3 * 1.024 + 0.3 * 1.035 + 0.2 * 1.058)
    assert ret == pytest.approx(3.17 - 0.055 - tp_fee)
    ret, *_ = first_trade([FLAT, (100, 101.5, 98.8, 100), FLAT], fees)
    assert ret == pytest.approx(-1.1 - 0.055 - 0.055 * 0.989)
    ret, reason, *_ = first_trade([FLAT, (100, 100.5, 99.5, 100.2)], fees)
    assert reason == 'timeout' and ret == pytest.approx(0.2 - 0.055 - 0.055 * 1.002)


def test_spec_funding_example_long_pays_short_receives():
    rows = [FLAT, (100.5, 100.6, 100.4, 100.5)]
    t1 = candles_from(rows).timestamp[1]
    funding = pd.DataFrame({'timestamp': [t1], 'rate': [0.0001]})
    base_long, *_ = first_trade(rows)
    base_short, *_ = first_trade(rows, side='sell')
    long, *_ = first_trade(rows, funding=funding)
    short, *_ = first_trade(rows, funding=funding, side='sell')
    assert base_long - long == pytest.approx(0.01005) and short - base_short == pytest.approx(0.01005)
    negative = funding.assign(rate=-0.0001)
    assert first_trade(rows, funding=negative)[0] - base_long == pytest.approx(0.01005)


def test_funding_is_charged_per_bar_on_the_open_fraction_only_while_held():
    rows = [FLAT, (100, 101.3, 100.1, 101), (102, 102.2, 101.5, 102), (101.9, 102, 99.9, 100), FLAT, FLAT]
    ts = candles_from(rows).timestamp
    minute = pd.Timedelta('1min')
    events = pd.DataFrame(
        {
            'timestamp': [
                ts[0],
                ts[0] + 14 * minute,  # entry bar: not charged
                ts[2] - pd.Timedelta('1ms'),  # last instant of bar 1
                ts[2] + 7 * minute,  # inside bar 2, 80% open
                ts[4],
            ],  # after the exit bar 3
            'rate': [1.0, 1.0, 0.001, 0.002, 1.0],
        }
    )
    base, reason, bars, _ = first_trade(rows, horizon=5)
    charged, *_ = first_trade(rows, horizon=5, funding=events)
    assert reason == 'trailing_stop' and bars == 3
    assert base - charged == pytest.approx(0.001 * 1.0 * 100 / 100 * 100 + 0.002 * 0.8 * 102 / 100 * 100)


def test_missing_candle_splits_segments_and_no_label_crosses_it():
    rows = [FLAT] * 9
    candles = candles_from(rows, gaps=[4])  # bars 0-3, then 5-9
    labels = expected_returns(candles, NO_FEES, horizon=2)
    assert labels.buy_return.notna().tolist() == [True, True, False, False, True, True, True, False, False]
    assert labels.sell_exit_reason.isna().tolist() == labels.buy_return.isna().tolist()
    assert_same_labels(labels, reference_labels(candles, NO_FEES, 2))
    assert segment_ends(np.array([0, 1, 2, 4]) * 900_000).tolist() == [3, 3, 3, 4]


def test_last_horizon_bars_have_no_label():
    labels = expected_returns(candles_from([FLAT] * 10), horizon=4)
    assert labels.buy_return.isna().tolist() == [False] * 6 + [True] * 4
    assert labels[LABEL_COLUMNS].iloc[6:].isna().all().all()
    assert labels.buy_profit.iloc[:6].eq(0.0).all()  # flat market loses the fees


def test_output_keeps_the_input_index_and_documented_dtypes():
    candles = candles_from([FLAT, (100, 106, 99.5, 105), FLAT]).set_index(pd.Index([10, 20, 30]))
    labels = expected_returns(candles, horizon=1)
    assert labels.index.tolist() == [10, 20, 30] and list(labels.columns) == LABEL_COLUMNS
    assert all(labels[c].dtype == np.float64 for c in NUMERIC)
    assert list(labels.buy_exit_reason.cat.categories) == list(EXIT_REASONS)


def test_storage_round_trip_uses_float_exit_reason_codes():
    labels = expected_returns(candles_from([FLAT, (100, 106, 99.5, 105), (98, 99, 97, 98), FLAT]), horizon=1)
    stored = labels_for_storage(labels)
    assert (stored.dtypes == np.float64).all()
    assert stored.buy_exit_reason.tolist()[:2] == [EXIT_REASONS.index('take_profit'), EXIT_REASONS.index('stop_loss')]
    assert np.isnan(stored.buy_exit_reason.iloc[-1])
    pd.testing.assert_frame_equal(labels_from_storage(stored), labels)


def test_bad_inputs_raise_errors_that_say_what_to_do():
    with pytest.raises(DataError):
        expected_returns(candles_from([FLAT, FLAT]).iloc[::-1])
    with pytest.raises(ConfigError):
        expected_returns(candles_from([FLAT, FLAT]), RiskProfile(take_profit_fractions=(0.5, 0.5, 0.5, 0.5)))
    with pytest.raises(ConfigError):
        expected_returns(candles_from([FLAT, FLAT]), RiskProfile(stop_ladder_pct=(0.0,)))
    with pytest.raises(ConfigError):
        expected_returns(candles_from([FLAT, FLAT]), horizon=0)
    with pytest.raises(DataError):
        expected_returns(candles_from([FLAT, (100, float('nan'), 99, 100)]))
    assert expected_returns(candles_from([]), horizon=3).empty


def test_simulate_entries_on_a_subset_matches_all_entries():
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    o = np.r_[100, c[:-1]]
    h, l = np.maximum(o, c) * 1.003, np.minimum(o, c) * 0.997
    args = (o, h, l, c, np.full(300, 1e-5), np.full(300, 300), RiskProfile(), 20)
    every, some = simulate_entries(*args), simulate_entries(*args, entries=[250, 3, 290, 3])
    for k, v in some.items():
        if k != 'entries':
            np.testing.assert_array_equal(v, every[k][[250, 3, 290, 3]], err_msg=k)
    assert some['valid'].tolist() == [True, True, False, True] and some['buy_exit_bars'][2] == -1


# ---- property: the compiled kernel equals the plain-Python reference -----------------------------


@st.composite
def profiles(draw):
    """Random valid risk profile: 1-4 ascending levels, fractions summing to 1, any ladder."""
    n = draw(st.integers(1, 4))
    steps = [draw(st.floats(0.05, 3.0))] + [draw(st.one_of(st.just(0.0), st.floats(0.05, 3.0))) for _ in range(n - 1)]
    weights = np.array([draw(st.floats(0.05, 1.0)) for _ in range(n)])
    pct = st.floats(-1.0, 4.0)
    fee = st.floats(0.0, 0.1)
    return RiskProfile(
        stop_loss_pct=draw(st.floats(0.05, 3.0)),
        take_profit_pct=tuple(np.cumsum(steps).tolist()),
        take_profit_fractions=tuple((weights / weights.sum()).tolist()),
        stop_ladder_pct=tuple(draw(pct) for _ in range(n - 1)),
        entry_fee_pct=draw(fee),
        take_profit_fee_pct=draw(fee),
        exit_fee_pct=draw(fee),
        volatility_target_pct=draw(st.one_of(st.just(0.0), st.floats(0.1, 3.0))),  # 0: the spec's fixed levels
        volatility_period=draw(st.integers(1, 6)),
        volatility_scale_limits=draw(st.sampled_from([(0.25, 4.0), (0.8, 1.5), (1.0, 1.0)])),
    )


@st.composite
def markets(draw):
    """Random valid OHLC path (low <= open, close <= high) with gaps and funding events."""
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vol = draw(st.sampled_from([0.002, 0.008, 0.02]))
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.r_[100, close[:-1]] * np.exp(rng.normal(0, vol / 2, n))  # opens gap from the last close
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol, n)))
    if draw(st.booleans()):  # a coarse price grid makes exact touches of levels and stops common
        open_, high, low, close = (np.round(x, 1) for x in (open_, high, low, close))
        high, low = np.maximum.reduce([high, open_, close]), np.minimum.reduce([low, open_, close])
    missing = rng.random(n) < draw(st.sampled_from([0.0, 0.05, 0.2]))
    bar = 900_000
    ts_ms = 1_700_000_000_000 + bar * (np.arange(n) + np.cumsum(missing * rng.integers(1, 4, n)))
    candles = pd.DataFrame(
        {
            'timestamp': pd.to_datetime(ts_ms, unit='ms', utc=True),
            'open': open_,
            'high': high,
            'low': low,
            'close': close,
        }
    )
    k = draw(st.integers(0, 12))
    on_boundary = ts_ms[0] + bar * rng.integers(-1, n + 2, k) - rng.choice([0, 0, 1], k)
    anywhere = ts_ms[0] + rng.integers(-bar, bar * (n + 2), k)
    event_ms = np.where(rng.random(k) < 0.5, on_boundary, anywhere)
    funding = pd.DataFrame(
        {'timestamp': pd.to_datetime(event_ms, unit='ms', utc=True), 'rate': rng.uniform(-0.003, 0.003, k)}
    )
    return candles, (funding if draw(st.booleans()) else None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(market=markets(), profile=profiles(), horizon=st.integers(1, 8))
def test_kernel_equals_reference_on_random_paths_profiles_gaps_and_funding(market, profile, horizon):
    candles, funding = market
    labels = expected_returns(candles, profile, horizon, funding)
    for reason in set(labels.buy_exit_reason.dropna()) | set(labels.sell_exit_reason.dropna()):
        event(f'exit {reason}')
    event('labelled' if labels.buy_return.notna().any() else 'nothing labelled')
    assert_same_labels(labels, reference_labels(candles, profile, horizon, funding))
