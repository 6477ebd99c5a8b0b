"`cryptotft pipeline --demo` end to end in a temporary directory, the re-run that trains nothing, and the report."

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
import pytest
import sqlalchemy as sa

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
    r = cli('-q', 'pipeline', '--demo', '--demo-days', '20', cwd=d)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = [p for p in (d / 'runs').iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return d, runs[0], r.stdout


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
    assert 'beats_reference' in html and 'always_long' in html and 'lightgbm' in html  # metrics table next to baselines
    assert 'SYNTHETIC' in json.dumps(json.loads(report.read_text())['cells'][:8])
    assert len(outputs_of(report, 'image/png')) >= 5
