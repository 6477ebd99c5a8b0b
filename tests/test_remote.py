"""The remote flow end to end against a real OpenSSH server on loopback, and against a hostile one.

The "remote machine" is this machine: the test starts its own sshd (generated host key, generated
client key, 127.0.0.1 only, a free port), the remote directory is a tmp folder, and the remote python
is this venv's interpreter (so no `pip install` runs). Needs Debian's openssh-server, openssh-client
and rsync; skipped with the reason when they are missing.

The injection tests need no sshd: a sandbox runner executes every command that would run on the remote
machine with bash in a temporary "remote home", and every rsync as a local rsync into it, so what the
built commands really do (not what they look like) is what the tests check.
"""

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
import pytest
from cryptotft.config import ConfigError
from cryptotft.cli import main
from cryptotft.remote import (
    RemoteError,
    RemoteHost,
    RemoteJob,
    fetch_run,
    load_host,
    record_path,
    remote_status,
    run_remote,
    start_job,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = 'tests/data/remote_report.ipynb'
SSHD = '/usr/sbin/sshd'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def sshd(tmp_path_factory):
    "A private sshd on 127.0.0.1 accepting one generated key for the current user."
    missing = [
        t
        for t in (SSHD, shutil.which('ssh'), shutil.which('rsync'), shutil.which('ssh-keygen'))
        if not t or not os.path.exists(t)
    ]
    if missing or not shutil.which('rsync'):
        pytest.skip(
            'needs openssh-server, openssh-client and rsync: apt-get install -y openssh-server openssh-client rsync'
        )
    d = tmp_path_factory.mktemp('sshd')
    for name in ('host_key', 'client_key'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(d / name)], check=True)
    (d / 'authorized_keys').write_text((d / 'client_key.pub').read_text())
    os.chmod(d / 'authorized_keys', 0o600)
    port = _free_port()
    (d / 'sshd_config').write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
AuthorizedKeysFile {d / 'authorized_keys'}
PidFile {d / 'sshd.pid'}
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
""")
    if os.geteuid() == 0:
        os.makedirs('/run/sshd', exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([SSHD, '-D', '-e', '-f', str(d / 'sshd_config')], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                break
        if proc.poll() is not None:
            pytest.skip(f'sshd did not start: {proc.stderr.read()[-300:]}')
        time.sleep(0.05)
    yield dict(port=port, key=str(d / 'client_key'), known_hosts=str(d / 'known_hosts'))
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def host(sshd, tmp_path):
    return RemoteHost(
        '127.0.0.1',
        sshd['port'],
        getpass.getuser(),
        sshd['key'],
        remote_dir=str(tmp_path / 'remote'),
        python=sys.executable,
        known_hosts=sshd['known_hosts'],
    )


@pytest.fixture
def snapshot(tmp_path):
    p = tmp_path / 'snapshot.bin'
    p.write_bytes(os.urandom(4096))
    return p


def _sha(p):
    return __import__('hashlib').sha256(Path(p).read_bytes()).hexdigest()


def _run_here(host, snapshot, params, run_id, runs_dir, out=lambda s: None, install=False):
    "`run_remote` of the test notebook from this checkout, launched with nohup, polled every 0.3 s."
    job = RemoteJob(
        NOTEBOOK,
        params,
        snapshot,
        run_id=run_id,
        project_dir=ROOT,
        runs_dir=runs_dir,
        install=install,
        launcher='nohup',
    )
    return run_remote(host, job, poll_s=0.3, out=out)


def test_run_remote_syncs_code_executes_notebook_and_fetches_run_folder(host, snapshot, tmp_path):
    runs, lines = tmp_path / 'runs', []
    local = _run_here(host, snapshot, {'epochs': 3}, 't-ok', runs, out=lines.append)
    code = Path(host.code_dir)
    # code synced without the venv, git or local data; the snapshot sits beside it
    assert (code / 'cryptotft' / 'remote.py').read_bytes() == (ROOT / 'cryptotft' / 'remote.py').read_bytes()
    assert (code / NOTEBOOK).exists() and not (code / '.venv').exists() and not (code / '.git').exists()
    assert _sha(Path(host.remote_dir) / 'snapshots' / 'snapshot.bin') == _sha(snapshot)
    # the notebook ran on the synced code with the injected parameters, and its folder came back
    m = json.loads((local / 'metrics.json').read_text())
    assert m['epochs'] == 3 and m['run_id'] == 't-ok' and m['dataset_sha256'] == _sha(snapshot)
    assert Path(m['cryptotft_file']).is_relative_to(code.resolve())
    nb = json.loads((local / 'remote_report.ipynb').read_text())
    assert nb['metadata']['papermill']['parameters']['epochs'] == 3 and (local / 'exit_code').read_text().strip() == '0'
    # the log was streamed line by line, and it is kept in the run folder too
    assert 'epoch 3/3 loss=0.333' in '\n'.join(lines) and 'epoch 3/3' in (local / 'remote.log').read_text()
    assert json.loads(record_path('t-ok', runs).read_text())['host']['port'] == host.port
    assert not (local / 'remote.json').exists()  # the connection record lives outside the fetched folder


def test_detached_job_can_be_reattached_with_status_and_fetch(host, snapshot, tmp_path):
    runs = tmp_path / 'runs'
    launcher = 'tmux' if shutil.which('tmux') else 'nohup'
    params = {'epochs': 2, 'sleep_s': 4.0}
    job = RemoteJob(
        NOTEBOOK,
        params,
        snapshot,
        run_id='t-detached',
        project_dir=ROOT,
        runs_dir=runs,
        install=False,
        launcher=launcher,
    )
    run_id = start_job(host, job)
    # kernel start-up plus a 4 s sleep keep the job busy while we look
    assert remote_status(run_id, runs).state in ('starting', 'running')
    lines = []
    local = fetch_run(run_id, runs, wait=True, poll_s=0.3, out=lines.append)
    st = remote_status(run_id, runs)
    assert (st.state, st.exit_code) == ('finished', 0) and 'epoch 2/2' in st.log_tail
    assert json.loads((local / 'metrics.json').read_text())['epochs'] == 2 and any('epoch 2/2' in l for l in lines)


def test_failed_notebook_raises_and_still_brings_back_the_log(host, snapshot, tmp_path):
    runs = tmp_path / 'runs'
    with pytest.raises(RemoteError, match='failed with exit code 1'):
        _run_here(host, snapshot, {'fail': True}, 't-fail', runs)
    assert 'planned failure for the test' in (runs / 't-fail' / 'remote.log').read_text()
    assert remote_status('t-fail', runs).state == 'failed'


def test_gpu_requirements_install_once_per_pyproject(host, snapshot, tmp_path):
    # a stand-in interpreter that records pip calls and hands everything else to the real python
    fake = tmp_path / 'fakepy'
    fake.write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "$@" >> {tmp_path}/pip.log; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    h = RemoteHost(**{**host.__dict__, 'python': str(fake)})
    for i in range(2):
        _run_here(h, snapshot, {}, f't-install-{i}', tmp_path / 'runs', install=True)
    assert (tmp_path / 'pip.log').read_text().splitlines() == ['-m pip install -q -e .[gpu]']


def test_unreachable_host_says_which_host(tmp_path, snapshot):
    h = RemoteHost('127.0.0.1', _free_port(), known_hosts=str(tmp_path / 'kh'))
    with pytest.raises(RemoteError, match=r'ssh to root@127.0.0.1'):
        start_job(h, RemoteJob(NOTEBOOK, snapshot=snapshot, project_dir=ROOT, runs_dir=tmp_path / 'runs'))


# ---------------------------------------------------------------- a hostile remote machine, in a sandbox


def sandbox_runner(home: Path):
    "Runner that executes remote commands with bash in `home` and rsyncs into it locally; records every argv."
    calls = []

    def remote_path(arg: str) -> str:
        if '@' in arg.split(':', 1)[0] and ':' in arg:
            path = arg.split(':', 1)[1]
            return path if path.startswith('/') else str(home / path)
        return arg

    def run(argv, input=None, timeout=None):
        calls.append(list(argv))
        env = {'HOME': str(home), 'PATH': os.environ['PATH']}
        if argv[0] == 'ssh':
            assert argv[-3] == '--', argv  # options end before the destination
            return subprocess.run(
                ['bash', '-c', argv[-1]], cwd=home, input=input, env=env, capture_output=True, text=True, timeout=60
            )
        assert argv[0] == 'rsync', argv
        i = argv.index('-e')
        local = [*argv[:i], *argv[i + 2 :]]  # no ssh: both sides are on this machine
        return subprocess.run([remote_path(a) for a in local], capture_output=True, text=True, timeout=60)

    return run, calls


@pytest.fixture
def sandbox(tmp_path):
    "(project, snapshot, runs, remote home, runner, calls) for one hostile-remote test."
    if not shutil.which('rsync') or not shutil.which('bash'):
        pytest.skip('needs rsync and bash')
    proj, home = tmp_path / 'proj', tmp_path / 'home'
    (proj / 'nbs').mkdir(parents=True)
    (proj / 'nbs' / 'report.ipynb').write_text('{}')
    (proj / 'pyproject.toml').write_text('[project]\nname = "x"\n')
    home.mkdir()
    snap = tmp_path / 'snapshot.npz'
    snap.write_bytes(b'data')
    run, calls = sandbox_runner(home)
    return proj, snap, tmp_path / 'runs', home, run, calls


def _remote_run(sandbox, host, params, run_id, notebook='nbs/report.ipynb', upload=None):
    "`run_remote` in the sandbox: the snapshot of the fixture, or the folder `upload` and no snapshot."
    proj, snap, runs, _, run, _ = sandbox
    snapshot = snap if upload is None else None
    job = RemoteJob(
        notebook, params, snapshot, upload, run_id, project_dir=proj, runs_dir=runs, install=False, launcher='nohup'
    )
    return run_remote(host, job, poll_s=0.2, runner=run, out=lambda s: None, sleep=time.sleep)


def _planted(root: Path) -> list:
    return [p for p in root.rglob('X')]


def test_injected_run_id_is_refused_before_any_remote_command(sandbox, tmp_path):
    *_, home, run, calls = sandbox
    h = RemoteHost('127.0.0.1', remote_dir=str(home / 'remote'), python=sys.executable)
    with pytest.raises(ConfigError, match='not a plain name'):
        _remote_run(sandbox, h, {}, 'r1$(touch X)')
    assert calls == [] and _planted(tmp_path) == []


def test_injected_remote_python_and_params_stay_inert_in_the_remote_shell(sandbox, tmp_path):
    *_, runs, home, run, calls = sandbox
    payload = "$(touch X)`touch X`'; touch X; '\"; touch X; \""
    h = RemoteHost('127.0.0.1', remote_dir=str(home / 'remote'), python='$(touch X)')
    with pytest.raises(RemoteError, match='failed with exit code 127'):
        _remote_run(sandbox, h, {'note': payload}, 'r-inert')
    assert _planted(tmp_path) == [], 'a value became shell code on the remote machine'
    assert 'remote python not found: $(touch X)' in (runs / 'r-inert' / 'remote.log').read_text()
    remote_params = runs / 'r-inert' / 'params.json'
    assert json.loads(remote_params.read_text())['note'] == payload


def test_user_or_host_starting_with_a_dash_is_refused():
    for bad in (dict(user='-oProxyCommand=touch X'), dict(host='-oProxyCommand=touch X')):
        with pytest.raises(ConfigError, match='not starting with -'):
            RemoteHost(**{'host': '127.0.0.1', **bad})


def test_a_fetched_run_folder_cannot_choose_the_host_or_plant_links(sandbox, tmp_path):
    *_, runs, home, run, calls = sandbox
    victim = tmp_path / 'victim.txt'
    victim.write_text('mine')
    fake = tmp_path / 'hostile-python'  # "papermill" on a hostile machine: writes its own connection record and a link
    fake.write_text(
        '#!/bin/sh\nout=$(dirname "$4")\n'
        'echo \'{"run_id": "r-evil", "host": {"host": "evil.example", "user": "root", "python": "sh"}}\' '
        '> "$out/remote.json"\n'
        f'ln -s {victim} "$out/metrics.csv"\necho trained\n'
    )
    fake.chmod(0o755)
    h = RemoteHost('127.0.0.1', 2222, 'me', remote_dir=str(home / 'remote'), python=str(fake))
    local = _remote_run(sandbox, h, {}, 'r-evil')
    assert (local / 'remote.json').exists() and not (local / 'metrics.csv').exists()  # data yes, links no
    calls.clear()
    assert remote_status('r-evil', runs, runner=run).state == 'finished'
    assert calls[0][-2] == 'me@127.0.0.1' and load_host('r-evil', runs) == h
    fetch_run('r-evil', runs, runner=run)
    assert victim.read_text() == 'mine' and not (local / 'metrics.csv').is_symlink()


def test_a_tampered_connection_record_is_checked_field_by_field(tmp_path):
    p = record_path('r1', tmp_path)
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({'host': {'host': '127.0.0.1', 'user': '-oProxyCommand=touch X'}}))
    with pytest.raises(ConfigError, match='user'):
        remote_status('r1', tmp_path, runner=lambda *a, **k: pytest.fail('ran a command'))
    p.write_text(json.dumps({'host': {'host': '127.0.0.1', 'proxy': 'x'}}))
    with pytest.raises(ConfigError, match='unknown fields'):
        load_host('r1', tmp_path)


# ---------------------------------------------------------------- another notebook, and a data folder uploaded


STUDY_LIKE = {
    'parameters': "data_dir = 'nowhere'\nrun_id = 'local'\nruns_dir = 'runs'",
    'body': (
        'import json, os\n'
        'from pathlib import Path\n'
        'out = Path(runs_dir) / run_id\n'
        'out.mkdir(parents=True, exist_ok=True)\n'
        'files = sorted(str(p.relative_to(data_dir)) for p in Path(data_dir).rglob("*") if p.is_file())\n'
        'seen = {"data_dir": data_dir, "files": files, "btc": (Path(data_dir) / "15m" / "BTCUSDT.csv").read_text()}\n'
        '(out / "seen.json").write_text(json.dumps(seen))'
    ),
}


def _study_like(path: Path):
    "A two-cell notebook that, like the study, reads its candles from the `data_dir` parameter."
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(STUDY_LIKE['parameters']), nbformat.v4.new_code_cell(STUDY_LIKE['body'])]
    nb.cells[0].metadata['tags'] = ['parameters']
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def test_uploaded_folder_lands_where_the_notebook_is_told_and_is_mirrored(sandbox, tmp_path):
    proj, _, runs, home, run, calls = sandbox
    _study_like(proj / 'nbs' / 'study.ipynb')
    data = tmp_path / 'local-data'
    (data / '15m').mkdir(parents=True)
    (data / '15m' / 'BTCUSDT.csv').write_text('t,close\n0,1\n')
    (data / '15m' / 'ETHUSDT.csv').write_text('t,close\n0,2\n')
    outside = tmp_path / 'elsewhere.csv'
    outside.write_text('linked')
    (data / 'linked.csv').symlink_to(outside)
    h = RemoteHost('127.0.0.1', remote_dir=str(home / 'remote'), python=sys.executable)
    local = _remote_run(sandbox, h, {'note': 'x'}, 's-1', notebook='nbs/study.ipynb', upload=data)
    # the executed notebook is the study, not the train report, and it read the uploaded copy
    seen = json.loads((local / 'seen.json').read_text())
    assert seen == {
        'data_dir': '../upload',
        'files': ['15m/BTCUSDT.csv', '15m/ETHUSDT.csv', 'linked.csv'],
        'btc': 't,close\n0,1\n',
    }
    assert (local / 'study.ipynb').exists() and not (local / 'train_report.ipynb').exists()
    params = json.loads((local / 'params.json').read_text())
    assert params == {'data_dir': '../upload', 'note': 'x', 'run_id': 's-1', 'runs_dir': 'runs'}  # no snapshot
    remote = home / 'remote' / 'upload'
    assert (remote / 'linked.csv').read_text() == 'linked' and not (remote / 'linked.csv').is_symlink()
    assert not (home / 'remote' / 'snapshots' / 'snapshot.npz').exists()
    # a second run mirrors the folder: a file gone here is gone there
    (data / '15m' / 'ETHUSDT.csv').unlink()
    local = _remote_run(sandbox, h, {}, 's-2', notebook='nbs/study.ipynb', upload=data)
    assert json.loads((local / 'seen.json').read_text())['files'] == ['15m/BTCUSDT.csv', 'linked.csv']
    assert sorted(p.name for p in remote.rglob('*') if p.is_file()) == ['BTCUSDT.csv', 'linked.csv']


@pytest.mark.parametrize(
    'job, message',
    [
        (dict(upload='$(touch X)'), 'upload dir'),
        (dict(upload='evil.example:/etc'), 'upload dir'),
        (dict(upload='-e touch X'), 'upload dir'),
        (dict(upload='data; touch X'), 'upload dir'),
        (dict(upload='missing-folder'), 'is not a folder here'),
        (dict(upload='nbs', params={'data_dir': '/etc'}), 'drop --param data_dir'),
        (dict(notebook='../outside.ipynb'), 'notebook'),
        (dict(notebook='nbs/$(touch X).ipynb'), 'notebook'),
        (dict(notebook='nbs/report.ipynb', snapshot='snap$(touch X).npz'), 'snapshot name'),
    ],
)
def test_hostile_upload_and_notebook_paths_are_refused_before_any_remote_command(sandbox, tmp_path, job, message):
    proj, _, runs, home, run, calls = sandbox
    h = RemoteHost('127.0.0.1', remote_dir=str(home / 'remote'), python=sys.executable)
    job = {'notebook': 'nbs/report.ipynb', 'run_id': 'r-bad', 'project_dir': proj, 'runs_dir': runs, **job}
    with pytest.raises(ConfigError, match=message):
        start_job(h, RemoteJob(**job), runner=run)
    assert calls == [] and _planted(tmp_path) == [] and not Path('X').exists()


# ---------------------------------------------------------------- the command line


def _cli_remote_run(capsys, tmp_path, *argv):
    "`cryptotft remote run` against a closed port on this machine, runs under tmp_path; (exit code, stderr)."
    config = tmp_path / 'config.yaml'
    config.write_text(f"training:\n  runs_dir: {tmp_path / 'runs'}\n")
    db = f'sqlite:///{tmp_path}/x.db'
    code = main(
        [
            '--config',
            str(config),
            '--db',
            db,
            'remote',
            'run',
            '--host',
            '127.0.0.1',
            '--port',
            str(_free_port()),
            *argv,
        ]
    )
    return code, capsys.readouterr().err


def test_cli_remote_run_of_the_study_uploads_instead_of_exporting_a_snapshot(capsys, tmp_path, monkeypatch):
    if not shutil.which('ssh'):
        pytest.skip('needs openssh-client')
    monkeypatch.chdir(ROOT)  # the project synced is the working directory
    (tmp_path / 'data').mkdir()
    code, err = _cli_remote_run(
        capsys,
        tmp_path,
        '--notebook',
        'nbs/reports/study.ipynb',
        '--upload',
        str(tmp_path / 'data'),
        '--param',
        'd_model=64',
    )
    # it got as far as ssh: no snapshot export was tried (the empty database would have failed it)
    assert code == 1 and 'ssh to root@127.0.0.1' in err and not (tmp_path / 'runs' / 'snapshots').exists(), err
    code, err = _cli_remote_run(capsys, tmp_path, '--upload', str(tmp_path / 'data'))
    assert code == 1 and 'no such table' in err, err  # the train report still exports from the database first


def test_cli_remote_run_refuses_hostile_notebook_and_upload_paths(capsys, tmp_path):
    for argv, message in (
        (['--notebook', '../../etc/passwd'], 'notebook'),
        (['--upload', '$(touch X)'], 'upload dir'),
        (['--upload', 'h:/etc'], 'upload dir'),
        (['--upload', str(tmp_path), '--param', 'data_dir=/etc'], 'drop --param data_dir'),
    ):
        code, err = _cli_remote_run(capsys, tmp_path, *argv)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and message in lines[0], (argv, err)
    assert _planted(tmp_path) == [] and not Path('X').exists()
