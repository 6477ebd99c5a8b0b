"Context inputs: causal at every cut, aligned across symbols, equal to a slow pandas reference, funding and calendar."

from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from cryptotft.config import DataError, to_ms
from cryptotft.context import (
    FUNDING_FEATURES,
    HORIZONS,
    KNOWN_FUTURE,
    add_context,
    context_columns,
    funding_context,
    known_future,
    market_context,
    market_feature_names,
)
from cryptotft.dataset import time_features
from cryptotft.synthetic import synthetic_market

REAL = Path(__file__).resolve().parents[2] / 'shared' / 'data'
BAR = 900_000
HOUR = 3_600_000
SYMBOLS = ('BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT')


def panel(days=4, seed=3):
    "SYNTHETIC candles and funding of four symbols, with holes: ETH loses random bars, SOL a block, XRP lists late."
    candles, funding = synthetic_market(SYMBOLS, days=days, seed=seed)
    rng = np.random.default_rng(seed)
    i = np.arange(len(candles)) % (days * 96)
    drop = (candles.symbol == 'ETHUSDT') & (rng.random(len(candles)) < 0.03)
    drop |= (candles.symbol == 'SOLUSDT') & (i >= 150) & (i < 170)
    drop |= (candles.symbol == 'XRPUSDT') & (i < 60)
    return candles[~drop.to_numpy()].reset_index(drop=True), funding


def reference_market(candles, horizons=HORIZONS, market='BTCUSDT'):
    "Slow and obvious: dictionary look-ups by (symbol, time), pandas group means that skip NaN."
    df = candles[['symbol', 'timestamp', 'close']].copy()
    df['t'] = to_ms(df.timestamp)
    close = {(s, t): c for s, t, c in zip(df.symbol, df.t, df.close)}

    def ret(s, t, h):
        a, b = close.get((s, t)), close.get((s, t - h * BAR))
        return np.log(a / b) if a is not None and b is not None else np.nan

    def vol(s, t, h):
        r = [ret(s, t - j * BAR, 1) for j in range(h)]
        return np.nan if np.isnan(r).any() else float(np.sqrt(np.mean(np.square(r))))

    for h in horizons:
        df[f'ret_{h}'] = [ret(s, t, h) for s, t in zip(df.symbol, df.t)]
        df[f'vol_{h}'] = [vol(s, t, h) for s, t in zip(df.symbol, df.t)]
    own = [f'{k}_{h}' for h in horizons for k in ('ret', 'vol')]
    mkt = df.groupby('t')[own].mean().add_prefix('mkt_')
    btc = df[df.symbol == market].set_index('t')[own].add_prefix('btc_')
    df = df.join(mkt, on='t').join(btc, on='t')
    out = pd.DataFrame(index=df.index)
    for h in horizons:
        out[f'btc_ret_{h}'] = df[f'btc_ret_{h}']
        out[f'btc_vol_{h}'] = df[f'btc_vol_{h}']
        out[f'mkt_ret_{h}'] = df[f'mkt_ret_{h}']
        out[f'mkt_vol_{h}'] = df[f'mkt_vol_{h}']
        out[f'rel_mkt_{h}'] = df[f'ret_{h}'] - df[f'mkt_ret_{h}']
        out[f'rel_btc_{h}'] = df[f'ret_{h}'] - df[f'btc_ret_{h}']
        out[f'vol_rel_mkt_{h}'] = np.log((df[f'vol_{h}'] + 1e-4) / (df[f'mkt_vol_{h}'] + 1e-4))
    return out


def assert_same(a, b, rtol=0.0, atol=0.0):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=rtol, atol=atol)


def test_column_names_are_stable_and_float32():
    candles, funding = panel(days=2)
    out = add_context(candles, funding)
    assert context_columns()[:8] == [
        'btc_ret_1',
        'btc_vol_1',
        'mkt_ret_1',
        'mkt_vol_1',
        'rel_mkt_1',
        'rel_btc_1',
        'vol_rel_mkt_1',
        'btc_ret_4',
    ]
    assert context_columns()[-9:] == [
        'funding_bp',
        'funding_change_bp',
        'hours_to_funding',
        'funding_interval_h',
        'kf1_hour_sin',
        'kf1_hour_cos',
        'kf1_dow_sin',
        'kf1_dow_cos',
        'kf1_min_to_funding',
    ]
    assert len(context_columns()) == 7 * len(HORIZONS) + len(FUNDING_FEATURES) + len(KNOWN_FUTURE) == 37
    assert list(out.columns) == [*candles.columns, *context_columns()]
    assert (out[context_columns()].dtypes == np.float32).all()


def test_market_context_equals_the_slow_pandas_reference_with_gaps_and_a_late_listing():
    candles, _ = panel()
    got = market_context(candles)
    want = reference_market(candles)
    for c in market_feature_names():
        assert_same(got[c], want[c], rtol=2e-5, atol=2e-7)


@pytest.mark.parametrize('cut_bar', [1, 95, 96, 97, 160, 200, 300])
def test_every_column_at_a_cut_ignores_every_value_after_it(cut_bar):
    candles, funding = panel()
    ts = to_ms(candles.timestamp)
    cut = np.sort(np.unique(ts))[cut_bar]
    rng = np.random.default_rng(cut_bar)
    late = ts > cut
    noisy = candles.assign(close=np.where(late, candles.close * np.exp(rng.normal(0, 0.1, len(ts))), candles.close))
    noisy = noisy[~(late & (rng.random(len(ts)) < 0.2))]  # and future candles go missing
    f_late = to_ms(funding.timestamp) > cut
    noisy_funding = funding.assign(rate=np.where(f_late, rng.normal(0, 0.01, len(funding)), funding.rate))
    extra = noisy_funding[f_late].assign(timestamp=lambda f: f.timestamp + pd.Timedelta(hours=1))
    noisy_funding = pd.concat([noisy_funding, extra])  # future settlements on another schedule
    base = add_context(candles, funding)
    other = add_context(noisy, noisy_funding)
    past = base.index[~late]  # every row at or before the cut survives in `noisy`, on the same index
    for c in context_columns():
        assert_same(other.loc[past, c], base.loc[past, c])


@pytest.mark.parametrize('h', HORIZONS)
def test_a_btc_jump_shows_in_other_symbols_rows_at_its_own_bar(h):
    candles, funding = panel()
    ts = to_ms(candles.timestamp)
    t0 = np.sort(np.unique(ts))[250]
    btc = (candles.symbol == 'BTCUSDT').to_numpy()
    jumped = candles.assign(close=np.where(btc & (ts >= t0), candles.close * 1.05, candles.close))
    d = add_context(jumped, funding)[context_columns()] - add_context(candles, funding)[context_columns()]
    moved = (d.fillna(0).abs() > 1e-6).to_numpy()
    others = ~btc
    assert not moved[ts < t0].any()  # nothing before the jump's bar sees it
    at = others & (ts == t0)
    assert at.sum() == 3 and np.allclose(d[f'btc_ret_{h}'][at], np.log(1.05), atol=1e-5)
    assert np.allclose(d[f'rel_btc_{h}'][at].dropna(), -np.log(1.05), atol=1e-5)
    n = add_context(candles, funding)[f'rel_btc_{h}'][ts == t0].notna().sum()  # symbols with an h-bar return
    assert n >= 3 and np.allclose(d[f'mkt_ret_{h}'][at], np.log(1.05) / n, atol=1e-5)
    window = others & (ts >= t0) & (ts < t0 + h * BAR)  # the h bars whose h-bar return spans the jump
    assert np.allclose(d[f'btc_ret_{h}'][window], np.log(1.05), atol=1e-5)
    assert np.allclose(d[f'btc_ret_{h}'][others & (ts >= t0 + h * BAR)].fillna(0), 0, atol=1e-6)


def test_the_cross_sectional_mean_ignores_symbols_missing_at_the_bar():
    candles, _ = panel()
    ts = to_ms(candles.timestamp)
    grid = np.sort(np.unique(ts))
    hole = (ts >= grid[150]) & (ts < grid[170])  # SOL has no candles here
    ctx = market_context(candles)
    assert not (hole & (candles.symbol == 'SOLUSDT').to_numpy()).any()
    own = ctx.rel_btc_1 + ctx.btc_ret_1  # each symbol's own 1-bar return
    means = own.groupby(ts).mean()
    at = hole & ctx.mkt_ret_1.notna().to_numpy()
    assert at.sum() > 40 and np.allclose(ctx.mkt_ret_1[at], means.reindex(ts[at]).to_numpy(), atol=1e-6)
    without_sol = market_context(candles[candles.symbol != 'SOLUSDT'])
    rows = hole[candles.symbol != 'SOLUSDT']
    assert_same(without_sol.mkt_ret_4[rows], ctx.mkt_ret_4[hole & (candles.symbol != 'SOLUSDT').to_numpy()], atol=1e-7)


def test_missing_bars_are_not_filled():
    candles, _ = panel()
    ctx = market_context(candles)
    eth = candles.symbol == 'ETHUSDT'
    t = to_ms(candles.timestamp[eth])
    after_gap = np.r_[False, np.diff(t) > BAR]
    assert after_gap.sum() > 3
    assert ctx.rel_mkt_1[eth][after_gap].isna().all() and ctx.vol_rel_mkt_16[eth][after_gap].isna().all()
    has_4_back = np.isin(t - 4 * BAR, t)  # a 4-bar return needs its two end points, by the clock
    assert_same(ctx.rel_btc_4[eth].isna(), ~has_4_back | (t < t.min() + 4 * BAR))
    assert ctx.btc_ret_1[eth][after_gap].notna().all()  # BTC's own columns do not depend on ETH's gap


def test_rows_keep_the_input_order_and_a_dict_of_frames_agrees():
    candles, funding = panel(days=2)
    shuffled = candles.sample(frac=1.0, random_state=0)
    out = add_context(shuffled, funding)
    assert out.index.equals(shuffled.index)
    assert_same(out.sort_index()[context_columns()], add_context(candles, funding)[context_columns()])
    by_symbol = {s: g.drop(columns='symbol') for s, g in candles.groupby('symbol')}
    ctx = market_context(by_symbol).sort_values(['symbol', 'timestamp'])
    assert_same(ctx[market_feature_names()], market_context(candles).sort_values(['symbol', 'timestamp']).iloc[:, 2:])


def test_a_missing_market_symbol_or_duplicate_rows_are_clear_errors():
    candles, _ = panel(days=2)
    with pytest.raises(DataError, match='BTCUSDT'):
        market_context(candles[candles.symbol != 'BTCUSDT'])
    with pytest.raises(DataError, match='duplicate'):
        market_context(pd.concat([candles, candles.iloc[:1]]))


def reference_funding(t, events, every=8 * HOUR):
    "Last event at or before t, the one before it, and the next settlement on the observed interval."
    known = [(e, r) for e, r in events if e <= t]
    fresh = known and t - known[-1][0] <= 24 * HOUR
    rate = known[-1][1] * 1e4 if fresh else np.nan
    change = (known[-1][1] - known[-2][1]) * 1e4 if fresh and len(known) > 1 else np.nan
    interval = min(max(round((known[-1][0] - known[-2][0]) / HOUR), 1), 8) * HOUR if len(known) > 1 else every
    nxt = known[-1][0] if known else t - t % every
    while nxt <= t:
        nxt += interval
    return rate, change, (nxt - t) / HOUR, interval / HOUR


def test_funding_features_equal_a_reference_on_jittered_duplicated_stamps_a_schedule_change_and_an_end():
    start = int(to_ms(pd.Timestamp('2024-03-01', tz='UTC')))
    settle = [start + k * 8 * HOUR for k in range(6)] + [start + 40 * HOUR + k * 4 * HOUR for k in range(1, 6)]
    rng = np.random.default_rng(0)
    rates = rng.normal(1e-4, 1e-4, len(settle))
    stamps = np.array(settle) + rng.integers(-50, 50, len(settle))  # exchange stamps jitter around the hour
    funding = pd.DataFrame({'timestamp': stamps, 'rate': rates})
    funding = pd.concat([funding, funding.iloc[[2]].assign(timestamp=stamps[2] + 3)])  # one event recorded twice
    bars = pd.DataFrame({'symbol': 'ETHUSDT', 'timestamp': start - 8 * BAR + BAR * np.arange(400)})  # past the end
    got = funding_context(bars, {'ETHUSDT': funding})
    events = list(zip(settle, rates))
    want = np.array([reference_funding(t, events) for t in bars.timestamp])
    for j, c in enumerate(FUNDING_FEATURES):
        assert_same(got[c], want[:, j], rtol=1e-5, atol=1e-6)
    assert set(got.funding_interval_h) == {4.0, 8.0}


def test_a_symbol_without_funding_gets_the_default_rate_and_the_8_hour_clock():
    bars = pd.DataFrame({'symbol': 'NEWUSDT', 'timestamp': BAR * np.arange(40)})
    got = funding_context(bars, None, default_bp=1.0)
    assert (got.funding_bp == 1.0).all() and (got.funding_change_bp == 0.0).all()
    assert got.hours_to_funding.tolist() == [8 - k / 4 for k in range(32)] + [8 - k / 4 for k in range(8)]
    assert funding_context(bars).funding_bp.isna().all()


def test_known_future_is_the_calendar_of_the_next_bar_and_the_funding_clock_of_the_rows_ahead():
    candles, funding = panel(days=3)
    out = add_context(candles, funding)
    ts = to_ms(out.timestamp)
    assert np.allclose(out[['kf1_hour_sin', 'kf1_hour_cos', 'kf1_dow_sin', 'kf1_dow_cos']], time_features(ts + BAR))
    steps = tuple(range(1, 101))
    kf = known_future(ts, out.hours_to_funding, out.funding_interval_h, steps)
    assert kf.shape == (len(out), 100, len(KNOWN_FUTURE))
    # on a regular schedule the clock known at t equals the one the row at t+k sees
    hours_at = dict(zip(zip(out.symbol, ts), out.hours_to_funding))
    for i in np.random.default_rng(0).choice(len(out), 50, replace=False):
        for k in (1, 7, 32, 33, 100):
            later = hours_at.get((out.symbol.iloc[i], ts[i] + k * BAR))
            if later is not None:
                assert kf[i, k - 1, 4] == later * 60
            assert np.allclose(kf[i, k - 1, :4], time_features([ts[i] + k * BAR])[0])


def test_real_majors_give_finite_context_after_warm_up():
    files = [REAL / 'binance_usdm_15m' / f'{s}.parquet' for s in ('BTCUSDT', 'ETHUSDT', 'DOGEUSDT')]
    if not all(f.exists() for f in files):
        pytest.skip('real data not present')
    window = [
        ('timestamp', '>=', pd.Timestamp('2024-10-20', tz='UTC')),
        ('timestamp', '<', pd.Timestamp('2024-11-05', tz='UTC')),
    ]
    candles = pd.concat([pd.read_parquet(f, filters=window).assign(symbol=f.stem) for f in files], ignore_index=True)
    funding = {f.stem: pd.read_parquet(REAL / 'binance_usdm_funding' / f.name, filters=window) for f in files}
    out = add_context(candles, funding)
    warm = to_ms(out.timestamp) >= to_ms(out.timestamp).min() + 97 * BAR
    values = out.loc[warm, context_columns()].to_numpy()
    assert np.isfinite(values).all()  # the zero-volume fillers of 2024-10-28 included
    assert out.hours_to_funding.between(0.25, 8).all() and set(out.funding_interval_h) == {8.0}
