"Several processes on one database at once: schema creation and column additions never collide (both backends)."

import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from cryptotft.db import connect

N = 4
ROUNDS = 6


def _init_db(url, barrier, results):
    "Connect, wait until every process has, then create the schema at the same moment."
    try:
        db = connect(url)
        barrier.wait(60)
        db.init_db()
        results.put('ok')
    except Exception as e:  # reported to the test, which shows it
        results.put(f'{type(e).__name__}: {str(e)[:300]}')


def _add_columns(url, barrier, results, worker):
    "Upsert processed rows that bring new columns, all processes at the same moment."
    try:
        db = connect(url)
        ts = 1719792000000 + 900_000 * np.arange(50)
        rows = pd.DataFrame({'symbol': 'BTCUSDT', 'interval': '15', 'timestamp': ts})
        for r in range(ROUNDS):  # every round adds columns that all processes bring at the same moment
            barrier.wait(60)
            db.upsert('processed_market_data', rows.assign(**{f'shared_{r}': 1.0, f'own_{worker}_{r}': float(worker)}))
        results.put('ok')
    except Exception as e:
        results.put(f'{type(e).__name__}: {str(e)[:300]}')


def _run_together(target, url, *args):
    "Run `target(url, barrier, results, *args[i])` in N spawned processes; their results."
    ctx = mp.get_context('spawn')
    barrier, results = ctx.Barrier(N), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, barrier, results, *([i] if args else []))) for i in range(N)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    return [results.get(timeout=10) for _ in procs], [p.exitcode for p in procs]


@pytest.mark.parametrize('attempt', range(2))
def test_four_concurrent_init_db_all_succeed(db_url, attempt):
    got, codes = _run_together(_init_db, db_url)
    assert got == ['ok'] * N and codes == [0] * N
    db = connect(db_url)
    assert db.init_db() is False and db.schema_version() == 1
    assert db.count_rows('schema_info') == 1


def test_concurrent_upserts_adding_new_columns_do_not_collide(db_url):
    connect(db_url).init_db()
    got, codes = _run_together(_add_columns, db_url, 'worker')
    assert got == ['ok'] * N and codes == [0] * N
    p = connect(db_url).read_processed('BTCUSDT')
    assert len(p) == 50
    for r in range(ROUNDS):
        assert (p[f'shared_{r}'] == 1.0).all()
        for i in range(N):  # each process's own column landed whole
            assert (p[f'own_{i}_{r}'] == float(i)).all()
