"The `cryptotft` command as a user meets it: one clear line and a non-zero exit on bad input, a light --help."

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
import nbformat
import pytest
from cryptotft import __version__
from cryptotft.cli import main

CLI = [sys.executable, '-m', 'cryptotft.cli']


def run(*args, cwd=None, env=None):
    e = {**os.environ, **(env or {})}
    e.pop('CRYPTOTFT_DB_URL', None) if not (env and 'CRYPTOTFT_DB_URL' in env) else None
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=300)


def one_line_error(r):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in r.stderr, r.stderr
    return lines[0]


def test_help_lists_every_stage_and_imports_no_heavy_library():
    r = run('--help')
    assert r.returncode == 0
    for c in (
        'init-db',
        'demo-data',
        'validate-symbols',
        'download',
        'import-csv',
        'prepare',
        'export-dataset',
        'train',
        'evaluate',
        'backtest',
        'predict',
        'report',
        'pipeline',
        'remote',
        'metabase',
    ):
        assert c in r.stdout, c
    code = (
        'import sys, cryptotft.cli; '
        'print(sorted(m for m in ("tensorflow", "keras", "talib", "numba") if m in sys.modules))'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120).stdout.strip()
    assert out == '[]'


@pytest.mark.parametrize(
    'text, key',
    [
        ('model:\n  d_model: big\n', "'model.d_model' must be int"),
        ('risk_profile:\n  take_profit_fractions: [0.5, 0.5, 0.5, 0.5]\n', 'must sum to 1'),
        ('trainning: {}\n', "unknown config section 'trainning'"),
        ('model: [unclosed\n', 'is not valid YAML'),
    ],
)
def test_malformed_config_is_one_line_naming_the_key(tmp_path, text, key):
    (tmp_path / 'bad.yaml').write_text(text)
    assert key in one_line_error(run('--config', str(tmp_path / 'bad.yaml'), 'init-db'))


def test_unreachable_database_is_one_line_and_writes_nothing(tmp_path):
    msg = one_line_error(run('--db', 'postgresql://nobody@127.0.0.1:9/nowhere', 'init-db', cwd=tmp_path))
    assert 'cannot reach database' in msg and '127.0.0.1:9' in msg
    assert not (tmp_path / 'data').exists()


def test_env_database_url_is_used_and_init_db_is_idempotent(tmp_path):
    env = {'CRYPTOTFT_DB_URL': f'sqlite:///{tmp_path}/env.db'}
    first, second = run('init-db', cwd=tmp_path, env=env), run('init-db', cwd=tmp_path, env=env)
    assert first.returncode == 0 and 'created' in first.stdout and 'already up to date' in second.stdout
    assert (tmp_path / 'env.db').exists()


def test_prepare_before_any_download_says_what_to_do(tmp_path):
    msg = one_line_error(run('--db', f'sqlite:///{tmp_path}/x.db', 'prepare', '--symbols', 'BTCUSDT', cwd=tmp_path))
    assert 'no stored candles for BTCUSDT' in msg and 'download' in msg


def test_unknown_pipeline_stage_is_refused(tmp_path):
    msg = one_line_error(run('--db', f'sqlite:///{tmp_path}/x.db', 'pipeline', '--skip', 'trian', cwd=tmp_path))
    assert 'unknown stage' in msg and 'trian' in msg


# ---------------------------------------------------------------- in process: main([...]) and capsys


def call(capsys, *argv):
    "(exit code, stdout, stderr) of `cryptotft *argv` run in this process."
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, exit_code=1):
    "The single `error: ...` line of a failed command (no traceback)."
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == exit_code and len(lines) == 1 and lines[0].startswith('error: '), (code, err)
    assert 'Traceback' not in err
    return lines[0]


def test_days_zero_is_an_error_not_the_default(capsys, tmp_path):
    db = f'sqlite:///{tmp_path}/x.db'
    for argv in (['download', '--days', '0'], ['demo-data', '--days', '0'], ['pipeline', '--demo-days', '-3']):
        msg = one_line(*call(capsys, '--db', db, *argv)[::2], exit_code=2)
        assert 'must be at least 1' in msg and '--help' in msg, msg


def test_invalid_database_url_is_reported_with_its_password_masked(capsys, monkeypatch):
    for url in ('postgresql://me:S3cret-pw@db:notaport/x', 'postgresql://me:S3cret@pw@db:port/x'):
        msg = one_line(*call(capsys, '--db', url, 'init-db')[::2])
        assert 'S3cret' not in msg and 'pw@db' not in msg and 'not valid' in msg, msg
        monkeypatch.setenv('CRYPTOTFT_DB_URL', url)
        msg = one_line(*call(capsys, 'init-db')[::2])
        assert 'S3cret' not in msg, msg


def test_file_errors_are_one_line(capsys, tmp_path):
    (tmp_path / 'bad.csv').write_text('a,b\n1,2,3,4\n"unterminated\n')
    (tmp_path / 'junk.parquet').write_bytes(os.urandom(300))
    (tmp_path / 'binary.csv').write_bytes(bytes(range(256)) * 2)
    db = f'sqlite:///{tmp_path}/x.db'
    for name in ('missing.csv', 'bad.csv', 'junk.parquet', 'binary.csv', '.'):
        code, _, err = call(capsys, '--db', db, 'import-csv', tmp_path / name, '--symbol', 'BTCUSDT')
        one_line(code, err)


def test_database_errors_are_one_line_and_debug_shows_the_traceback(capsys, tmp_path):
    db = f'sqlite:///{tmp_path}/empty.db'  # no tables: `runs` meets "no such table"
    msg = one_line(*call(capsys, '--db', db, 'runs')[::2])
    assert msg.startswith('error: database error:') and 'model_metadata' in msg, msg
    code, _, err = call(capsys, '--debug', '--db', db, 'runs')
    assert code == 1 and err.startswith('Traceback') and err.rstrip().splitlines()[-1] == msg


def test_version_and_python_dash_m():
    r = subprocess.run([sys.executable, '-m', 'cryptotft', '--version'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f'cryptotft {__version__}'


def test_verbose_and_log_file_show_log_records_quiet_by_default(capsys, tmp_path):
    db, log_file = f'sqlite:///{tmp_path}/x.db', tmp_path / 'logs' / 'cryptotft.log'
    assert call(capsys, '--db', db, 'demo-data', '--symbols', 'BTCUSDT', '--days', '4')[0] == 0
    code, out, err = call(capsys, '-q', '--db', db, 'prepare', '--full')
    assert code == 0 and out == 'prepared 384 bars\n' and err == ''
    code, out, err = call(capsys, '-q', '-v', '--log-file', log_file, '--db', db, 'prepare', '--full')
    assert code == 0 and 'recomputing BTCUSDT from its first candle: prepare --full' in err
    assert 'INFO cryptotft.pipeline: recomputing BTCUSDT' in log_file.read_text()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _tiny_report(path: Path, url: str) -> Path:
    "A report notebook that checks what it receives: typed parameters, the database URL in its environment."
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_id = None\nruns_dir = None\nconfig_path = None\nlr = None\nflag = None')
    params.metadata['tags'] = ['parameters']
    check = nbformat.v4.new_code_cell(
        'import hashlib\n'
        'import os\n'
        'assert lr == 0.001 and flag is True, (lr, flag)\n'
        f"assert hashlib.sha256(os.environ['CRYPTOTFT_DB_URL'].encode()).hexdigest() == {_sha(url)!r}\n"
        "print('parameters ok')"
    )
    nb.cells = [params, check]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nbformat.write(nb, path)
    return path


def test_report_parameters_are_typed_and_the_database_url_is_never_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = 'postgresql://me:PLANTED-pw-4711@127.0.0.1:9/research'
    nb = _tiny_report(tmp_path / 'tiny_report.ipynb', url)
    params = ['--param', 'run_id=r1', '--param', 'lr=1e-3', '--param', 'flag=true']
    code, out, err = call(capsys, '--db', url, 'report', '--notebook', nb, *params)
    assert code == 0, err
    executed = tmp_path / 'runs' / 'r1' / 'tiny_report.ipynb'
    assert 'parameters ok' in executed.read_text()
    assert 'db_url' not in json.loads(executed.read_text())['metadata']['papermill']['parameters']
    for f in (tmp_path / 'runs').rglob('*'):
        assert not f.is_file() or b'PLANTED' not in f.read_bytes(), f
    assert 'PLANTED' not in out + err
    msg = one_line(*call(capsys, 'report', '--notebook', nb, '--param', 'db_url=postgresql://u:pw-here-9@h/x')[::2])
    assert 'db_url is not a report parameter' in msg and 'pw-here-9' not in msg


def test_run_ids_are_checked_before_anything_runs(capsys, tmp_path):
    snap = tmp_path / 'snapshot.npz'
    snap.write_bytes(b'x')
    db = f'sqlite:///{tmp_path}/x.db'
    for argv in (
        ['train', '--run-id', '../evil'],
        ['evaluate', '--run', '../../etc'],
        ['report', '--param', 'run_id=a/b'],
        ['remote', 'run', '--host', '127.0.0.1', '--snapshot', snap, '--run-id', 'r1$(touch X)'],
        ['remote', 'status', 'r1;id'],
        ['remote', 'fetch', '../r1'],
    ):
        msg = one_line(*call(capsys, '--db', db, *argv)[::2])
        assert 'is not a plain name' in msg, (argv, msg)
    assert list(tmp_path.rglob('X')) == []


def test_ssh_user_or_host_starting_with_a_dash_is_refused(capsys, tmp_path):
    snap = tmp_path / 'snapshot.npz'
    snap.write_bytes(b'x')
    for opt, what in (('--user=-oProxyCommand=touch X', 'user'), ('--host=-oProxyCommand=touch X', 'host')):
        host = [] if what == 'host' else ['--host', '127.0.0.1']
        msg = one_line(*call(capsys, 'remote', 'run', *host, opt, '--snapshot', snap, '--run-id', 'r1')[::2])
        assert msg.startswith(f"error: {what} '-oProxyCommand") and 'not starting with -' in msg, msg
    assert list(tmp_path.rglob('X')) == [] and not Path('X').exists()
