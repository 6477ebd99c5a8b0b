"""Peak memory of `prepare` and of building the training dataset on all real symbols (goal: each under 6 GB).

Run: nice -n 10 .venv/bin/python benchmarks/bench_memory.py [--symbols 50] [--copies 1] [--keep DIR]
Data: /work/shared/data/binance_usdm_15m (50 real Binance USD-M symbols, 15-minute candles) and
binance_usdm_funding, imported into a temporary SQLite database first (that import is part of the
benchmark's setup, measured but not judged). The real set holds 2.24M candles; `--copies 3` stores each
symbol three times (the copies named SYMBOLC1, SYMBOLC2) for the ~6.7M candles of a bigger universe.
Then, each in a fresh process so its peak resident set size (ru_maxrss) is its own:
  1. `cryptotft.pipeline.prepare`: 49 indicators and the expected-return labels of every symbol, written
     to processed_market_data;
  2. `cryptotft.dataset.dataset_from_db`: the model view (float32 features, labels, window index, splits,
     scaler) of every prepared symbol, as `cryptotft train` builds it.
Prints rows, seconds and peak RSS of each stage, and exits non-zero when a stage goes over the limit.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path('/work/shared/data')
LIMIT_GB = 6.0


def peak_rss_gb() -> float:
    "Peak resident set size of this process so far, in GB (Linux reports ru_maxrss in KiB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def stage_import(url: str, n_symbols: int, copies: int = 1) -> dict:
    "Candles and funding of the first `n_symbols` real symbols, `copies` times each, into the database (setup)."
    import pandas as pd

    from cryptotft.db import connect
    from cryptotft.download import import_csv

    db = connect(url)
    db.init_db()
    files = sorted((DATA / 'binance_usdm_15m').glob('*.parquet'))[:n_symbols]
    candles = funding = 0
    for f in files:
        fund = DATA / 'binance_usdm_funding' / f.name
        for k in range(copies):
            name = f.stem if k == 0 else f'{f.stem}C{k}'
            candles += import_csv(db, f, name, '15')
            if fund.exists():
                funding += db.upsert('funding_rates', pd.read_parquet(fund).assign(symbol=name))
    return {'symbols': len(files) * copies, 'candles': candles, 'funding_events': funding}


def stage_prepare(url: str) -> dict:
    "Indicators and labels of every stored symbol, as `cryptotft prepare` computes them."
    from cryptotft.config import Config
    from cryptotft.db import connect
    from cryptotft.pipeline import prepare

    db = connect(url)
    labelled = prepare(Config(), db, progress=False)
    return {'bars_labelled': int(labelled), 'processed_rows': db.count_rows('processed_market_data')}


def stage_dataset(url: str) -> dict:
    "The training dataset of every prepared symbol, as `cryptotft train` builds it from the database."
    from cryptotft.config import Config
    from cryptotft.dataset import dataset_from_db
    from cryptotft.db import connect

    ds = dataset_from_db(connect(url), Config())
    return {
        'rows': len(ds.timestamps),
        'features': len(ds.feature_names),
        'symbols': len(ds.symbols),
        'windows': {k: len(v) for k, v in ds.splits.items()},
        'dataset_mb': round(ds.nbytes / 1e6, 1),
    }


STAGES = {'import': stage_import, 'prepare': stage_prepare, 'dataset': stage_dataset}


def run_stage(name: str, url: str, n_symbols: int, copies: int) -> dict:
    "Run one stage in a fresh Python process; its result plus seconds and peak RSS."
    cmd = [
        sys.executable,
        __file__,
        '--stage',
        name,
        '--url',
        url,
        '--symbols',
        str(n_symbols),
        '--copies',
        str(copies),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f'stage {name} failed:\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def child(name: str, url: str, n_symbols: int, copies: int):
    t0 = time.perf_counter()
    base = peak_rss_gb()
    out = STAGES[name](url, n_symbols, copies) if name == 'import' else STAGES[name](url)
    out.update(seconds=round(time.perf_counter() - t0, 1), peak_rss_gb=round(peak_rss_gb(), 3))
    out['rss_at_start_gb'] = round(base, 3)
    print(json.dumps(out))


def main(n_symbols: int, copies: int, keep: str | None):
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix='bench_memory_'))
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp / 'bench.db'}"
    where = 'kept' if keep else 'temporary'
    print(f'database: {url} ({where}); {os.cpu_count()} CPUs; limit {LIMIT_GB:g} GB per stage', flush=True)
    results, over = {}, []
    try:
        for name in ('import', 'prepare', 'dataset'):
            res = run_stage(name, url, n_symbols, copies)
            results[name] = res
            print(f'{name}: {json.dumps(res)}', flush=True)
            if name != 'import' and res['peak_rss_gb'] > LIMIT_GB:
                over.append(name)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    imp, prep, ds = results['import'], results['prepare'], results['dataset']
    print(
        f"\nsetup: {imp['candles']:,} real candles of {imp['symbols']} symbols ({copies}x each real one) "
        f"imported in {imp['seconds']}s "
        f"(peak RSS {imp['peak_rss_gb']:.2f} GB)"
    )
    print(
        f"prepare: {prep['processed_rows']:,} processed rows in {prep['seconds']}s, "
        f"peak RSS {prep['peak_rss_gb']:.2f} GB (limit {LIMIT_GB:g} GB)"
    )
    print(
        f"dataset: {ds['rows']:,} rows x {ds['features']} features of {ds['symbols']} symbols ({ds['dataset_mb']} MB "
        f"of arrays) in {ds['seconds']}s, peak RSS {ds['peak_rss_gb']:.2f} GB (limit {LIMIT_GB:g} GB)"
    )
    if over:
        raise SystemExit(f'over {LIMIT_GB:g} GB: {", ".join(over)}')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--symbols', type=int, default=50, help='how many of the real symbols (alphabetical)')
    ap.add_argument('--copies', type=int, default=1, help='store each symbol this many times (a bigger universe)')
    ap.add_argument('--keep', default=None, help='keep the database in this folder (default: a temporary one)')
    ap.add_argument('--stage', choices=list(STAGES), help=argparse.SUPPRESS)
    ap.add_argument('--url', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.stage:
        child(a.stage, a.url, a.symbols, a.copies)
    else:
        main(a.symbols, a.copies, a.keep)
