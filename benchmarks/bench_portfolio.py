"""Portfolio backtest speed: ~50 symbols x 1 year of 15-minute bars, a few thousand model signals plus the references.

Run: .venv/bin/python benchmarks/bench_portfolio.py [--days 365] [--n-signals 3000] [--max-positions 5] [--synthetic]
Data: the last `--days` of /work/shared/data/binance_usdm_15m (real Binance USD-M candles, 50 symbols) with funding
where available; `--synthetic` (or a missing folder) uses cryptotft.synthetic with 50 symbols instead (exactly
50 x 96 x days bars). Prints the time of each step: building the Market, the first (compiling) call, the model's
backtest, the always-long reference (a candidate at every bar) and the random-entry reference.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if 'NUMBA_CACHE_DIR' not in os.environ:  # an empty cache: the first call measures a cold compile
    os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp(prefix='bench_portfolio_numba_')
    atexit.register(shutil.rmtree, os.environ['NUMBA_CACHE_DIR'], True)
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cryptotft.config import RiskProfile, to_ms  # noqa: E402
from cryptotft.portfolio import labelled, market_arrays, portfolio_backtest, reference_signals  # noqa: E402
from _options import run_with_options  # noqa: E402

DATA = Path('/work/shared/data')


def load(days: int, synthetic: bool):
    "Candles and funding (long frames with `symbol`) of the last `days` days."
    files = sorted((DATA / 'binance_usdm_15m').glob('*.parquet'))
    if synthetic or not files:
        from cryptotft.synthetic import synthetic_market

        return (*synthetic_market([f'SYN{i:02d}USDT' for i in range(50)], days=days, seed=0), 'synthetic')
    candles, funding = [], []
    for f in files:
        c = pd.read_parquet(f)
        c = c[to_ms(c['timestamp']) >= to_ms(c['timestamp']).max() - days * 86_400_000].assign(symbol=f.stem)
        candles.append(c)
        fund = DATA / 'binance_usdm_funding' / f.name
        if fund.exists():
            funding.append(pd.read_parquet(fund).assign(symbol=f.stem))
    return pd.concat(candles, ignore_index=True), pd.concat(funding, ignore_index=True), 'real Binance USD-M'


def timed(label, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f'{label}: {time.perf_counter() - t0:.2f}s')
    return out


def main(days=365, n_signals=3000, max_positions=5, synthetic=False, horizon=100):
    profile = RiskProfile()
    candles, funding, source = load(days, synthetic)
    market = timed('market_arrays', lambda: market_arrays(candles, funding))
    print(
        f'data: {source}, {len(market.symbols)} symbols, {len(market.ts):,} bars, grid {len(market.grid):,} bars; '
        f'numba {numba.__version__}, {numba.get_num_threads()} threads'
    )
    tiny = market_arrays(candles[candles.symbol == candles.symbol.iloc[0]].iloc[:300])
    first = reference_signals(tiny, 10, horizon)['always_long']
    timed('first call (numba compile, cold cache)', lambda: portfolio_backtest(tiny, first, profile, horizon))

    rng = np.random.default_rng(0)  # model-like signals: random labelled bars, sides and scores
    bars = np.sort(rng.choice(np.flatnonzero(labelled(market, horizon)), n_signals, replace=False))
    signals = pd.DataFrame(
        {
            'symbol': market.symbols[market.symbol_code[bars]],
            'timestamp': market.ts[bars],
            'side': rng.integers(0, 2, n_signals),
            'score': rng.random(n_signals),
        }
    )
    kw = dict(profile=profile, horizon=horizon, max_positions=max_positions)
    model = timed(f'model backtest ({n_signals:,} signals)', lambda: portfolio_backtest(market, signals, **kw))
    refs = timed('reference signals', lambda: reference_signals(market, n_signals, horizon))
    always = timed(
        f'always-long ({len(refs["always_long"]):,} candidates)',
        lambda: portfolio_backtest(market, refs['always_long'], **kw),
    )
    timed('random entry', lambda: portfolio_backtest(market, refs['random_entry'], **kw))
    for name, r in (('model', model), ('always_long', always)):
        s = r.stats
        print(f'{name}: {s["n_trades"]:,} trades, exposure {s["exposure"]:.2f}, total return {s["total_return"]:+.3f}')


if __name__ == '__main__':
    run_with_options(main, __doc__)
