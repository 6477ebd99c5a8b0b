"""Download throughput of cryptotft.download against the fake Bybit server (tests/fake_bybit.py, run in its
own process) answering with 50 ms latency and Bybit's IP rate limit emulated (600 requests per 5 s).

For each client setting it prints candles/s and requests/s next to the optimum those settings allow:
min(token-bucket rate, concurrency / latency, Bybit's 120 requests/s) x 1000 candles per page, and the
ratio to it; plus the ratio to Bybit's hard ceiling (120 requests/s x 1000 = 120,000 candles/s), and
requests/s against the allowed rate (funding pages and the one-request-per-range edges carry fewer
than 1000 candles, so the candle ratio is lower than the request ratio).
Run: .venv/bin/python benchmarks/bench_download.py [--days 180] [--n-symbols 8] [--latency 0.05]
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from cryptotft.config import BybitConfig, Config
from cryptotft.db import connect
from cryptotft.download import BYBIT, BybitClient, download
from _options import run_with_options

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = [
    'BTCUSDT',
    'ETHUSDT',
    'SOLUSDT',
    'BNBUSDT',
    'XRPUSDT',
    'DOGEUSDT',
    'ADAUSDT',
    'TRXUSDT',
    'AVAXUSDT',
    'DOTUSDT',
    'LINKUSDT',
    'LTCUSDT',
]
SETTINGS = {
    'default config (50 req/s, 4 threads)': dict(requests_per_second=50.0, max_concurrency=4),
    'near the limit (110 req/s, 8 threads)': dict(requests_per_second=110.0, max_concurrency=8),
}


def start_server(symbols, days, latency):
    "The fake server in a separate process (so it does not share the client's GIL); returns (process, url)."
    limit, window = BYBIT['rate_limit']
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / 'tests' / 'fake_bybit.py'),
            '--symbols',
            ','.join(symbols),
            '--days',
            str(days),
            '--latency',
            str(latency),
            '--rate-limit',
            f'{limit}/{window}',
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return proc, proc.stdout.readline().strip()


def one_run(url, symbols, days, setting):
    "Download everything into a fresh SQLite file; returns the report."
    cfg = Config(bybit=BybitConfig(base_url=url, timeout_s=10.0, **setting))
    with tempfile.TemporaryDirectory() as tmp:
        db = connect(f"sqlite:///{tmp}/bench.db")
        db.init_db()
        return download(cfg, db, symbols, days=days - 1, client=BybitClient(cfg.bybit), progress=False)


def bench_download(days=180, n_symbols=8, latency=0.05):
    symbols = SYMBOLS[:n_symbols]
    proc, url = start_server(symbols, days, latency)
    limit, window = BYBIT['rate_limit']
    bybit_rps = limit / window
    try:
        print(
            f"fake Bybit at {url}: {n_symbols} symbols x {days - 1} days of 15-minute candles, "
            f"latency {latency * 1000:.0f} ms, rate limit {limit}/{window:g} s"
        )
        for name, setting in SETTINGS.items():
            rep = one_run(url, symbols, days, setting)
            assert not rep.errors, rep.errors
            best_rps = min(setting['requests_per_second'], setting['max_concurrency'] / latency, bybit_rps)
            cps, rps = rep.candles / rep.seconds, rep.requests / rep.seconds
            print(
                f"{name}: {rep.candles} candles + {rep.funding} funding events in {rep.seconds:.2f} s, "
                f"{rep.requests} requests; {cps:,.0f} candles/s, {rps:.1f} req/s"
            )
            print(
                f"    optimum for these settings {best_rps * 1000:,.0f} candles/s -> ratio {cps / (best_rps * 1000):.2f}; "
                f"Bybit ceiling {bybit_rps * 1000:,.0f} candles/s -> ratio {cps / (bybit_rps * 1000):.2f}; "
                f"requests {rps:.1f}/s of {best_rps:.0f}/s allowed -> ratio {rps / best_rps:.2f}"
            )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == '__main__':
    run_with_options(bench_download, __doc__)
