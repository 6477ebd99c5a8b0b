"""Metabase: the analytics views on a real PostgreSQL, and provisioning against a recording API stub.

Views: a throw-away database per test module on 127.0.0.1:5432 (user postgres, trust auth), filled with
the SYNTHETIC market, its labels (cryptotft.labels.expected_returns), two model runs and their predictions.

Provisioning limits: the stub speaks only the endpoints and fields `provision` uses, in the shapes of
Metabase 0.50 (GET /api/database answers {"data": [...]}, dashboard cards are replaced with
PUT /api/dashboard/:id {"dashcards": [...]}, new dashcards carry negative ids). It does not run the SQL,
check chart settings or permissions, and no real Metabase is contacted. The questions' SQL is checked
separately, by running every question on the PostgreSQL test database.
"""

import contextlib
import json
import math
import re
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from cryptotft.config import ConfigError, DataError, to_ms
from cryptotft.db import connect
from cryptotft.cli import main
from cryptotft.metabase import READONLY_ROLE, QUESTIONS, VIEWS, VIEWS_SQL, MetabaseError, create_views, provision
from cryptotft.synthetic import synthetic_market

ROOT = Path(__file__).resolve().parents[1]
ADMIN = 'postgresql+psycopg2://postgres@127.0.0.1:5432/postgres'


# ---------------------------------------------------------------- PostgreSQL views


@contextlib.contextmanager
def throwaway_database(prefix='cryptotft_test_mb'):
    "URL of a fresh PostgreSQL database, dropped on exit (skips the test when the server is not there)."
    admin = sa.create_engine(ADMIN, isolation_level='AUTOCOMMIT', connect_args={'connect_timeout': 5})
    name = f'{prefix}_{secrets.token_hex(4)}'
    try:
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE {name}')
    except sa.exc.OperationalError as e:
        pytest.skip(f'PostgreSQL on 127.0.0.1:5432 is not reachable: {e}')
    try:
        yield f'postgresql://postgres@127.0.0.1:5432/{name}'
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope='module')
def pg_url():
    with throwaway_database() as url:
        yield url


def _labels(candles, funding):
    "Label columns of every bar, from the real label simulator when it exists."
    try:
        from cryptotft.labels import expected_returns, labels_for_storage
    except ImportError:
        return None
    return labels_for_storage(expected_returns(candles.reset_index(drop=True), horizon=24, funding=funding))


@pytest.fixture(scope='module')
def market(pg_url):
    "The synthetic market, its labels, runs and predictions stored in the test database."
    db = connect(pg_url)
    db.init_db()
    candles, funding = synthetic_market(('BTCUSDT', 'ETHUSDT'), days=40, seed=3, start='2024-01-10')
    raw = candles.assign(interval='15')
    raw = raw.drop(raw[(raw.symbol == 'ETHUSDT')].index[500])  # one gap for ETH
    db.upsert('raw_market_data', raw)
    db.upsert('funding_rates', funding)
    processed = []
    for sym, c in candles.groupby('symbol'):
        lab = _labels(
            c[['timestamp', 'open', 'high', 'low', 'close', 'volume', 'turnover']],
            funding[funding.symbol == sym][['timestamp', 'rate']],
        )
        if lab is None:  # labels module absent: plausible label columns written directly
            r = np.random.default_rng(0).normal(0, 0.01, (len(c), 2))
            lab = pd.DataFrame({'buy_return': r[:, 0], 'sell_return': r[:, 1]})
            lab['buy_profit'], lab['sell_profit'] = (lab.buy_return > 0) * 1.0, (lab.sell_return > 0) * 1.0
        processed.append(
            pd.concat([c[['symbol', 'timestamp']].reset_index(drop=True), lab.reset_index(drop=True)], axis=1)
        )
    processed = pd.concat(processed, ignore_index=True).assign(interval='15')
    db.upsert('processed_market_data', processed)
    base = int(to_ms(pd.Timestamp('2024-03-01', tz='UTC')))
    runs = pd.DataFrame(
        [
            dict(
                run_id='r1',
                created_at=base,
                task='regression',
                status='done',
                symbols='BTCUSDT',
                metrics=json.dumps(
                    {
                        'best_val_loss': 0.4,
                        'test': {'buy_rank_ic_time': 0.05, 'sell_rank_ic_time': float('nan'), 'buy_auc': float('inf')},
                    }
                ),
            ),
            dict(
                run_id='r2',
                created_at=base + 1000,
                task='regression',
                status='done',
                symbols='BTCUSDT',
                metrics=json.dumps(
                    {'best_val_loss': 0.5, 'epochs_run': 7, 'test': {'buy_rank_ic_time': 0.1, 'buy_win_rate': 'n/a'}}
                ),
            ),
            dict(
                run_id='r3', created_at=base + 2000, task='classification', status='done', symbols='ETHUSDT', metrics=''
            ),
        ]
    )
    db.upsert('model_metadata', runs)
    btc = processed[processed.symbol == 'BTCUSDT'].tail(1500).reset_index(drop=True)
    rng = np.random.default_rng(1)
    pred = pd.DataFrame(
        {
            'run_id': 'r2',
            'symbol': 'BTCUSDT',
            'timestamp': btc.timestamp,
            'buy_q50': btc.buy_return.fillna(0) * 0.5 + rng.normal(0, 0.01, len(btc)),
            'sell_q50': rng.normal(0, 0.01, len(btc)),
            'buy_return': btc.buy_return,
            'sell_return': btc.sell_return,
        }
    )
    pred['buy_q10'], pred['buy_q90'] = pred.buy_q50 - 0.02, pred.buy_q50 + 0.02
    pred['sell_q10'], pred['sell_q90'] = pred.sell_q50 - 0.02, pred.sell_q50 + 0.02
    pred.loc[pred.index[-1], ['buy_q50', 'sell_q50']] = [0.01, -0.02]  # newest bar: a long signal
    eth = processed[processed.symbol == 'ETHUSDT'].tail(3)
    cls = pd.DataFrame(
        {
            'run_id': 'r3',
            'symbol': 'ETHUSDT',
            'timestamp': eth.timestamp,
            'buy_prob': [0.9, 0.8, 0.4],
            'sell_prob': [0.1, 0.2, 0.45],
            'buy_return': np.nan,
        }
    )
    mean_run = pd.DataFrame(  # a mean-head run: its expected returns and medians disagree, as on real labels
        {
            'run_id': 'r4',
            'symbol': 'ETHUSDT',
            'timestamp': eth.timestamp.tail(2),
            'buy_expected_return': [0.1, 0.3],
            'sell_expected_return': [0.2, -0.5],
            'buy_q50': [-1.2, -1.2],
            'sell_q50': [-1.1, -1.1],
        }
    )
    db.upsert('model_predictions', pd.concat([pred, cls, mean_run], ignore_index=True))
    return db, candles, funding, processed, pred


def test_create_views_refuses_sqlite_and_missing_labels(tmp_path):
    lite = connect(f'sqlite:///{tmp_path}/x.db')
    lite.init_db()
    with pytest.raises(ConfigError, match='need PostgreSQL'):
        create_views(lite)
    with throwaway_database('cryptotft_test_nolabels') as url:
        db = connect(url)
        with pytest.raises(DataError, match='init-db'):
            create_views(db)
        db.init_db()
        with pytest.raises(DataError, match=r'buy_return.*run `cryptotft prepare` first'):
            create_views(db)
        db.engine.dispose()


def test_metabase_sql_prints_the_package_sql_as_one_script_that_creates_every_view(market, capsys):
    "The SQL has one home (cryptotft.metabase); `cryptotft metabase sql` is the script for `psql -f`."
    assert main(['metabase', 'sql']) == 0
    script = capsys.readouterr().out
    assert script == VIEWS_SQL and not (ROOT / 'metabase' / 'views.sql').exists()  # no copy to drift
    with market[0].engine.begin() as c:
        c.exec_driver_sql('DROP VIEW IF EXISTS ' + ', '.join(VIEWS))
        c.exec_driver_sql(script)  # all statements at once, as psql -f runs them
        made = c.exec_driver_sql("SELECT table_name FROM information_schema.views WHERE table_schema = 'public'")
        assert set(VIEWS) <= set(made.scalars())


def test_views_are_idempotent_and_survive_new_indicator_columns(market):
    db = market[0]
    assert create_views(db) == list(VIEWS)
    db.upsert(
        'processed_market_data',
        pd.DataFrame(
            {'symbol': ['BTCUSDT'], 'interval': ['15'], 'timestamp': [market[1].timestamp.iloc[0]], 'rsi_14': [50.0]}
        ),
    )
    assert create_views(db) == list(VIEWS)
    for v in VIEWS:
        assert len(db.read_sql(f'SELECT * FROM {v}')) > 0, v


def test_coverage_counts_bars_gaps_and_funding(market):
    db, candles, funding, processed, _ = market
    create_views(db)
    cov = db.read_sql('SELECT * FROM v_data_coverage ORDER BY symbol').set_index('symbol')
    n = (candles.symbol == 'BTCUSDT').sum()
    assert cov.loc['BTCUSDT', ['bars', 'missing_bars', 'expected_bars']].tolist() == [n, 0, n]
    assert cov.loc['ETHUSDT', ['bars', 'missing_bars']].tolist() == [n - 1, 1]
    assert float(cov.loc['ETHUSDT', 'coverage_pct']) == pytest.approx(100 * (n - 1) / n, abs=1e-3)
    assert cov.loc['BTCUSDT', 'funding_events'] == (funding.symbol == 'BTCUSDT').sum()
    assert cov.loc['BTCUSDT', 'processed_bars'] == n
    assert pd.Timestamp(cov.loc['BTCUSDT', 'first_bar']) == candles.timestamp.min()


def test_label_statistics_match_pandas_by_utc_month(market):
    db, _, _, processed, _ = market
    create_views(db)
    got = db.read_sql("SELECT * FROM v_label_stats_monthly WHERE symbol = 'BTCUSDT' ORDER BY month")
    btc = processed[processed.symbol == 'BTCUSDT']
    month = btc.timestamp.dt.tz_convert('UTC').dt.tz_localize(None).dt.to_period('M')
    want = btc.groupby(month).agg(
        bars=('buy_return', 'size'),
        labelled=('buy_return', 'count'),
        mean=('buy_return', 'mean'),
        win=('buy_profit', 'mean'),
        med=('sell_return', 'median'),
    )
    assert (
        [str(pd.Timestamp(m).to_period('M')) for m in got.month]
        == [str(p) for p in want.index]
        == ['2024-01', '2024-02']
    )
    assert got.bars.tolist() == want.bars.tolist() and got.labelled_bars.tolist() == want.labelled.tolist()
    np.testing.assert_allclose(got.buy_return_mean.astype(float), want['mean'], rtol=1e-9)
    np.testing.assert_allclose(got.buy_win_rate.astype(float), want.win, rtol=1e-9)
    np.testing.assert_allclose(got.sell_return_median.astype(float), want.med, rtol=1e-9)


def test_leaderboard_turns_metrics_json_into_columns_and_tolerates_nan_and_text(market):
    db = market[0]
    create_views(db)
    lb = db.read_sql('SELECT * FROM v_model_leaderboard ORDER BY run_id').set_index('run_id')
    assert lb.loc['r1', 'test_buy_rank_ic_time'] == 0.05 and lb.loc['r2', 'test_buy_rank_ic_time'] == 0.1
    assert lb.loc['r2', 'best_val_loss'] == 0.5 and lb.loc['r2', 'epochs_run'] == 7
    for run, col in (
        ('r1', 'test_sell_rank_ic_time'),
        ('r1', 'test_buy_auc'),
        ('r2', 'test_buy_win_rate'),
        ('r3', 'best_val_loss'),
    ):
        assert lb.loc[run, col] is None or math.isnan(lb.loc[run, col]), (run, col)
    assert pd.Timestamp(lb.loc['r2', 'created']) == pd.Timestamp('2024-03-01 00:00:01', tz='UTC')


def test_latest_signals_take_the_newest_prediction_per_run_and_symbol(market):
    db, _, _, _, pred = market
    create_views(db)
    sig = db.read_sql('SELECT * FROM v_latest_signals ORDER BY run_id').set_index('run_id')
    assert pd.Timestamp(sig.loc['r2', 'signal_time']) == pred.timestamp.max()
    # r2 was trained before the mean head: no expected return, its median decides and is shown as the median
    assert sig.loc['r2', 'signal'] == 'long' and pd.isna(sig.loc['r2', 'expected_return'])
    assert sig.loc['r2', 'median_return'] == pytest.approx(0.01) and sig.loc['r2', 'forecast'] == 'median only'
    # r4 has a mean head: a positive expected return over a median at the stop is a long signal
    assert sig.loc['r4', 'signal'] == 'long' and sig.loc['r4', 'expected_return'] == pytest.approx(0.3)
    assert sig.loc['r4', 'median_return'] == pytest.approx(-1.2) and sig.loc['r4', 'forecast'] == 'mean'
    assert sig.loc['r3', 'signal'] == 'flat'  # newest probabilities 0.4 / 0.45: neither side above one half
    assert sig.loc['r2', 'task'] == 'regression'


def test_prediction_vs_realised_matches_pandas(market):
    db, _, _, _, pred = market
    create_views(db)
    got = db.read_sql("SELECT * FROM v_prediction_vs_realised_monthly WHERE run_id = 'r2' ORDER BY month")
    known = pred[pred.buy_return.notna() | pred.sell_return.notna()]
    b = known[known.buy_return.notna()]
    month = known.timestamp.dt.tz_convert('UTC').dt.tz_localize(None).dt.to_period('M')
    assert got.predictions.sum() == len(known) and got.predictions.tolist() == known.groupby(month).size().tolist()
    bm = b.timestamp.dt.tz_convert('UTC').dt.tz_localize(None).dt.to_period('M')
    hit = ((b.buy_q50 > 0) == (b.buy_return > 0)).groupby(bm).mean()
    band = ((b.buy_return >= b.buy_q10) & (b.buy_return <= b.buy_q90)).groupby(bm).mean()
    np.testing.assert_allclose(got.buy_sign_hit_rate.astype(float), hit, rtol=1e-9)
    np.testing.assert_allclose(got.buy_band_coverage.astype(float), band, rtol=1e-9)
    np.testing.assert_allclose(
        got.buy_corr.astype(float), [g.buy_q50.corr(g.buy_return) for _, g in b.groupby(bm)], rtol=1e-6
    )


def test_every_dashboard_question_runs_on_the_views(market):
    db = market[0]
    create_views(db)
    for q in QUESTIONS:
        df = db.read_sql(q.sql)
        assert len(df) > 0, q.name
        for col in q.settings.get('graph.dimensions', []) + q.settings.get('graph.metrics', []):
            assert col in df.columns, (q.name, col)


def test_metabase_views_creates_a_read_only_role_that_cannot_write(market, pg_url, capsys, monkeypatch):
    role = f'ctft_ro_{secrets.token_hex(4)}'
    monkeypatch.setenv('CRYPTOTFT_METABASE_DB_PASSWORD', 'ro-Secret-123')
    url = sa.engine.make_url(pg_url).set(drivername='postgresql+psycopg2')
    admin = sa.create_engine(url, isolation_level='AUTOCOMMIT')
    try:
        assert main(['--db', pg_url, 'metabase', 'views', '--role', role]) == 0
        assert main(['--db', pg_url, 'metabase', 'views', '--role', role]) == 0  # again: the role is updated
        out, err = capsys.readouterr()
        assert f'read-only role {role}' in out and 'ro-Secret-123' not in out + err
        with admin.connect() as c:
            stored = c.execute(sa.text('SELECT rolpassword FROM pg_authid WHERE rolname = :r'), {'r': role}).scalar()
        assert stored.startswith('SCRAM-SHA-256$') and 'ro-Secret-123' not in stored  # hashed before it was sent
        ro = sa.create_engine(url.set(username=role))
        with ro.connect() as c:
            assert c.execute(sa.text('SELECT COUNT(*) FROM v_data_coverage')).scalar() == 2
            assert c.execute(sa.text('SELECT COUNT(*) FROM raw_market_data')).scalar() > 0
        for sql in (
            "INSERT INTO raw_market_data (symbol, \"interval\", timestamp) VALUES ('XUSDT', '15', 0)",
            "UPDATE model_metadata SET status = 'x'",
            'DELETE FROM funding_rates',
            'CREATE TABLE sneaky (x int)',
        ):
            with ro.connect() as c, pytest.raises(sa.exc.ProgrammingError, match='permission denied'):
                c.execute(sa.text(sql))
        ro.dispose()
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP OWNED BY {role}')
            c.exec_driver_sql(f'DROP ROLE IF EXISTS {role}')
        admin.dispose()


# ---------------------------------------------------------------- Metabase API stub


class MetabaseStub:
    "In-memory Metabase API that records every call (see the module docstring for its limits)."

    TOKEN = 'session-token'

    def __init__(self, users=None):
        self.users, self.setup_token = dict(users or {}), 'setup-123'
        self.databases, self.cards, self.dashboards, self.calls, self.next_id = [], {}, {}, [], 1
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body):
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                stub.calls.append((self.command, self.path, body))
                code, answer = stub.route(self.command, self.path, body, self.headers.get('X-Metabase-Session'))
                self._send(code, answer)

            do_GET = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_port}'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _id(self):
        self.next_id += 1
        return self.next_id

    def route(self, method, path, body, session):
        path = urllib.parse.urlsplit(path).path
        if (method, path) == ('GET', '/api/session/properties'):
            return 200, {'setup-token': None if self.users else self.setup_token, 'has-user-setup': bool(self.users)}
        if (method, path) == ('POST', '/api/setup'):
            if self.users or body['token'] != self.setup_token:
                return 403, {'message': 'setup done'}
            self.users[body['user']['email']] = body['user']['password']
            return 200, {'id': self.TOKEN}
        if (method, path) == ('POST', '/api/session'):
            ok = self.users.get(body['username']) == body['password']
            return (200, {'id': self.TOKEN}) if ok else (401, {'errors': {'password': 'did not match'}})
        if session != self.TOKEN:
            return 401, 'Unauthenticated'
        if (method, path) == ('GET', '/api/database'):
            return 200, {'data': self.databases, 'total': len(self.databases)}
        if (method, path) == ('POST', '/api/database'):
            self.databases.append({**body, 'id': self._id()})
            return 200, self.databases[-1]
        if (method, path) == ('GET', '/api/card'):
            return 200, list(self.cards.values())
        if (method, path) == ('POST', '/api/card'):
            assert body['dataset_query']['database'] in [d['id'] for d in self.databases]
            c = {**body, 'id': self._id(), 'archived': False}
            self.cards[c['id']] = c
            return 200, c
        if (method, path) == ('GET', '/api/dashboard'):
            return 200, list(self.dashboards.values())
        if (method, path) == ('POST', '/api/dashboard'):
            d = {**body, 'id': self._id(), 'dashcards': [], 'archived': False}
            self.dashboards[d['id']] = d
            return 200, d
        m = re.fullmatch(r'/api/(card|dashboard)/(\d+)', path)
        if m:
            store = self.cards if m[1] == 'card' else self.dashboards
            obj = store.get(int(m[2]))
            if obj is None:
                return 404, 'Not found.'
            if method == 'GET':
                return 200, obj
            if method == 'PUT' and m[1] == 'card':
                obj.update(body)
                return 200, obj
            if method == 'PUT':
                cards = []
                for dc in body['dashcards']:
                    assert dc['card_id'] in self.cards and dc['size_x'] > 0 and dc['col'] + dc['size_x'] <= 24
                    cards.append({**dc, 'id': dc['id'] if dc['id'] > 0 else self._id()})
                obj['dashcards'] = cards
                return 200, obj
        return 404, f'no stub route for {method} {path}'

    def writes(self):
        "Calls that change something (logging in does not)."
        return [(m, p) for m, p, _ in self.calls if m in ('POST', 'PUT') and p != '/api/session']


@pytest.fixture
def stub():
    s = MetabaseStub()
    yield s
    s.server.shutdown()


def test_provision_sets_up_fresh_metabase_then_second_run_creates_nothing(stub):
    first = provision(stub.url, 'me@example.com', 'pw-123456', db_host='postgres', db_password='secret')
    posts = [p for m, p in stub.writes() if m == 'POST']
    assert posts.count('/api/setup') == 1 and posts.count('/api/database') == 1
    assert posts.count('/api/card') == len(QUESTIONS) and posts.count('/api/dashboard') == 1
    assert stub.databases[0]['engine'] == 'postgres' and stub.databases[0]['details'] == {
        'host': 'postgres',
        'port': 5432,
        'dbname': 'cryptotft',
        'user': READONLY_ROLE,
        'password': 'secret',
        'ssl': False,
    }
    cards = list(stub.cards.values())
    assert all(
        c['dataset_query']['type'] == 'native' and c['dataset_query']['database'] == first.database_id for c in cards
    )
    assert all(' v_' in c['dataset_query']['native']['query'] for c in cards)
    dash = stub.dashboards[first.dashboard_id]
    assert sorted(dc['card_id'] for dc in dash['dashcards']) == sorted(first.card_ids.values())
    assert first.url == f'{stub.url}/dashboard/{first.dashboard_id}' and len(first.changes) == 2 + len(QUESTIONS) + 1

    n = len(stub.calls)
    second = provision(stub.url, 'me@example.com', 'pw-123456', db_host='postgres', db_password='secret')
    assert [c for c in stub.calls[n:] if c[0] in ('POST', 'PUT') and c[1] != '/api/session'] == []
    assert second.changes == [] and (second.database_id, second.dashboard_id, second.card_ids) == (
        first.database_id,
        first.dashboard_id,
        first.card_ids,
    )


def test_provision_repairs_an_edited_question_and_a_removed_dashcard(stub):
    first = provision(stub.url, 'me@example.com', 'pw')
    cid = first.card_ids['Model leaderboard']
    stub.cards[cid]['dataset_query']['native']['query'] = 'SELECT 1'
    dash = stub.dashboards[first.dashboard_id]
    kept_ids = {dc['card_id']: dc['id'] for dc in dash['dashcards']}
    dash['dashcards'] = dash['dashcards'][1:]
    n = len(stub.calls)
    again = provision(stub.url, 'me@example.com', 'pw')
    assert [(m, p) for m, p, _ in stub.calls[n:] if m in ('POST', 'PUT') and p != '/api/session'] == [
        ('PUT', f'/api/card/{cid}'),
        ('PUT', f'/api/dashboard/{first.dashboard_id}'),
    ]
    assert 'v_model_leaderboard' in stub.cards[cid]['dataset_query']['native']['query']
    dcs = stub.dashboards[first.dashboard_id]['dashcards']
    assert len(dcs) == len(QUESTIONS) and all(
        kept_ids[d['card_id']] == d['id'] for d in dcs[1:]
    )  # existing dashcards keep their ids
    assert again.changes == ['updated question Model leaderboard', 'dashboard layout']


def test_wrong_password_and_unreachable_metabase_are_one_clear_error(stub):
    provision(stub.url, 'me@example.com', 'right')
    with pytest.raises(MetabaseError, match=r'POST /api/session answered 401'):
        provision(stub.url, 'me@example.com', 'wrong')
    url = stub.url
    stub.server.shutdown()
    stub.server.server_close()
    with pytest.raises(MetabaseError, match='cannot reach Metabase'):
        provision(url, 'me@example.com', 'right', timeout=2)


def test_provision_command_takes_passwords_from_the_environment_and_the_database_from_db(stub, capsys, monkeypatch):
    monkeypatch.setenv('METABASE_PASSWORD', 'admin-Secret-1')
    monkeypatch.setenv('CRYPTOTFT_METABASE_DB_PASSWORD', 'ro-Secret-2')
    db = 'postgresql://cryptotft:owner-pw@localhost:5555/research'
    assert main(['--db', db, 'metabase', 'provision', '--url', stub.url, '--user', 'me@example.com']) == 0
    assert stub.users == {'me@example.com': 'admin-Secret-1'}
    assert stub.databases[0]['details'] == {
        'host': 'postgres',  # localhost:5555 here is the compose service postgres:5432 for Metabase
        'port': 5432,
        'dbname': 'research',
        'user': READONLY_ROLE,
        'password': 'ro-Secret-2',
        'ssl': False,
    }
    out, err = capsys.readouterr()
    assert 'dashboard' in out and 'Secret' not in out + err


def test_provision_refuses_a_password_on_the_command_line(stub, capsys, monkeypatch):
    monkeypatch.delenv('METABASE_PASSWORD', raising=False)
    argv = ['--db', 'postgresql://u@localhost/x', 'metabase', 'provision', '--url', stub.url, '--user', 'me@x.org']
    assert main([*argv, '--password', 'on-the-cmdline']) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: passwords on the command line') and 'on-the-cmdline' not in err
    assert main(argv) == 1  # no variable and no terminal: say which variable to set
    assert 'set METABASE_PASSWORD' in capsys.readouterr().err and stub.calls == []
