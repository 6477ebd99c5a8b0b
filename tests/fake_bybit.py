"""A fake Bybit v5 public market API for tests and benchmarks (stdlib http.server, threaded).

Serves /v5/market/instruments-info (paginated by nextPageCursor), /v5/market/kline and
/v5/market/funding/history in the JSON shapes of shared/specs/bybit_v5.md, from SYNTHETIC data
(cryptotft.synthetic), with X-Bapi-Limit-* headers and switchable faults:

    with FakeBybit(symbols=('BTCUSDT', 'ETHUSDT'), days=3, page_cap=100) as fake:
        fake.fail_next('ratelimit', n=2, path='kline')   # then 'http429', 'retcode10429', 'http500',
        ...                                              # 'retcode10016', 'slow', 'truncated', 'garbage', 'forbidden'
        fake.fail_next('shortrow', n=3, path='kline', symbol='ETHUSDT')  # malformed answers: 'nolist',
        ...                                              # 'shortrow', 'nonnumeric' (for one symbol, or any)
        fake.url, fake.closed_candles('BTCUSDT'), fake.funding_events('BTCUSDT'), fake.count('kline')

The clock is frozen at `now` (default: the real time at construction), so the newest candle stays
open for the whole test. Command line (benchmark): python tests/fake_bybit.py --latency 0.05 --rate-limit 600/5
prints the URL on its first line and serves until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from cryptotft.config import interval_ms, to_ms
from cryptotft.synthetic import synthetic_market

ENDPOINTS = {
    '/v5/market/kline': 'kline',
    '/v5/market/funding/history': 'funding',
    '/v5/market/instruments-info': 'instruments',
}
MALFORMED = ('nolist', 'shortrow', 'nonnumeric')  # HTTP 200, retCode 0, and a `result` of the wrong shape
FAULTS = (
    'ratelimit',
    'http429',
    'retcode10429',
    'http500',
    'retcode10016',
    'slow',
    'truncated',
    'garbage',
    'forbidden',
    *MALFORMED,
)
EXTRA_INSTRUMENTS = [  # listed but not downloadable: a closed USDT perpetual, a USDC one, a dated future
    dict(symbol='OLDUSDT', status='Closed', contractType='LinearPerpetual', baseCoin='OLD', quoteCoin='USDT'),
    dict(symbol='BTCPERP', status='Trading', contractType='LinearPerpetual', baseCoin='BTC', quoteCoin='USDC'),
    dict(symbol='BTCUSDT-27DEC24', status='Trading', contractType='LinearFutures', baseCoin='BTC', quoteCoin='USDT'),
]


class FakeBybit:
    "A threaded fake of Bybit's v5 market endpoints on 127.0.0.1:<free port>, serving SYNTHETIC data."

    def __init__(
        self,
        symbols=('BTCUSDT', 'ETHUSDT', 'SOLUSDT'),
        days=3,
        now=None,
        seed=0,
        page_cap=1000,
        funding_cap=200,
        instruments_cap=2,
        anchor='end',
        latency=0.0,
        holes=None,
        open_candle=True,
        rate_limit=None,
        port=0,
    ):
        self.symbols, self.days, self.seed = tuple(symbols), days, seed
        self.now = int(time.time() * 1000) if now is None else int(to_ms(now))
        self.page_cap, self.funding_cap, self.instruments_cap = page_cap, funding_cap, instruments_cap
        self.anchor, self.latency, self.open_candle = anchor, latency, open_candle
        self.holes = holes or {}  # {symbol: [(first_ms, last_ms), ...]} candles the exchange lacks
        self.rate_limit = rate_limit  # (requests, window_s) per IP, answered with retCode 10006 beyond
        self.faults, self.log, self.lock, self.over_limit = [], [], threading.Lock(), 0
        self._window, self._market, self._cache = [0, 0], {}, {}
        self.server = _Server(('127.0.0.1', port), _handler(self))
        self.thread = None

    # ---- data -------------------------------------------------------------------------------------
    def market(self, interval='15'):
        "SYNTHETIC (candles, funding) for `interval`, ending with the candle open at `now`."
        if interval not in self._market:
            step = interval_ms(interval)
            n = int(self.days * 86_400_000 // step)
            start = pd.Timestamp(self.now // step * step - (n - 1) * step, unit='ms')
            c, f = synthetic_market(
                self.symbols, days=self.days, seed=self.seed, start=start.isoformat(), interval=interval
            )
            c, f = c.assign(timestamp=to_ms(c.timestamp)), f.assign(timestamp=to_ms(f.timestamp))
            for s, holes in self.holes.items():
                for a, b in holes:
                    c = c[~((c.symbol == s) & c.timestamp.between(a, b))]
            if not self.open_candle:
                c = c[c.timestamp + step <= self.now]
            self._market[interval] = (c.reset_index(drop=True), f[f.timestamp <= self.now].reset_index(drop=True))
        return self._market[interval]

    def closed_candles(self, symbol, interval='15', start=None, end=None):
        "What a correct downloader must store: closed candles (timestamp in ms) in [start, end)."
        step = interval_ms(interval)
        c = self.market(interval)[0]
        c = c[(c.symbol == symbol) & (c.timestamp + step <= self.now)]
        if start is not None:
            c = c[c.timestamp >= int(to_ms(start))]
        if end is not None:
            c = c[c.timestamp < int(to_ms(end))]
        return c.drop(columns='symbol').reset_index(drop=True)

    def funding_events(self, symbol, start=None, end=None):
        "Funding events of `symbol` (timestamp ms, rate) in [start, end)."
        f = self.market()[1]
        f = f[f.symbol == symbol]
        if start is not None:
            f = f[f.timestamp >= int(to_ms(start))]
        if end is not None:
            f = f[f.timestamp < int(to_ms(end))]
        return f[['timestamp', 'rate']].reset_index(drop=True)

    def first_candle(self, interval='15'):
        return int(self.market(interval)[0].timestamp.min())

    # ---- faults and bookkeeping -------------------------------------------------------------------
    def fail_next(self, kind, n=1, path=None, slow_s=1.0, after=0, symbol=None):
        """Answer `n` requests (to endpoint `path`: kline, funding, instruments; None = any) about `symbol`
        (None = any) with `kind`, after `after` good ones."""
        assert kind in FAULTS, kind
        with self.lock:
            self.faults.append([kind, n, path, slow_s, after, symbol])

    def _take_fault(self, name, symbol=None):
        with self.lock:
            for f in self.faults:
                if f[1] > 0 and f[2] in (None, name) and f[5] in (None, symbol):
                    if f[4] > 0:
                        f[4] -= 1
                        return None
                    f[1] -= 1
                    return f
        return None

    def count(self, name=None):
        "Requests received (to endpoint `name`, or all)."
        with self.lock:
            return sum(1 for n, _ in self.log if name in (None, n))

    def params(self, name):
        with self.lock:
            return [p for n, p in self.log if n == name]

    def reset_log(self):
        with self.lock:
            self.log.clear()

    def _limit_headers(self):
        "X-Bapi-Limit-* headers of a fixed window; the bool says whether this request is over the limit."
        limit, window_s = self.rate_limit or (600, 5.0)
        now = time.time()
        with self.lock:
            w = int(now // window_s)
            if self._window[0] != w:
                self._window = [w, 0]
            self._window[1] += 1
            used = self._window[1]
        reset = int((w + 1) * window_s * 1000)
        hdr = {
            'X-Bapi-Limit': str(limit),
            'X-Bapi-Limit-Status': str(max(limit - used, 0)),
            'X-Bapi-Limit-Reset-Timestamp': str(reset),
        }
        return hdr, self.rate_limit is not None and used > limit

    # ---- endpoints --------------------------------------------------------------------------------
    def instruments(self, q):
        c = self.market()[0]
        listed = [
            dict(
                symbol=s,
                contractType='LinearPerpetual',
                status='Trading',
                baseCoin=s[:-4],
                quoteCoin='USDT',
                settleCoin='USDT',
                launchTime=str(int(c.timestamp[c.symbol == s].min())),
                deliveryTime='0',
                priceScale='2',
                fundingInterval=480,
                priceFilter=dict(minPrice='0.10', maxPrice='1999999.80', tickSize='0.10'),
                lotSizeFilter=dict(minOrderQty='0.001', maxOrderQty='1190.000', qtyStep='0.001', minNotionalValue='5'),
            )
            for s in self.symbols
        ] + [dict(i, launchTime='1585526400000', fundingInterval=480) for i in EXTRA_INSTRUMENTS]
        if q.get('symbol'):
            listed = [i for i in listed if i['symbol'] == q['symbol']]
        off = int(q.get('cursor') or 0)
        size = min(int(q.get('limit', 500)), 1000, self.instruments_cap)
        nxt = str(off + size) if off + size < len(listed) else ''
        return 0, 'OK', dict(category='linear', nextPageCursor=nxt, list=listed[off : off + size])

    def _rows(self, kind, interval, symbol):
        "Sorted times and pre-formatted JSON rows of one symbol (built once)."
        key = (kind, interval, symbol)
        if key not in self._cache:
            c, f = self.market(interval)
            if kind == 'kline':
                d = c[c.symbol == symbol]
                cols = [d[k].tolist() for k in ('open', 'high', 'low', 'close', 'volume', 'turnover')]
                rows = [[str(t), *map(repr, r)] for t, *r in zip(d.timestamp.tolist(), *cols)]
            else:
                d = f[f.symbol == symbol]
                rows = [
                    dict(symbol=symbol, fundingRate=repr(r), fundingRateTimestamp=str(t))
                    for t, r in zip(d.timestamp.tolist(), d.rate.tolist())
                ]
            self._cache[key] = (d.timestamp.to_numpy(np.int64), rows)
        return self._cache[key]

    def _page(self, kind, interval, q, lo_key, hi_key, limit):
        "(newest-first rows of one page, error) for a kline or funding query."
        if q.get('category') != 'linear':
            return None, (10001, 'params error: category must be linear in this fake')
        if q.get('symbol') not in self.symbols:
            return None, (10001, 'params error: Symbol Is Invalid')
        times, rows = self._rows(kind, interval, q['symbol'])
        i = np.searchsorted(times, int(q[lo_key]), 'left') if lo_key in q else 0
        j = np.searchsorted(times, int(q[hi_key]), 'right') if hi_key in q else len(times)
        i, j = (max(i, j - limit), j) if self.anchor == 'end' else (i, min(j, i + limit))
        return rows[i:j][::-1], None

    def kline(self, q):
        if q.get('interval') not in ('1', '3', '5', '15', '30', '60', '120', '240', '360', '720', 'D'):
            return 10001, 'params error: Invalid period!', {}
        limit = min(int(q.get('limit', 200)), 1000, self.page_cap)
        rows, err = self._page('kline', q['interval'], q, 'start', 'end', limit)
        if err:
            return err[0], err[1], {}
        return 0, 'OK', dict(category='linear', symbol=q['symbol'], list=rows)

    def funding(self, q):
        if 'startTime' in q and 'endTime' not in q:
            return 10001, 'params error: endTime is required with startTime', {}
        limit = min(int(q.get('limit', 200)), 200, self.funding_cap)
        rows, err = self._page('funding', '15', q, 'startTime', 'endTime', limit)
        if err:
            return err[0], err[1], {}
        return 0, 'OK', dict(category='linear', list=rows)

    # ---- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self.market()
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def malformed(kind, endpoint, result):
    "A copy of a good `result` of `endpoint` spoiled as `kind`: no list, a short row, a non-numeric field."
    result = json.loads(json.dumps(result))
    if kind == 'nolist':
        result.pop('list', None)
        return result
    rows = result['list'] or ([['1719792000000', '1', '1', '1', '1', '1', '1']] if endpoint == 'kline' else [{}])
    if endpoint == 'kline':
        rows[0] = rows[0][:5] if kind == 'shortrow' else [rows[0][0], 'abc', *rows[0][2:]]
    elif endpoint == 'funding':
        if kind == 'shortrow':
            rows[0].pop('fundingRate', None)
        else:
            rows[0]['fundingRate'] = 'abc'
    result['list'] = rows
    return result


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # clients that timed out
            super().handle_error(request, client_address)


def _handler(fake: FakeBybit):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def log_message(self, *a):
            pass

        def do_GET(self):
            u = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(u.query).items()}
            name = ENDPOINTS.get(u.path)
            with fake.lock:
                fake.log.append((name, q))
            if fake.latency:
                time.sleep(fake.latency)
            headers, over = fake._limit_headers()
            if name is None:
                return self.send(404, b'{"retCode":404,"retMsg":"Not Found"}', headers)
            fault = fake._take_fault(name, q.get('symbol'))
            if fault and fault[0] == 'slow':
                time.sleep(fault[3])  # then the right answer, too late for a short timeout
            elif fault and fault[0] not in MALFORMED:
                return self.fault(fault, headers)
            if over:
                with fake.lock:
                    fake.over_limit += 1
                return self.json(10006, 'Too many visits!', {}, headers)
            try:
                code, msg, result = getattr(fake, name)(q)
            except (ValueError, KeyError) as e:
                code, msg, result = 10001, f'params error: {e}', {}
            if fault and fault[0] in MALFORMED and code == 0:
                result = malformed(fault[0], name, result)
            self.json(code, msg, result, headers)

        def json(self, code, msg, result, headers, status=200):
            body = json.dumps(dict(retCode=code, retMsg=msg, result=result, retExtInfo={}, time=fake.now)).encode()
            self.send(status, body, headers)

        def send(self, status, body, headers, length=None):
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body) if length is None else length))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def fault(self, fault, headers):
            kind = fault[0]
            if kind == 'ratelimit':
                reset = int(time.time() * 1000) + 200
                return self.json(
                    10006,
                    'Too many visits!',
                    {},
                    dict(headers, **{'X-Bapi-Limit-Status': '0', 'X-Bapi-Limit-Reset-Timestamp': str(reset)}),
                )
            if kind == 'http429':
                return self.send(429, b'Too Many Requests', headers)
            if kind == 'retcode10429':
                return self.json(10429, 'System frequency protection', {}, headers)
            if kind == 'http500':
                return self.send(500, b'Internal Server Error', headers)
            if kind == 'retcode10016':
                return self.json(10016, 'Service is restarting', {}, headers)
            if kind == 'forbidden':
                return self.send(403, b'access too frequent', headers)
            if kind == 'garbage':
                return self.send(200, b'{"retCode":0,"retMsg":"OK","result":{"list":[["17', headers)
            if kind == 'truncated':  # promise a long body, send half of it, hang up
                body = json.dumps(dict(retCode=0, retMsg='OK', result=dict(list=[['0'] * 7] * 50))).encode()
                self.send(200, body[: len(body) // 2], headers, length=len(body))
                self.close_connection = True
                return

    return Handler


def main(argv=None):
    p = argparse.ArgumentParser(description='Serve a fake Bybit v5 market API (SYNTHETIC data) until killed.')
    p.add_argument('--symbols', default='BTCUSDT,ETHUSDT,SOLUSDT')
    p.add_argument('--days', type=float, default=30)
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--latency', type=float, default=0.0, help='seconds added to every answer')
    p.add_argument('--rate-limit', default=None, help="e.g. 600/5: requests per window seconds, 10006 beyond")
    p.add_argument('--page-cap', type=int, default=1000)
    a = p.parse_args(argv)
    rl = tuple(float(x) for x in a.rate_limit.split('/')) if a.rate_limit else None
    fake = FakeBybit(
        symbols=a.symbols.split(','),
        days=a.days,
        latency=a.latency,
        port=a.port,
        page_cap=a.page_cap,
        rate_limit=(int(rl[0]), rl[1]) if rl else None,
    ).start()
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == '__main__':
    main()
