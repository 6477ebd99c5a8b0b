"""`cryptotft pipeline --demo` end to end in a temporary directory, the re-run that trains nothing, and the report;
`prepare` after a configuration change and after a backfill."""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from cryptotft.cli import main
from cryptotft.config import Config, with_overrides
from cryptotft.db import connect
from cryptotft.pipeline import prep_fingerprint, prepare
from cryptotft.synthetic import synthetic_market

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, '-m', 'cryptotft.cli']
TABLES = (
    'symbols',
    'raw_market_data',
    'funding_rates',
    'processed_market_data',
    'model_metadata',
    'training_sequences',
    'model_predictions',
)


def cli(*args, cwd, timeout=900):
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'MPLBACKEND': 'Agg'}
    env.pop('CRYPTOTFT_DB_URL', None)
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def notebook_errors(path):
    nb = json.loads(Path(path).read_text())
    return [
        o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if o['output_type'] == 'error'
    ]


def outputs_of(path, mime):
    nb = json.loads(Path(path).read_text())
    return [
        o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if mime in o.get('data', {})
    ]


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp('demo')
    shutil.copy(ROOT / 'config.yaml', d / 'config.yaml')
    r = cli('-q', '-v', 'pipeline', '--demo', '--demo-days', '20', cwd=d)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = [p for p in (d / 'runs').iterdir() if p.is_dir() and not p.name.startswith('.')]
    assert len(runs) == 1, runs
    return d, runs[0], r.stdout + r.stderr


def test_demo_pipeline_fills_every_table(demo):
    d, run, _ = demo
    eng = sa.create_engine(f"sqlite:///{d}/data/cryptotft.db")
    with eng.connect() as c:
        counts = {t: c.execute(sa.text(f'SELECT COUNT(*) FROM {t}')).scalar() for t in TABLES}
        status = c.execute(sa.text('SELECT status FROM model_metadata')).scalar()
        splits = {r[0] for r in c.execute(sa.text('SELECT DISTINCT split FROM training_sequences'))}
    assert all(n > 0 for n in counts.values()), counts
    assert counts['raw_market_data'] == 3 * 20 * 96 and status == 'finished' and splits == {'train', 'val', 'test'}


def test_demo_run_folder_holds_model_plots_tensorboard_and_clean_report(demo):
    d, run, out = demo
    assert (run / 'model.keras').stat().st_size > 10_000 and (run / 'run.json').exists()
    assert list((run / 'plots').glob('*.png')), 'no plots'
    assert list((run / 'tensorboard').rglob('events.out.tfevents.*')), 'no TensorBoard events'
    report = run / 'train_report.ipynb'
    assert report.exists() and (run / 'train_report.html').exists()
    assert notebook_errors(report) == []
    assert len(outputs_of(report, 'image/png')) >= 5 and len(outputs_of(report, 'text/html')) >= 5
    index = (d / 'runs' / 'README.md').read_text()
    assert run.name in index
    for stage in ('[prepare] done', '[train] done', '[evaluate] done', '[predict] done', '[report] done'):
        assert stage in out, stage


def test_rerun_without_new_data_trains_nothing(demo):
    d, run, _ = demo
    before = sorted(p.name for p in (d / 'runs').iterdir())
    r = cli('-q', 'pipeline', '--demo', '--demo-days', '20', cwd=d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'up to date: data and config unchanged since run {run.name}' in r.stdout
    assert '[train]' not in r.stdout
    assert sorted(p.name for p in (d / 'runs').iterdir()) == before


def test_report_command_executes_the_notebook_with_papermill(demo):
    d, run, _ = demo
    shutil.move(run / 'train_report.ipynb', run / 'first_report.ipynb')
    r = cli(
        'report',
        '--param',
        f'run_id={run.name}',
        '--param',
        'synthetic=true',
        '--notebook',
        str(ROOT / 'nbs' / 'reports' / 'train_report.ipynb'),
        cwd=d,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = run / 'train_report.ipynb'
    assert notebook_errors(report) == []
    html = ' '.join(''.join(o['data']['text/html']) for o in outputs_of(report, 'text/html'))
    assert 'model_median' in html and 'always_long' in html and 'train_median' in html  # the mean next to baselines
    text = json.dumps(json.loads(report.read_text())['cells'][-3:])
    assert 'No edge found' in text or 'The model beats' in text  # the generated verdict
    assert 'SYNTHETIC' in json.dumps(json.loads(report.read_text())['cells'][:8])
    assert len(outputs_of(report, 'image/png')) >= 5


@pytest.mark.postgres
def test_report_on_postgresql_keeps_the_database_password_out_of_every_output(tiny_run, tmp_path, capsys, monkeypatch):
    "A password planted in the database URL appears in no file of the run folder, no log and no output."
    from pgutil import throwaway_pg_url

    _, lite, res, _ = tiny_run
    planted = f'PLANTED-{secrets.token_hex(6)}'
    runs, log_file = tmp_path / 'runs', tmp_path / 'cryptotft.log'
    shutil.copytree(res.run_dir, runs / 'tiny')
    (tmp_path / 'config.yaml').write_text(f'training:\n  runs_dir: {runs}\n')
    monkeypatch.chdir(tmp_path)
    with throwaway_pg_url() as url:
        url = url.replace('postgres@', f'postgres:{planted}@')  # trust authentication accepts any password
        pg = connect(url)
        pg.init_db()
        for table in ('raw_market_data', 'funding_rates', 'processed_market_data', 'model_metadata'):
            pg.upsert(table, lite.read_sql(f'SELECT * FROM {table}'))
        notebook = ROOT / 'nbs' / 'reports' / 'train_report.ipynb'
        argv = ['--config', 'config.yaml', '--db', url, '-vv', '--log-file', log_file]
        code = main([str(a) for a in [*argv, 'report', '--param', 'run_id=tiny', '--notebook', notebook]])
        out, err = capsys.readouterr()
        stored = pg.read_runs().set_index('run_id').loc['tiny', 'metrics']
        pg.engine.dispose()
    assert code == 0, err[-3000:]
    report = runs / 'tiny' / 'train_report.ipynb'
    assert notebook_errors(report) == [] and (runs / 'tiny' / 'train_report.html').exists()
    assert 'test' in stored  # the report's kernel reached PostgreSQL: evaluate_run stored its metrics there
    assert 'db_url' not in json.loads(report.read_text())['metadata']['papermill']['parameters']
    leaks = [str(p) for p in tmp_path.rglob('*') if p.is_file() and planted.encode() in p.read_bytes()]
    assert leaks == [] and planted not in out + err and log_file.read_text()


# ---------------------------------------------------------------- prepare is never stale


def _one_shot(cfg, candles, funding, tmp_path, name):
    "Processed rows of one `prepare` over all `candles` in a fresh database."
    db = connect(f"sqlite:///{tmp_path}/{name}.db")
    db.init_db()
    db.upsert('raw_market_data', candles.assign(interval='15'))
    db.upsert('funding_rates', funding)
    prepare(cfg, db, progress=False)
    return db.read_processed('BTCUSDT')


def _assert_same_rows(got: pd.DataFrame, want: pd.DataFrame):
    assert list(got.timestamp) == list(want.timestamp)
    assert sorted(got.columns) == sorted(want.columns)
    for c in want.columns.drop(['symbol', 'timestamp']):
        np.testing.assert_allclose(
            got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=c
        )


def test_new_horizon_relabels_every_stored_row(tmp_path):
    cfg20 = with_overrides(Config(), model=dict(prediction_horizon=20))
    cfg60 = with_overrides(cfg20, model=dict(prediction_horizon=60))
    candles, funding = synthetic_market(['BTCUSDT'], days=8, seed=11)
    db = connect(f"sqlite:///{tmp_path}/h.db")
    db.init_db()
    db.upsert('raw_market_data', candles.assign(interval='15'))
    db.upsert('funding_rates', funding)
    prepare(cfg20, db, progress=False)
    assert prepare(cfg60, db, progress=False) == len(candles)  # every bar, not only the 20 newest
    got = db.read_processed('BTCUSDT')
    assert got.buy_return.isna().sum() == 60 and (got.prep_fingerprint == prep_fingerprint(cfg60, '15')).all()
    _assert_same_rows(got, _one_shot(cfg60, candles, funding, tmp_path, 'oneshot'))


def test_volatility_scaled_labels_grow_incrementally_as_if_computed_at_once(tmp_path):
    "The level scale needs `volatility_period` bars before each label: incremental prepare reads them first."
    cfg = with_overrides(
        Config(),
        model=dict(prediction_horizon=30),
        risk_profile=dict(volatility_target_pct=0.5, volatility_period=48),
    )
    candles, funding = synthetic_market(['BTCUSDT'], days=10, seed=3)
    db = connect(f"sqlite:///{tmp_path}/v.db")
    db.init_db()
    db.upsert('funding_rates', funding)
    db.upsert('raw_market_data', candles.iloc[:500].assign(interval='15'))
    prepare(cfg, db, progress=False)
    db.upsert('raw_market_data', candles.iloc[500:].assign(interval='15'))
    assert prepare(cfg, db, progress=False) == len(candles) - 500 + 30  # the new bars and the 30 that waited
    got = db.read_processed('BTCUSDT')
    assert got.buy_return.isna().sum() == 48 + 30  # no history for a scale, no future for a trade
    _assert_same_rows(got, _one_shot(cfg, candles, funding, tmp_path, 'oneshot'))
    fixed_cfg = with_overrides(cfg, risk_profile=dict(volatility_target_pct=0.0))
    fixed = _one_shot(fixed_cfg, candles, funding, tmp_path, 'f')
    assert (got.buy_exit_bars != fixed.buy_exit_bars).any()  # the scale moved some exits


def test_fingerprint_ignores_volatility_settings_only_while_levels_are_fixed():
    base = Config()
    assert prep_fingerprint(with_overrides(base, risk_profile=dict(volatility_period=10)), '15') == prep_fingerprint(
        base, '15'
    )
    scaled = with_overrides(base, risk_profile=dict(volatility_target_pct=0.4))
    assert prep_fingerprint(scaled, '15') != prep_fingerprint(base, '15')
    longer = with_overrides(scaled, risk_profile=dict(volatility_period=10))
    assert prep_fingerprint(longer, '15') != prep_fingerprint(scaled, '15')


def test_backfilled_candles_are_processed_as_if_always_there(tmp_path):
    cfg = with_overrides(Config(), model=dict(prediction_horizon=40))
    candles, funding = synthetic_market(['BTCUSDT'], days=25, seed=5)
    assert len(candles) == 2400
    older, newer = candles.iloc[:1200], candles.iloc[1200:]
    db = connect(f"sqlite:///{tmp_path}/b.db")
    db.init_db()
    db.upsert('funding_rates', funding)
    db.upsert('raw_market_data', newer.assign(interval='15'))
    prepare(cfg, db, progress=False)
    db.upsert('raw_market_data', older.assign(interval='15'))
    prepare(cfg, db, progress=False)
    _assert_same_rows(db.read_processed('BTCUSDT'), _one_shot(cfg, candles, funding, tmp_path, 'oneshot'))
    assert prepare(cfg, db, progress=False) == 40  # and then it is incremental again
