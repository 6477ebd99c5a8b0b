"""Which context inputs carry information? Rank IC of every `cryptotft.context` column against the forward
100-bar log return, on the 8 majors of ../shared/data (Binance USD-M 15m candles and funding), in one year.

    .venv/bin/python benchmarks/context_ic.py                       # 2024, forward 100 bars
    .venv/bin/python benchmarks/context_ic.py --year 2023 --horizon 96 --csv /tmp/ic.csv

Per-symbol columns: the cross-sectional rank IC (Spearman across the 8 symbols at each timestamp, averaged over
timestamps), its t-statistic over daily means, the same mean in each half of the year, and the pooled Spearman
over all (symbol, bar) rows (and over every `horizon`-th bar only). `own_*` rows are the symbol's own return and
volatility, for comparison: at one timestamp the relative columns rank symbols exactly as the own ones do, so
their cross-sectional ICs are equal and only the pooled ones can differ. Market-wide columns
(equal for every symbol at a bar, so without a cross-sectional IC): the time-series Spearman correlation with
the basket's mean forward return, on all bars and on non-overlapping bars (every `horizon`-th; its standard
error is about 1 / sqrt(n)). Context is computed from 6 months before the year, so every horizon is warm.
"""

import argparse
import time
from pathlib import Path
import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr
from cryptotft.config import to_ms
from cryptotft.context import HORIZONS, VOL_FLOOR, add_context, context_columns

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'
MAJORS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'XRPUSDT', 'DOGEUSDT', 'ADAUSDT', 'TRXUSDT']
BAR = 900_000


def load(symbols, start, end):
    "Real candles (long frame) and funding events ({symbol: frame}) in [start, end)."
    window = [('timestamp', '>=', start), ('timestamp', '<', end)]
    candles = pd.concat(
        [pd.read_parquet(DATA / 'binance_usdm_15m' / f'{s}.parquet', filters=window).assign(symbol=s) for s in symbols],
        ignore_index=True,
    )
    funding = {}
    for s in symbols:
        path = DATA / 'binance_usdm_funding' / f'{s}.parquet'
        if path.exists():
            funding[s] = pd.read_parquet(path, filters=window)
    return candles, funding


def forward_return(df: pd.DataFrame, horizon: int) -> np.ndarray:
    "log close[t + horizon] - log close[t] by the clock (NaN where that candle is missing)."
    key = pd.MultiIndex.from_arrays([df.symbol, to_ms(df.timestamp)])
    later = pd.MultiIndex.from_arrays([df.symbol, to_ms(df.timestamp) + horizon * BAR])
    close = pd.Series(np.log(df.close.to_numpy()), index=key)
    return close.reindex(later).to_numpy() - close.to_numpy()


def cross_sectional_ic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    "(T,) Spearman across columns of (T, S) x and y per row; NaN where a row has a NaN or no spread."
    ok = np.isfinite(x).all(1) & np.isfinite(y).all(1)
    ic = np.full(len(x), np.nan)
    rx, ry = rankdata(x[ok], axis=1), rankdata(y[ok], axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    den = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    with np.errstate(invalid='ignore', divide='ignore'):
        ic[ok] = np.where(den > 0, (rx * ry).sum(1) / den, np.nan)
    return ic


def table(df: pd.DataFrame, columns, horizon: int) -> pd.DataFrame:
    "One row per column: cross-sectional IC stats, or time-series Spearman for market-wide columns."
    ts = to_ms(df.timestamp)
    wide = df.assign(_ts=ts).pivot(index='_ts', columns='symbol')
    y = wide['fwd'].to_numpy()
    day = pd.to_datetime(wide.index, unit='ms', utc=True).floor('D')
    half = pd.to_datetime(wide.index, unit='ms', utc=True).month <= 6
    basket = np.nanmean(y, axis=1)
    sparse_rows = np.arange(len(y)) % horizon == 0
    rows = []
    for c in columns:
        x = wide[c].to_numpy()
        if np.nanstd(x) == 0:
            continue  # e.g. funding_interval_h: every major on 8 h all year
        if bool(np.all(np.nanmax(x, 1) - np.nanmin(x, 1) < 1e-12)):  # market-wide: one value per bar
            v = x[:, 0]
            ok = np.isfinite(v) & np.isfinite(basket)
            rho = spearmanr(v[ok], basket[ok])[0]
            rho_sparse = spearmanr(v[ok & sparse_rows], basket[ok & sparse_rows])[0]
            rows.append({'column': c, 'kind': 'market-wide', 'ts_rho': rho, 'ts_rho_sparse': rho_sparse})
            continue
        ok = np.isfinite(x) & np.isfinite(y)
        pooled = spearmanr(x[ok], y[ok])[0]
        ok_sparse = ok & sparse_rows[:, None]
        pooled_sparse = spearmanr(x[ok_sparse], y[ok_sparse])[0]
        ic = cross_sectional_ic(x, y)
        daily = pd.Series(ic).groupby(day).mean().dropna()
        rows.append(
            {
                'column': c,
                'kind': 'per-symbol',
                'xs_ic': np.nanmean(ic),
                't_daily': daily.mean() / daily.std() * np.sqrt(len(daily)),
                'ic_h1': np.nanmean(ic[half]),
                'ic_h2': np.nanmean(ic[~half]),
                'coverage': np.isfinite(ic).mean(),
                'pooled': pooled,
                'pooled_sparse': pooled_sparse,
            }
        )
    return pd.DataFrame(rows).set_index('column')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--year', type=int, default=2024)
    p.add_argument('--horizon', type=int, default=100, help='forward return in bars')
    p.add_argument('--csv', help='also write the table here')
    a = p.parse_args()
    t0 = time.perf_counter()
    start = pd.Timestamp(f'{a.year}-01-01', tz='UTC')
    end = pd.Timestamp(f'{a.year + 1}-01-01', tz='UTC')
    candles, funding = load(MAJORS, start - pd.Timedelta(days=183), end + pd.Timedelta(days=3))
    t1 = time.perf_counter()
    df = add_context(candles, funding, default_funding_bp=1.0)
    t2 = time.perf_counter()
    df['fwd'] = forward_return(df, a.horizon)
    own = {}
    for h in HORIZONS:  # the symbol's own return and volatility, to compare the relative views against
        own[f'own_ret_{h}'] = df[f'rel_btc_{h}'] + df[f'btc_ret_{h}']
        own[f'own_vol_{h}'] = np.exp(df[f'vol_rel_mkt_{h}']) * (df[f'mkt_vol_{h}'] + VOL_FLOOR) - VOL_FLOOR
    df = df.assign(**own)
    df = df[(df.timestamp >= start) & (df.timestamp < end)]
    out = table(df, [*context_columns(), *own], a.horizon)
    pd.set_option('display.width', 160)
    pd.set_option('display.max_rows', 100)
    print(f'{len(MAJORS)} symbols, {df.timestamp.nunique():,} bars of {a.year}, forward {a.horizon} bars')
    took = time.perf_counter() - t2
    print(f'load {t1 - t0:.1f} s, add_context {t2 - t1:.2f} s on {len(candles):,} rows, IC {took:.1f} s')
    per = out[out.kind == 'per-symbol'].drop(columns=['kind', 'ts_rho', 'ts_rho_sparse'], errors='ignore')
    print('\nper-symbol columns, cross-sectional rank IC (sorted by |IC|):')
    print(per.reindex(per.xs_ic.abs().sort_values(ascending=False).index).round(4).to_string())
    wide = out[out.kind == 'market-wide'][['ts_rho', 'ts_rho_sparse']]
    n = df.timestamp.nunique() // a.horizon
    print(f'\nmarket-wide columns, time-series Spearman with the basket forward return (sparse: n={n}):')
    print(wide.reindex(wide.ts_rho.abs().sort_values(ascending=False).index).round(4).to_string())
    if a.csv:
        out.to_csv(a.csv)


if __name__ == '__main__':
    main()
