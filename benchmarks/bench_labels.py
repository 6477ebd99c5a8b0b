"""Label speed: `expected_returns(df)` (the public API, as a notebook calls it) on 1M real 15m bars and the numba
kernel on ~5M, both sides, next to the plain-Python reference simulator on a slice, in the same process.

Run: .venv/bin/python benchmarks/bench_labels.py [--api-bars 1000000] [--n-bars 5000000] [--ref-bars 20000]
Data: /work/shared/data/binance_usdm_15m (real Binance USD-M candles) with funding where available;
falls back to a synthetic random walk when the folder is missing. Prints bars/s of each and the ratios
(goal for the API: >= 200x the reference), and checks that the API's labels are bit-identical to the kernel's.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if 'NUMBA_CACHE_DIR' not in os.environ:  # an empty cache: the first call measures a cold compile
    os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp(prefix='bench_labels_numba_')
    atexit.register(shutil.rmtree, os.environ['NUMBA_CACHE_DIR'], True)
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'tests')]

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cryptotft.config import RiskProfile, from_ms, to_ms  # noqa: E402
from cryptotft.labels import expected_returns, funding_per_bar, segment_ends, simulate_entries  # noqa: E402
from reference_labels import reference_labels  # noqa: E402
from _options import run_with_options  # noqa: E402

DATA = Path('/work/shared/data')


def load_symbols():
    """Per-symbol (candles, funding or None) from the shared real data, else one synthetic walk."""
    files = sorted((DATA / 'binance_usdm_15m').glob('*.parquet'))
    if not files:
        rng = np.random.default_rng(0)
        n = 2_500_000
        c = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
        o = np.r_[100, c[:-1]]
        w = np.abs(rng.normal(0, 0.002, (2, n)))
        ts = pd.date_range('2020-01-01', periods=n, freq='15min', tz='UTC')
        return [
            (
                'SYNTHETIC',
                pd.DataFrame(
                    {
                        'timestamp': ts,
                        'open': o,
                        'close': c,
                        'high': np.maximum(o, c) * (1 + w[0]),
                        'low': np.minimum(o, c) * (1 - w[1]),
                    }
                ),
                None,
            )
        ]
    out = []
    for f in files:
        fund = DATA / 'binance_usdm_funding' / f.name
        out.append((f.stem, pd.read_parquet(f), pd.read_parquet(fund) if fund.exists() else None))
    return out


def concat_arrays(symbols, n_bars):
    """Arrays of all symbols end to end (segments never cross symbols), tiled up to n_bars."""
    parts = []
    for _, candles, funding in symbols:
        ts = to_ms(candles['timestamp'])
        fund = (
            np.zeros(len(ts))
            if funding is None
            else funding_per_bar(ts, to_ms(funding['timestamp']), funding['rate'].to_numpy())
        )
        parts.append(
            [candles[k].to_numpy(np.float64) for k in ('open', 'high', 'low', 'close')] + [fund, segment_ends(ts)]
        )
    cols, offset, seg = [[] for _ in range(5)], 0, []
    while offset < n_bars:
        for p in parts:
            for i in range(5):
                cols[i].append(p[i])
            seg.append(p[5] + offset)
            offset += len(p[0])
    n = min(n_bars, offset)
    seg = np.minimum(np.concatenate(seg)[:n], n)
    return [np.concatenate(c)[:n] for c in cols] + [seg]


def api_frame(symbols, n_bars):
    """One symbol's candles and funding as a notebook holds them (tz-aware UTC timestamp columns, as read from the
    database), n_bars long: the longest real symbol repeated end to end on one continuing 15-minute grid."""
    name, candles, funding = max(symbols, key=lambda s: len(s[1]))
    ts = to_ms(candles['timestamp'])
    span = int(ts[-1] - ts[0]) + 900_000
    reps = -(-n_bars // len(ts))
    shift = np.repeat(np.arange(reps, dtype=np.int64) * span, len(ts))[:n_bars]
    c = pd.concat([candles] * reps, ignore_index=True).iloc[:n_bars]
    c = c.assign(timestamp=from_ms(np.tile(ts, reps)[:n_bars] + shift).to_numpy())
    f = None
    if funding is not None:
        fts = to_ms(funding['timestamp'])
        f = pd.DataFrame(
            {
                'timestamp': from_ms(np.concatenate([fts + k * span for k in range(reps)])).to_numpy(),
                'rate': np.tile(funding['rate'].to_numpy(np.float64), reps),
            }
        )
        f = f[f.timestamp <= c.timestamp.iloc[-1]].reset_index(drop=True)
    return name, c, f


def measure_api(symbols, n_bars, profile, horizon):
    """bars/s of expected_returns on one n_bars frame (best of 3); whether its labels equal the kernel's bits."""
    name, c, f = api_frame(symbols, n_bars)
    expected_returns(c.iloc[:1000], profile, horizon, None if f is None else f.iloc[:10])
    best, out = float('inf'), None
    for _ in range(3):
        t0 = time.perf_counter()
        out = expected_returns(c, profile, horizon, f)
        best = min(best, time.perf_counter() - t0)
    ts = to_ms(c['timestamp'])
    fund = np.zeros(len(ts)) if f is None else funding_per_bar(ts, to_ms(f['timestamp']), f['rate'].to_numpy())
    o, h, l, cl = (c[k].to_numpy(np.float64) for k in ('open', 'high', 'low', 'close'))
    sim = simulate_entries(o, h, l, cl, fund, segment_ends(ts), profile, horizon)
    same = all(
        np.array_equal(out[f'{s}_return'].to_numpy(), sim[f'{s}_return'], equal_nan=True) for s in ('buy', 'sell')
    )
    return name, len(c), len(c) / best, best, same


def cached_load_seconds():
    """First call in a fresh process once the on-disk numba cache exists (what the notebook pays)."""
    code = (
        'import time, numpy as np; t=time.perf_counter(); from cryptotft.labels import simulate_entries; '
        'x=np.full(300, 100.0); simulate_entries(x, x, x, x, np.zeros(300), np.full(300, 300), None, 100); '
        'print(time.perf_counter()-t)'
    )
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, env=os.environ)
    return float(r.stdout.strip()) if r.returncode == 0 else float('nan')


def main(n_bars=5_000_000, api_bars=1_000_000, ref_bars=20_000, horizon=100):
    profile = RiskProfile()
    t0 = time.perf_counter()
    symbols = load_symbols()
    o, h, l, c, fund, seg = concat_arrays(symbols, n_bars)
    print(
        f'data: {len(symbols)} symbol(s), {len(c):,} bars (real data tiled to the target), '
        f'loaded in {time.perf_counter() - t0:.1f}s; numba {numba.__version__}, {numba.get_num_threads()} threads'
    )

    t0 = time.perf_counter()
    simulate_entries(
        o[:1000], h[:1000], l[:1000], c[:1000], fund[:1000], np.minimum(seg[:1000], 1000), profile, horizon
    )
    print(
        f'numba compile (cold cache, first call): {time.perf_counter() - t0:.2f}s; '
        f'fresh process with warm on-disk cache: {cached_load_seconds():.2f}s (import + first call)'
    )

    t0 = time.perf_counter()
    sim = simulate_entries(o, h, l, c, fund, seg, profile, horizon)
    kernel_s = time.perf_counter() - t0
    kernel_rate = len(c) / kernel_s
    held = np.nanmean(np.r_[sim['buy_exit_bars'][sim['valid']], sim['sell_exit_bars'][sim['valid']]])
    print(
        f'kernel, {numba.get_num_threads()} threads: {len(c):,} bars (both sides) in {kernel_s:.2f}s = '
        f'{kernel_rate:,.0f} bars/s '
        f'(mean bars held {held:.1f})'
    )

    every = max(1, len(c) // 1_000_000)  # a strided sample: the same market mix as the full run
    sample = np.arange(0, len(c), every)
    numba.set_num_threads(1)
    t0 = time.perf_counter()
    simulate_entries(o, h, l, c, fund, seg, profile, horizon, entries=sample)
    one_rate = len(sample) / (time.perf_counter() - t0)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    print(
        f'kernel, 1 thread: {one_rate:,.0f} bars/s on a 1-in-{every} sample of the same bars ({len(sample):,} entries)'
    )

    name, candles, funding = next((s for s in symbols if s[0] == "BTCUSDT"), symbols[0])
    sl = candles.iloc[: ref_bars + horizon]
    fun = (
        None
        if funding is None
        else funding[(funding.timestamp >= sl.timestamp.iloc[0]) & (funding.timestamp <= sl.timestamp.iloc[-1])]
    )
    t0 = time.perf_counter()
    ref = reference_labels(sl, profile, horizon, fun)
    ref_rate = len(sl) / (time.perf_counter() - t0)
    ours = expected_returns(sl, profile, horizon, fun)
    agree = np.allclose(ours.buy_return, ref.buy_return, atol=1e-9, equal_nan=True) and np.allclose(
        ours.sell_return, ref.sell_return, atol=1e-9, equal_nan=True
    )
    print(
        f'reference (plain Python): {len(sl):,} bars of {name} = {ref_rate:,.0f} bars/s; '
        f'kernel agrees on the slice: {agree}'
    )
    print(
        f'ratio kernel / reference: {kernel_rate / ref_rate:,.0f}x ({numba.get_num_threads()} threads), '
        f'{one_rate / ref_rate:,.0f}x (1 thread)'
    )
    api_name, n_api, api_rate, api_s, same = measure_api(symbols, api_bars, profile, horizon)
    print(
        f'expected_returns(df), the public API: {n_api:,} bars of {api_name} '
        '(tz-aware timestamps, funding, both sides) '
        f'in {api_s:.2f}s = {api_rate:,.0f} bars/s; labels bit-identical to the kernel: {same}'
    )
    print(f'ratio expected_returns / reference: {api_rate / ref_rate:,.0f}x (goal >= 200x)')


if __name__ == '__main__':
    run_with_options(main, __doc__)
