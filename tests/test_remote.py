"""The remote flow end to end against a real OpenSSH server on loopback.

The "remote machine" is this machine: the test starts its own sshd (generated host key, generated
client key, 127.0.0.1 only, a free port), the remote directory is a tmp folder, and the remote python
is this venv's interpreter (so no `pip install` runs). Needs Debian's openssh-server, openssh-client
and rsync; skipped with the reason when they are missing.
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
from cryptotft.remote import RemoteError, RemoteHost, fetch_run, remote_status, run_remote, start_job

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


def test_run_remote_syncs_code_executes_notebook_and_fetches_run_folder(host, snapshot, tmp_path):
    runs, lines = tmp_path / 'runs', []
    local = run_remote(
        host,
        snapshot,
        {'epochs': 3},
        run_id='t-ok',
        project_dir=ROOT,
        notebook=NOTEBOOK,
        runs_dir=runs,
        install=False,
        launcher='nohup',
        poll_s=0.3,
        out=lines.append,
    )
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
    assert json.loads((local / 'remote.json').read_text())['host']['port'] == host.port


def test_detached_job_can_be_reattached_with_status_and_fetch(host, snapshot, tmp_path):
    runs = tmp_path / 'runs'
    launcher = 'tmux' if shutil.which('tmux') else 'nohup'
    run_id = start_job(
        host,
        snapshot,
        {'epochs': 2, 'sleep_s': 4.0},
        run_id='t-detached',
        project_dir=ROOT,
        notebook=NOTEBOOK,
        runs_dir=runs,
        install=False,
        launcher=launcher,
        out=lambda s: None,
    )
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
        run_remote(
            host,
            snapshot,
            {'fail': True},
            run_id='t-fail',
            project_dir=ROOT,
            notebook=NOTEBOOK,
            runs_dir=runs,
            install=False,
            launcher='nohup',
            poll_s=0.3,
            out=lambda s: None,
        )
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
        run_remote(
            h,
            snapshot,
            {},
            run_id=f't-install-{i}',
            project_dir=ROOT,
            notebook=NOTEBOOK,
            runs_dir=tmp_path / 'runs',
            install=True,
            launcher='nohup',
            poll_s=0.3,
            out=lambda s: None,
        )
    assert (tmp_path / 'pip.log').read_text().splitlines() == ['-m pip install -q -e .[gpu]']


def test_unreachable_host_says_which_host(tmp_path, snapshot):
    h = RemoteHost('127.0.0.1', _free_port(), known_hosts=str(tmp_path / 'kh'))
    with pytest.raises(RemoteError, match=r'ssh to root@127.0.0.1'):
        start_job(h, snapshot, project_dir=ROOT, notebook=NOTEBOOK, runs_dir=tmp_path / 'runs', out=lambda s: None)
