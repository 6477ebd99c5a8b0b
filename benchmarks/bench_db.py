"""Bulk-write 1M candle rows on each backend with cryptotft's upsert and with pandas' plain `to_sql`; read them back
with cryptotft's streaming read and with pandas' `read_sql`.

Run: .venv/bin/python benchmarks/bench_db.py [--rows 1000000]
Prints rows/s for both and the ratio (goal: >= 10x on PostgreSQL). Both write into an empty table with
the same primary key, so the comparison is insert-into-indexed-table either way; ours also handles
conflicts (upsert), to_sql does not. The read streams in chunks (a server-side cursor on PostgreSQL), so
its memory stays bounded; it must not be slower than pandas' whole-result read.
"""

import argparse
import os
import sys
import tempfile
import time
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests'))
from cryptotft.db import connect
from pgutil import throwaway_pg_url


def frame(n):
    rng = np.random.default_rng(0)
    n_sym = 10
    per = n // n_sym
    ts = 1_600_000_000_000 - 1_600_000_000_000 % 900_000 + 900_000 * np.arange(per)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n_sym, per)), 1))
    return pd.DataFrame(
        {
            'symbol': np.repeat([f'SYM{i}USDT' for i in range(n_sym)], per),
            'interval': '15',
            'timestamp': np.tile(ts, n_sym),
            'open': c.ravel(),
            'high': c.ravel() * 1.001,
            'low': c.ravel() * 0.999,
            'close': c.ravel(),
            'volume': rng.random(per * n_sym),
            'turnover': rng.random(per * n_sym),
        }
    )


def bench(url, df, label):
    db = connect(url)
    db.init_db()
    t = time.perf_counter()
    db.upsert('raw_market_data', df)
    ours = time.perf_counter() - t
    assert db.count_rows('raw_market_data') == len(df)
    t = time.perf_counter()
    db.upsert('raw_market_data', df)
    again = time.perf_counter() - t
    # baseline: pandas to_sql into an identical empty table (same key), default settings
    with db.engine.begin() as c:
        c.exec_driver_sql('CREATE TABLE raw_copy AS SELECT * FROM raw_market_data WHERE 1=0')
        c.exec_driver_sql(
            'ALTER TABLE raw_copy ADD PRIMARY KEY (symbol, "interval", "timestamp")'
            if db.dialect == 'postgresql'
            else 'CREATE UNIQUE INDEX raw_copy_pk ON raw_copy (symbol, "interval", "timestamp")'
        )
    t = time.perf_counter()
    df.to_sql('raw_copy', db.engine, if_exists='append', index=False)
    base = time.perf_counter() - t
    n = len(df)
    print(
        f"{label:10s} cryptotft upsert {n / ours:12,.0f} rows/s | re-upsert {n / again:12,.0f} rows/s | "
        f"pandas to_sql {n / base:10,.0f} rows/s | ratio {base / ours:5.1f}x"
    )
    sql = 'SELECT symbol, timestamp, open, high, low, close, volume, turnover FROM raw_market_data'
    t = time.perf_counter()
    got = db.read_sql(sql)
    read = time.perf_counter() - t
    t = time.perf_counter()
    with db.engine.connect() as c:
        pd.read_sql(sql, c)
    base_read = time.perf_counter() - t
    assert len(got) == n
    print(
        f"{label:10s} cryptotft read   {n / read:12,.0f} rows/s (streamed in chunks) | "
        f"pandas read_sql {n / base_read:10,.0f} rows/s | ratio {base_read / read:5.1f}x"
    )
    db.engine.dispose()


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--rows', type=int, default=1_000_000)
    a = ap.parse_args()
    df = frame(a.rows)
    with tempfile.TemporaryDirectory() as d:
        bench(f'sqlite:///{d}/bench.db', df, 'sqlite')
    with throwaway_pg_url('ctft_bench') as url:
        bench(url, df, 'postgresql')
