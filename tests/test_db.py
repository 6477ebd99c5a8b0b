"The same database contract, run against the embedded SQLite file and the real PostgreSQL server."

import multiprocessing as mp
import numpy as np
import pandas as pd
import pytest
from cryptotft.config import DataError, to_ms
from cryptotft.db import connect, SCHEMA_VERSION
from cryptotft.synthetic import synthetic_market


@pytest.fixture
def db(db_url):
    d = connect(db_url)
    d.init_db()
    yield d
    d.engine.dispose()


def candles(n=500, symbols=('BTCUSDT', 'ETHUSDT'), seed=0):
    c, f = synthetic_market(symbols, days=n / 96, seed=seed)
    return c.assign(interval='15'), f


def test_init_db_is_idempotent_and_stores_schema_version(db_url):
    d = connect(db_url)
    assert d.schema_version() is None
    assert d.init_db() is True
    assert d.init_db() is False
    assert d.schema_version() == SCHEMA_VERSION
    assert {
        'raw_market_data',
        'processed_market_data',
        'model_metadata',
        'training_sequences',
        'model_predictions',
        'funding_rates',
        'symbols',
    } <= set(__import__('sqlalchemy').inspect(d.engine).get_table_names())


def test_upsert_twice_never_duplicates_and_updates_values(db):
    c, _ = candles()
    assert db.upsert('raw_market_data', c) == len(c)
    changed = c.assign(close=c.close * 2)
    db.upsert('raw_market_data', changed)
    assert db.count_rows('raw_market_data') == len(c)
    got = db.read_candles('ETHUSDT')
    np.testing.assert_array_equal(got.close.to_numpy(), changed[changed.symbol == 'ETHUSDT'].close.to_numpy())


def test_bulk_round_trip_keeps_values_dtypes_and_utc_timestamps(db):
    c, f = candles(2000)
    db.upsert('raw_market_data', c)
    db.upsert('funding_rates', f)
    for s in ('BTCUSDT', 'ETHUSDT'):
        want = c[c.symbol == s].reset_index(drop=True)
        got = db.read_candles(s, '15')
        assert str(got.timestamp.dtype) == 'datetime64[ns, UTC]'
        assert (to_ms(got.timestamp) == to_ms(want.timestamp)).all()
        for col in ('open', 'high', 'low', 'close', 'volume', 'turnover'):
            assert got[col].dtype == np.float64
            np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy())  # exact: no float formatting loss
        fr = db.read_funding(s)
        np.testing.assert_array_equal(fr.rate.to_numpy(), f[f.symbol == s].rate.to_numpy())


def test_reads_filter_by_symbol_and_half_open_time_range(db):
    c, _ = candles(96)
    db.upsert('raw_market_data', c)
    ts = c.timestamp.iloc[10]
    got = db.read_candles('BTCUSDT', start=ts, end=ts + pd.Timedelta('1h'))
    assert len(got) == 4 and got.timestamp.iloc[0] == ts
    assert db.last_timestamp('BTCUSDT') == c.timestamp.iloc[95]
    assert db.stored_symbols() == ['BTCUSDT', 'ETHUSDT']


def test_failed_bulk_write_leaves_table_unchanged(db):
    c, _ = candles(200)
    db.upsert('raw_market_data', c)
    before = db.read_candles('BTCUSDT')
    bad = c.assign(close=-1.0)
    bad.loc[bad.index[-1], 'open'] = np.nan  # NOT NULL column: the database rejects the last row
    with pytest.raises(Exception):
        db.upsert('raw_market_data', bad)
    pd.testing.assert_frame_equal(db.read_candles('BTCUSDT'), before)
    assert db.count_rows('raw_market_data') == len(c)


def _writer(url, seed):
    from cryptotft.db import connect

    c, _ = candles(300, seed=0)
    d = connect(url)
    for i in range(3):
        d.upsert('raw_market_data', c.assign(volume=c.volume + seed + i))


def test_concurrent_writers_do_not_duplicate_rows(db, db_url):
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=_writer, args=(db_url, s)) for s in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    assert db.count_rows('raw_market_data') == 2 * 300


def test_processed_table_grows_columns_on_demand(db):
    c, _ = candles(50)
    key = c[['symbol', 'interval', 'timestamp']]
    db.upsert('processed_market_data', key.assign(rsi=1.0, adx=2.0))
    db.upsert('processed_market_data', key.assign(buy_return=np.where(np.arange(len(key)) % 2, 0.5, np.nan)))
    p = db.read_processed(['BTCUSDT'])
    assert list(p.columns) == ['symbol', 'timestamp', 'rsi', 'adx', 'buy_return'] and len(p) == 50
    assert p.buy_return.isna().sum() == 25 and (p.rsi == 1.0).all()


def test_run_records_round_trip(db):
    db.record_run(
        'run1',
        'classification',
        'done',
        ['BTCUSDT', 'ETHUSDT'],
        '2024-01-01',
        '2024-02-01',
        {'model': {'d_model': 16}},
        {'auc': 0.55},
        {'model': 'runs/run1/model.keras'},
    )
    r = db.read_runs().iloc[0]
    assert r.run_id == 'run1' and r.metrics == {'auc': 0.55} and r.config['model']['d_model'] == 16
    assert r.data_end == pd.Timestamp('2024-02-01', tz='UTC')


def test_a_run_without_a_data_range_stores_null_and_survives_being_written_again(db):
    "Empty times are NULL, read back as NaT, and a record written from what was read stays readable."
    db.record_run('bare', 'regression', 'done', ['BTCUSDT'], None, None, {})
    r = db.read_runs().iloc[0]
    assert pd.isna(r.data_start) and pd.isna(r.data_end)
    db.record_run('bare', r.task, r.status, ['BTCUSDT'], r.data_start, r.data_end, r.config, {'mae': 1.0})
    again = db.read_runs().iloc[0]
    assert pd.isna(again.data_start) and again.metrics == {'mae': 1.0}
    raw = db.read_sql("SELECT data_start FROM model_metadata WHERE run_id = 'bare'")
    assert raw.data_start.isna().all()  # NULL, not a 1677 sentinel


def test_unreachable_database_is_one_clear_error():
    with pytest.raises(DataError, match=r'^cannot reach database postgresql\+psycopg2://x@127.0.0.1:9/none'):
        connect('postgresql://x@127.0.0.1:9/none')


def test_plain_postgresql_url_uses_installed_driver(db_url):
    if not db_url.startswith('postgresql'):
        pytest.skip('PostgreSQL only')
    assert connect(db_url).engine.dialect.driver == 'psycopg2'


@pytest.mark.parametrize('symbol', ['X' * 40, 'btcusdt', "BTC'--"])
def test_malformed_symbol_is_refused_alike_on_both_backends_and_nothing_is_stored(db, symbol):
    c, _ = candles(20, symbols=('BTCUSDT',))
    bad = pd.concat([c, c.head(1).assign(symbol=symbol)], ignore_index=True)
    with pytest.raises(DataError, match='have symbol'):
        db.upsert('raw_market_data', bad)
    assert db.count_rows('raw_market_data') == 0


def test_reads_stream_in_chunks_with_the_same_rows_on_both_backends(db):
    c, _ = candles(1000)
    db.upsert('raw_market_data', c)
    sql = 'SELECT symbol, timestamp, close FROM raw_market_data ORDER BY symbol, timestamp'
    chunks = list(db.iter_sql(sql, chunk_rows=300))
    assert [len(x) for x in chunks] == [300] * 6 + [200]
    whole = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(whole, db.read_sql(sql))
    assert str(whole.timestamp.dtype) == 'datetime64[ns, UTC]' and whole.close.dtype == np.float64
    assert len(list(db.iter_sql(sql + ' LIMIT 0'))) == 1  # an empty result is one empty frame with its columns
    assert list(next(db.iter_sql(sql + ' LIMIT 0')).columns) == ['symbol', 'timestamp', 'close']


def test_iter_processed_reads_one_symbol_at_a_time_with_only_the_asked_columns(db):
    c, _ = candles(100)
    key = c[['symbol', 'interval', 'timestamp']]
    db.upsert('processed_market_data', key.assign(rsi=1.0, adx=2.0, wide=3.0))
    got = list(db.iter_processed(columns=['rsi']))
    assert [s for s, _ in got] == ['BTCUSDT', 'ETHUSDT']
    assert all(list(f.columns) == ['symbol', 'timestamp', 'rsi'] and (f.symbol == s).all() for s, f in got)


def test_init_db_adds_declared_columns_an_older_database_lacks(db_url):
    import sqlalchemy as sa

    d = connect(db_url)
    with d.engine.begin() as c:  # model_predictions as an older cryptotft created it: no expected-return columns
        c.exec_driver_sql(
            'CREATE TABLE model_predictions (run_id VARCHAR(64), symbol VARCHAR(32), "timestamp" BIGINT, '
            'buy_q50 FLOAT, sell_q50 FLOAT, PRIMARY KEY (run_id, symbol, "timestamp"))'
        )
        c.exec_driver_sql("INSERT INTO model_predictions VALUES ('r1', 'BTCUSDT', 1719792000000, 0.5, -0.5)")
    assert d.init_db() is True and d.init_db() is False
    cols = {c['name'] for c in sa.inspect(d.engine).get_columns('model_predictions')}
    assert {'buy_expected_return', 'sell_expected_return', 'buy_q10', 'sell_return'} <= cols
    row = d.read_sql('SELECT * FROM model_predictions').iloc[0]
    assert row.buy_q50 == 0.5 and np.isnan(row.buy_expected_return)
