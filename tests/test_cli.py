"The `cryptotft` command as a user meets it: one clear line and a non-zero exit on bad input, a light --help."

import os
import subprocess
import sys
import pytest

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
    code = 'import sys, cryptotft.cli; print(sorted(m for m in ("tensorflow", "keras", "talib", "numba") if m in sys.modules))'
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
