"""Benchmark: 49 indicators for ~1M rows with cryptotft (TA-Lib) next to the `ta` package computing the same
families, in the same process, on the same candles.

    .venv/bin/python benchmarks/bench_indicators.py            # the 8 majors from ../shared/data (~980k rows)
    .venv/bin/python benchmarks/bench_indicators.py --synthetic --rows 1000000

Prints seconds, rows/s and the speed ratio (goal: >= 5x). The `ta` reference is the one the tests use.
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from cryptotft.indicators import compute_indicators  # noqa: E402
from cryptotft.synthetic import synthetic_market  # noqa: E402
from test_indicators import ta_reference  # noqa: E402  (the same families, in our names)

REAL = ROOT.parent / 'shared' / 'data' / 'binance_usdm_15m'
MAJORS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'XRPUSDT', 'DOGEUSDT', 'ADAUSDT', 'TRXUSDT']


def real_candles(rows: int) -> list[pd.DataFrame]:
    "Per-symbol real candles of the majors, up to `rows` in all."
    out, left = [], rows
    for s in MAJORS:
        if left <= 0:
            break
        raw = pd.read_parquet(REAL / f'{s}.parquet').iloc[:left].reset_index(drop=True)
        raw['timestamp'] = pd.to_datetime(raw.timestamp, utc=True)
        out.append(raw.assign(turnover=raw.volume * raw.close))
        left -= len(raw)
    return out


def synthetic_candles(rows: int, per_symbol: int = 125_000) -> list[pd.DataFrame]:
    "SYNTHETIC candles in symbols of `per_symbol` bars."
    n_sym = max(1, -(-rows // per_symbol))
    c, _ = synthetic_market([f'S{i}USDT' for i in range(n_sym)], days=-(-per_symbol // 96), seed=0)
    return [g.drop(columns='symbol').iloc[:per_symbol].reset_index(drop=True) for _, g in c.groupby('symbol')][:n_sym]


def timed(f, frames):
    t0 = time.perf_counter()
    for c in frames:
        f(c)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--synthetic', action='store_true')
    ap.add_argument('--skip-ta', action='store_true', help='only time cryptotft')
    a = ap.parse_args()
    frames = synthetic_candles(a.rows) if a.synthetic or not REAL.exists() else real_candles(a.rows)
    n = sum(map(len, frames))
    print(
        f'{n:,} rows in {len(frames)} symbols ({"synthetic" if a.synthetic or not REAL.exists() else "real Binance 15m"})'
    )
    compute_indicators(frames[0].iloc[:2000])  # warm imports
    ours = timed(compute_indicators, frames)
    print(f'cryptotft.compute_indicators (49 features), 1 thread : {ours:7.2f} s  {n / ours:12,.0f} rows/s')
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(compute_indicators, frames))
    threaded = time.perf_counter() - t0
    print(f'cryptotft.compute_indicators, 2 threads over symbols: {threaded:7.2f} s  {n / threaded:12,.0f} rows/s')
    if a.skip_ta:
        return
    theirs = timed(ta_reference, frames)
    print(
        f'ta 0.11, same families ({len(ta_reference(frames[0].iloc[:500]).columns)} columns)      : {theirs:7.2f} s  {n / theirs:12,.0f} rows/s'
    )
    print(f'speed-up, 1 thread: {theirs / ours:.1f}x   (2 threads: {theirs / threaded:.1f}x; goal >= 5x)')


if __name__ == '__main__':
    main()
