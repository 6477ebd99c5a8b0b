"Throw-away PostgreSQL databases on the local server for tests (one per test run)."

import contextlib
import os
import uuid
import pytest

PG_ADMIN = os.environ.get('CRYPTOTFT_TEST_PG', 'postgresql://postgres@127.0.0.1:5432/postgres')


def _admin():
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(PG_ADMIN)
    conn = psycopg2.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database, connect_timeout=5)
    conn.autocommit = True
    return conn, u


@contextlib.contextmanager
def throwaway_pg_url(prefix='ctft_test'):
    "Yield the URL of a new empty database; drop it afterwards. Skips when no server answers."
    try:
        conn, u = _admin()
    except Exception as e:
        pytest.skip(f'PostgreSQL not reachable at {PG_ADMIN}: {e}')
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with conn.cursor() as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{u.username}@{u.host}:{u.port or 5432}/{name}"
    finally:
        with conn.cursor() as c:
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()
