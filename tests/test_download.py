"The Bybit downloader against a fake Bybit server: exactness, incrementality, resumability, faults, CLI."

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptotft.config import BybitConfig, Config, ConfigError, DataError, config_from_dict, from_ms, to_ms
from cryptotft.db import connect
from cryptotft.download import EARLIEST_MS, BybitClient, download, import_csv, instruments_frame, validate_symbols
from fake_bybit import FAULTS, MALFORMED, FakeBybit

STEP = 900_000
T0 = 1719792000000  # 2024-07-01 00:00 UTC
SYMS = ('BTCUSDT', 'ETHUSDT', 'SOLUSDT')
OHLCV = ['open', 'high', 'low', 'close', 'volume', 'turnover']
ROOT = Path(__file__).resolve().parents[1]


def fake_now():
    "Five minutes into the previous 15-minute candle: the fake's newest candle is open by its clock, closed by ours."
    return (int(time.time() * 1000) // STEP - 1) * STEP + 300_000


def make_fake(**kw):
    return FakeBybit(**{'symbols': SYMS, 'days': 3, 'now': fake_now(), 'page_cap': 100, **kw})


@pytest.fixture
def fake():
    with make_fake() as f:
        yield f


def config(fake, **bybit):
    return Config(
        bybit=BybitConfig(
            **{
                'base_url': fake.url,
                'requests_per_second': 500.0,
                'max_concurrency': 3,
                'timeout_s': 2.0,
                'max_retries': 3,
                **bybit,
            }
        )
    )


def run(fake, db, symbols=SYMS, **kw):
    cfg = config(fake, **kw.pop('bybit', {}))
    kw.setdefault('start', fake.first_candle())
    return download(cfg, db, list(symbols), client=BybitClient(cfg.bybit, backoff_s=0.01), progress=False, **kw)


def assert_same_as_server(db, fake, symbol, **kw):
    got, want = db.read_candles(symbol), fake.closed_candles(symbol, **kw)
    assert len(got) == len(want) > 0
    np.testing.assert_array_equal(to_ms(got.timestamp), want.timestamp.to_numpy())
    np.testing.assert_array_equal(got[OHLCV].to_numpy(), want[OHLCV].to_numpy())


def assert_subset_of_server(db, fake, symbol):
    "Partial data is correct: every stored candle is the server's, unchanged."
    got = db.read_candles(symbol).assign(timestamp=lambda d: to_ms(d.timestamp))
    merged = got.merge(fake.closed_candles(symbol), on='timestamp', suffixes=('', '_srv'))
    assert len(merged) == len(got)
    for c in OHLCV:
        np.testing.assert_array_equal(merged[c], merged[c + '_srv'])


def test_full_download_equals_server_candles_and_funding(fake, sqlite_db):
    rep = run(fake, sqlite_db)
    assert rep.errors == {}
    for s in SYMS:
        assert_same_as_server(sqlite_db, fake, s)
        f, want = sqlite_db.read_funding(s), fake.funding_events(s)
        np.testing.assert_array_equal(to_ms(f.timestamp), want.timestamp)
        np.testing.assert_array_equal(f.rate, want.rate)
    assert list(rep.gaps['count']) == [len(fake.closed_candles(s)) for s in SYMS] and rep.gaps.missing.sum() == 0
    assert sqlite_db.count_rows('raw_market_data') == rep.candles == 3 * 287
    kp = fake.params('kline')
    assert {(p['category'], p['limit'], p['interval']) for p in kp} == {('linear', '1000', '15')}
    assert len(kp) <= 3 * (3 + 1)  # 287 candles in pages of 100 (server cap), plus the open candle's range


def test_still_open_candle_is_never_stored(fake, sqlite_db):
    run(fake, sqlite_db)
    open_ts = fake.now // STEP * STEP
    assert fake.market()[0].timestamp.max() == open_ts  # the server does serve it
    stored = to_ms(sqlite_db.read_candles('BTCUSDT').timestamp)
    assert stored.max() == open_ts - STEP


def test_rerun_sends_no_kline_request_for_a_complete_range(fake, sqlite_db):
    end = from_ms(fake.now // STEP * STEP)
    run(fake, sqlite_db, end=end)
    fake.reset_log()
    rep = run(fake, sqlite_db, end=end)
    assert fake.count('kline') == 0 and rep.candles == 0 and rep.errors == {}


def test_rerun_with_open_end_asks_only_for_the_tail(fake, sqlite_db):
    run(fake, sqlite_db)
    fake.reset_log()
    rep = run(fake, sqlite_db)
    assert rep.candles == 0
    starts = [int(p['start']) for p in fake.params('kline')]
    assert len(starts) <= len(SYMS) and all(s >= fake.now // STEP * STEP - STEP for s in starts)


def test_start_anchored_pages_give_the_same_candles(sqlite_db):
    with make_fake(anchor='start', page_cap=70) as fake:
        assert run(fake, sqlite_db).errors == {}
        for s in SYMS:
            assert_same_as_server(sqlite_db, fake, s)


def test_real_hole_is_reported_and_asked_for_once_per_run(sqlite_db):
    t0 = fake_now() // STEP * STEP - 200 * STEP
    with make_fake(holes={'BTCUSDT': [(t0, t0 + 4 * STEP)]}) as fake:
        rep = run(fake, sqlite_db)
        assert_same_as_server(sqlite_db, fake, 'BTCUSDT')
        assert rep.gaps.set_index('symbol').missing.to_dict() == {'BTCUSDT': 5, 'ETHUSDT': 0, 'SOLUSDT': 0}
        fake.reset_log()
        rep = run(fake, sqlite_db)
        btc = [p for p in fake.params('kline') if p['symbol'] == 'BTCUSDT']
        assert rep.candles == 0 and 1 <= len(btc) <= 3


def test_holes_inside_the_stored_range_are_filled(fake, sqlite_db):
    run(fake, sqlite_db)
    ts = fake.closed_candles('ETHUSDT').timestamp
    with sqlite_db.engine.begin() as c:
        c.exec_driver_sql(
            "DELETE FROM raw_market_data WHERE symbol='ETHUSDT' AND (timestamp < ? OR timestamp BETWEEN ? AND ?)",
            (int(ts[3]), int(ts[50]), int(ts[60])),
        )
    fake.reset_log()
    rep = run(fake, sqlite_db)
    assert rep.candles == 3 + 11
    assert_same_as_server(sqlite_db, fake, 'ETHUSDT')
    assert len([p for p in fake.params('kline') if p['symbol'] == 'ETHUSDT']) <= 3


KILL_SCRIPT = """
import sys
from cryptotft.config import BybitConfig, Config
from cryptotft.db import connect
from cryptotft.download import download
url, db_url, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = Config(bybit=BybitConfig(base_url=url, max_concurrency=2, requests_per_second=500.0))
download(cfg, connect(db_url), ['BTCUSDT', 'ETHUSDT'], start=start, progress=False)
"""


def test_resume_after_kill_leaves_no_gap_and_no_duplicate(tmp_path, sqlite_url):
    with make_fake(symbols=('BTCUSDT', 'ETHUSDT'), days=4, page_cap=10, latency=0.04) as fake:
        proc = subprocess.Popen([sys.executable, '-c', KILL_SCRIPT, fake.url, sqlite_url, str(fake.first_candle())])
        db, n, deadline = connect(sqlite_url), 0, time.time() + 60
        while n < 100 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
            try:
                n = db.count_rows('raw_market_data')
            except Exception:
                n = 0
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        partial = db.count_rows('raw_market_data')
        total = sum(len(fake.closed_candles(s)) for s in ('BTCUSDT', 'ETHUSDT'))
        assert 100 <= partial < total, (partial, total)  # killed mid-download
        for s in ('BTCUSDT', 'ETHUSDT'):
            assert_subset_of_server(db, fake, s)
        rep = run(fake, db, symbols=('BTCUSDT', 'ETHUSDT'))
        assert rep.errors == {} and rep.candles == total - partial
        for s in ('BTCUSDT', 'ETHUSDT'):
            assert_same_as_server(db, fake, s)
            assert len(db.read_funding(s)) == len(fake.funding_events(s))


@pytest.mark.parametrize('kind', FAULTS)
def test_passing_fault_ends_in_complete_data(kind, fake, sqlite_db):
    fake.fail_next(kind, n=2, path='kline', after=1, slow_s=0.6)
    fake.fail_next(kind, n=1, path='funding', slow_s=0.6)
    rep = run(fake, sqlite_db, bybit=dict(timeout_s=0.3))
    assert rep.errors == {}
    for s in SYMS:
        assert_same_as_server(sqlite_db, fake, s)
    assert fake.count('kline') >= 3 + 2


@pytest.mark.parametrize('kind', FAULTS)
def test_lasting_fault_reports_error_and_keeps_partial_data_correct(kind, fake, sqlite_db):
    fake.fail_next(kind, n=10**6, path='kline', after=2, slow_s=0.4)
    rep = run(fake, sqlite_db, bybit=dict(max_concurrency=1, max_retries=2, timeout_s=0.2))
    assert set(rep.errors) == set(SYMS)
    assert all('gave up after 3 tries' in e and 'Bybit' in e for e in rep.errors.values()), rep.errors
    assert 0 < sqlite_db.count_rows('raw_market_data') < 3 * 287
    for s in SYMS:
        assert_subset_of_server(sqlite_db, fake, s)
    fake.faults.clear()
    assert run(fake, sqlite_db).errors == {}
    for s in SYMS:
        assert_same_as_server(sqlite_db, fake, s)


@pytest.mark.parametrize('kind', MALFORMED)
@pytest.mark.parametrize('path', ['kline', 'funding'])
def test_malformed_replies_for_one_symbol_are_retried_to_complete_data(kind, path, fake, sqlite_db):
    fake.fail_next(kind, n=2, path=path, symbol='ETHUSDT')
    rep = run(fake, sqlite_db)
    assert rep.errors == {}
    for s in SYMS:
        assert_same_as_server(sqlite_db, fake, s)
        assert len(sqlite_db.read_funding(s)) == len(fake.funding_events(s))


@pytest.mark.parametrize('kind', MALFORMED)
@pytest.mark.parametrize('path', ['kline', 'funding'])
def test_lasting_malformed_replies_end_that_symbol_only(kind, path, fake, sqlite_db):
    fake.fail_next(kind, n=10**6, path=path, symbol='ETHUSDT')
    rep = run(fake, sqlite_db)
    assert list(rep.errors) == ['ETHUSDT'], rep.errors
    assert 'Bybit sent' in rep.errors['ETHUSDT'] and 'gave up after 4 tries' in rep.errors['ETHUSDT']
    assert '\n' not in rep.errors['ETHUSDT']
    for s in ('BTCUSDT', 'SOLUSDT'):  # the other symbols downloaded whole
        assert_same_as_server(sqlite_db, fake, s)
        assert len(sqlite_db.read_funding(s)) == len(fake.funding_events(s))
    assert_subset_of_server(sqlite_db, fake, 'ETHUSDT')


def test_download_never_asks_for_times_before_2009(fake, sqlite_db):
    rep = run(fake, sqlite_db, symbols=['BTCUSDT'], start='2001-01-01')
    assert rep.errors == {}
    assert min(int(p['start']) for p in fake.params('kline')) >= EARLIEST_MS
    assert min(int(p['startTime']) for p in fake.params('funding')) >= EARLIEST_MS
    assert_same_as_server(sqlite_db, fake, 'BTCUSDT')


@pytest.mark.parametrize('days', [0, -3])
def test_days_below_one_is_a_config_error_not_the_default(days, fake, sqlite_db):
    with pytest.raises(ConfigError, match=f'days .* must be >= 1, got {days}'):
        run(fake, sqlite_db, start=None, days=days)
    assert fake.count() == 0


@pytest.mark.parametrize('symbol', ['BTC-USDT', 'btcusdt', 'X' * 31, "BTC' OR 1=1"])
def test_malformed_symbols_are_refused_where_they_enter(symbol, fake, sqlite_db, tmp_path):
    with pytest.raises(ConfigError, match='is not a symbol'):
        run(fake, sqlite_db, symbols=['BTCUSDT', symbol])
    assert fake.count() == 0
    fake.closed_candles('ETHUSDT').head(5).to_csv(tmp_path / 'eth.csv', index=False)
    with pytest.raises(ConfigError, match='is not a symbol'):
        import_csv(sqlite_db, tmp_path / 'eth.csv', symbol)
    with pytest.raises(ConfigError, match="'data_download.symbols' must list"):
        config_from_dict({'data_download': {'symbols': [symbol]}}, env={})
    assert sqlite_db.count_rows('raw_market_data') == 0


def test_faults_on_instruments_are_retried(fake, sqlite_db):
    fake.fail_next('http500', n=2, path='instruments')
    valid, invalid = validate_symbols(
        config(fake), sqlite_db, ['BTCUSDT'], client=BybitClient(config(fake).bybit, backoff_s=0.01)
    )
    assert valid == ['BTCUSDT'] and invalid == {}


def test_unknown_symbol_is_one_clear_error_and_others_download(fake, sqlite_db):
    rep = run(fake, sqlite_db, symbols=('BTCUSDT', 'NOPEUSDT', 'ETHUSDT'))
    assert list(rep.errors) == ['NOPEUSDT']
    assert 'Symbol Is Invalid' in rep.errors['NOPEUSDT'] and 'validate-symbols' in rep.errors['NOPEUSDT']
    assert len([p for p in fake.params('kline') if p['symbol'] == 'NOPEUSDT']) == 1  # 10001 is not retried
    for s in ('BTCUSDT', 'ETHUSDT'):
        assert_same_as_server(sqlite_db, fake, s)


def test_bad_interval_is_a_config_error_before_any_request(fake, sqlite_db):
    with pytest.raises(ConfigError, match='interval'):
        run(fake, sqlite_db, interval='7')
    assert fake.count() == 0


def test_rate_limit_headers_are_honoured(sqlite_db):
    with make_fake(page_cap=10, rate_limit=(25, 1.0)) as fake:
        rep = run(fake, sqlite_db, bybit=dict(requests_per_second=1000.0, max_concurrency=2))
        assert rep.errors == {} and rep.requests > 25 * 2
        assert fake.over_limit == 0
        for s in SYMS:
            assert_same_as_server(sqlite_db, fake, s)


def test_validate_symbols_follows_cursor_stores_symbols_and_explains(fake, sqlite_db):
    cfg = config(fake)
    valid, invalid = validate_symbols(
        cfg, sqlite_db, ['ETHUSDT', 'OLDUSDT', 'BTCPERP', 'BTCUSDT-27DEC24', 'NOPEUSDT', 'BTCUSDT']
    )
    assert valid == ['ETHUSDT', 'BTCUSDT']
    assert [invalid[s].split()[0] for s in ('OLDUSDT', 'BTCPERP', 'BTCUSDT-27DEC24', 'NOPEUSDT')] == [
        'not',
        'quoted',
        'wrong',
        'not',
    ]
    assert 'not listed' in invalid['NOPEUSDT'] and 'not trading' in invalid['OLDUSDT']
    assert fake.count('instruments') == 3  # 6 instruments, 2 per page
    sym = sqlite_db.read_sql('SELECT * FROM symbols ORDER BY symbol').set_index('symbol')
    assert len(sym) == 6 and sym.loc['BTCUSDT', 'funding_interval'] == 480 and sym.loc['BTCUSDT', 'tick_size'] == 0.1
    assert sym.loc['ETHUSDT', 'launch_time'] == from_ms(fake.first_candle())


def test_an_instrument_without_launch_time_stores_null_and_keeps_the_others_exact(db_url):
    "A listing field left empty must not turn the column into floats that the database layer reads as times."
    db = connect(db_url)
    db.init_db()
    listed = [
        dict(symbol='BTCUSDT', status='Trading', launchTime='1585526400000', fundingInterval=480),
        dict(symbol='OLDUSDT', status='Closed'),
    ]
    db.upsert('symbols', instruments_frame(listed))
    sym = db.read_sql('SELECT symbol, launch_time, funding_interval FROM symbols ORDER BY symbol').set_index('symbol')
    assert sym.loc['BTCUSDT', 'launch_time'] == from_ms(1585526400000)
    assert sym.loc['BTCUSDT', 'funding_interval'] == 480
    assert pd.isna(sym.loc['OLDUSDT', 'launch_time']) and pd.isna(sym.loc['OLDUSDT', 'funding_interval'])
    db.engine.dispose()


def test_download_does_not_ask_for_candles_before_the_listing(fake, sqlite_db):
    cfg = config(fake)
    validate_symbols(cfg, sqlite_db, list(SYMS))
    fake.reset_log()
    rep = download(cfg, sqlite_db, ['BTCUSDT'], days=400, client=BybitClient(cfg.bybit, backoff_s=0.01), progress=False)
    assert rep.errors == {} and min(int(p['start']) for p in fake.params('kline')) >= fake.first_candle()
    assert len(fake.params('kline')) <= 4
    assert_same_as_server(sqlite_db, fake, 'BTCUSDT')


# ---- local files -----------------------------------------------------------------------------------------


def test_import_csv_binance_headerless_and_named_columns_give_same_rows(tmp_path, sqlite_db):
    with make_fake() as fake:
        c = fake.closed_candles('BTCUSDT').head(50)
    binance = pd.DataFrame(
        {
            't': c.timestamp * 1000,
            **{k: c[k] for k in ('open', 'high', 'low', 'close', 'volume')},
            'ct': c.timestamp + STEP - 1,
            'qv': c.turnover,
            'n': 5,
            'tb': 0.0,
            'tq': 0.0,
            'ig': 0,
        }
    )
    binance.to_csv(tmp_path / 'a.csv', header=False, index=False)  # microsecond open times, as Binance since 2025
    c.rename(columns={'timestamp': 'open_time', 'turnover': 'quote_volume'})[::-1].to_csv(
        tmp_path / 'b.csv', index=False
    )
    assert import_csv(sqlite_db, tmp_path / 'a.csv', 'AUSDT') == 50
    assert import_csv(sqlite_db, tmp_path / 'b.csv', 'BUSDT') == 50
    a, b = sqlite_db.read_candles('AUSDT'), sqlite_db.read_candles('BUSDT')
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(to_ms(a.timestamp), c.timestamp)


def test_import_csv_rejects_bad_ohlc_and_writes_nothing(tmp_path, sqlite_db):
    df = pd.DataFrame(
        {
            'timestamp': [T0, T0 + STEP],
            'open': [1.0, 1.0],
            'high': [0.5, 1.0],
            'low': [1.0, 1.0],
            'close': [1.0, 1.0],
            'volume': [1.0, 1.0],
        }
    )
    df.to_csv(tmp_path / 'bad.csv', index=False)
    with pytest.raises(DataError, match='high/low'):
        import_csv(sqlite_db, tmp_path / 'bad.csv', 'XUSDT')
    assert sqlite_db.count_rows('raw_market_data') == 0


def kline_file(path, ts):
    "A Binance-layout CSV of len(ts) valid candles opening at `ts` (epoch numbers: no header; dates: a header)."
    ts = np.asarray(ts)
    px = 100 + np.arange(len(ts), dtype=float)
    df = pd.DataFrame({'open_time': ts, 'open': px, 'high': px + 1, 'low': px - 1, 'close': px, 'volume': 1.0})
    df = df.assign(close_time=ts, quote_volume=1.0, count=1, taker_base=0.0, taker_quote=0.0, ignore=0)
    df.to_csv(path, header=ts.dtype.kind not in 'iuf', index=False)
    return path


def test_import_refuses_a_mixed_unit_file_with_one_error_and_stores_nothing(tmp_path, sqlite_db):
    secs = (T0 + STEP * np.arange(10)) // 1000
    mixed = secs.copy()
    mixed[6] = mixed[6] * 1000  # one millisecond row in a seconds file: year 55970 if read as seconds
    with pytest.raises(DataError) as e:
        import_csv(sqlite_db, kline_file(tmp_path / 'mixed.csv', mixed), 'BTCUSDT')
    msg = str(e.value)
    assert 'mixed units (9 in s, 1 in ms' in msg and 'data row 7' in msg and '\n' not in msg, msg
    assert sqlite_db.count_rows('raw_market_data') == 0
    assert import_csv(sqlite_db, kline_file(tmp_path / 'secs.csv', secs), 'BTCUSDT') == 10  # one unit: fine
    assert (to_ms(sqlite_db.read_candles('BTCUSDT').timestamp) == T0 + STEP * np.arange(10)).all()


@pytest.mark.parametrize(
    'ts',
    [
        1_199_145_600_000 + STEP * np.arange(10),  # 2008-01-01, in ms: before any crypto exchange
        (T0 + STEP * np.arange(10)) * 1000 // 1000 + 50 * 365 * 86_400_000,  # 2074: after now + 1 day
        ['1999-01-01 00:00', '1999-01-01 00:15'],  # text dates out of range
    ],
)
def test_import_refuses_times_outside_2009_to_tomorrow_and_stores_nothing(ts, tmp_path, sqlite_db):
    with pytest.raises(DataError, match='outside 2009-01-01 .. now \\+ 1 day'):
        import_csv(sqlite_db, kline_file(tmp_path / 'old.csv', ts), 'BTCUSDT')
    assert sqlite_db.count_rows('raw_market_data') == 0


# ---- the command line ------------------------------------------------------------------------------------


def cli(*args, env=None, cwd=None):
    exe = Path(sys.executable).parent / 'cryptotft'
    cmd = [str(exe)] if exe.exists() else [sys.executable, '-m', 'cryptotft.cli']
    return subprocess.run(
        cmd + list(args),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, 'CRYPTOTFT_BYBIT_URL': '', **(env or {})},
    )


def cli_download(db_url, symbols, *options, quiet=False, env=None, cwd=None):
    "`cryptotft [-q] --db DB_URL download --symbols SYMBOLS OPTIONS...` in a subprocess."
    return cli(*(['-q'] if quiet else []), '--db', db_url, 'download', '--symbols', symbols, *options, env=env, cwd=cwd)


def test_cli_download_unknown_symbol_exits_nonzero_and_others_download(fake, tmp_path, sqlite_url):
    start = from_ms(fake.first_candle()).isoformat()
    options = ['--interval', '15', '--start', start, '--base-url', fake.url]
    r = cli_download(sqlite_url, 'BTCUSDT,NOPEUSDT', *options, quiet=True, cwd=tmp_path)
    assert r.returncode != 0
    errs = [l for l in r.stderr.splitlines() if l.startswith('error')]
    assert len(errs) == 1 and 'NOPEUSDT' in errs[0] and 'Symbol Is Invalid' in errs[0], r.stderr
    assert_same_as_server(connect(sqlite_url), fake, 'BTCUSDT')
    env = {'CRYPTOTFT_BYBIT_URL': fake.url}  # the environment points it at the fake too
    r = cli_download(sqlite_url, 'BTCUSDT', '--start', start, quiet=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr


def test_cli_bad_interval_exits_nonzero_with_one_line(fake, tmp_path, sqlite_url):
    r = cli_download(sqlite_url, 'BTCUSDT', '--interval', '7', '--days', '1', '--base-url', fake.url, cwd=tmp_path)
    assert r.returncode != 0 and fake.count('kline') == 0
    assert r.stderr.strip().count('\n') == 0 and 'interval' in r.stderr, r.stderr


def test_cli_validate_symbols_and_import_csv(fake, tmp_path, sqlite_url):
    r = cli(
        '--db', sqlite_url, 'validate-symbols', '--symbols', 'BTCUSDT,OLDUSDT', '--base-url', fake.url, cwd=tmp_path
    )
    assert r.returncode != 0 and 'OLDUSDT' in r.stdout + r.stderr
    fake.closed_candles('ETHUSDT').head(20).to_csv(tmp_path / 'eth.csv', index=False)
    r = cli(
        '--db',
        sqlite_url,
        'import-csv',
        str(tmp_path / 'eth.csv'),
        '--symbol',
        'ETHUSDT',
        '--interval',
        '15',
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert len(connect(sqlite_url).read_candles('ETHUSDT')) == 20


def test_cli_days_zero_is_one_line_error_not_three_years(fake, tmp_path, sqlite_url):
    r = cli_download(sqlite_url, 'BTCUSDT', '--days', '0', '--base-url', fake.url, cwd=tmp_path)
    assert r.returncode != 0 and fake.count() == 0
    assert r.stderr.strip().count('\n') == 0 and 'days' in r.stderr and ' 1' in r.stderr, r.stderr
