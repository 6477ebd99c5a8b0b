"""The console a user sees: native noise on file descriptor 2 is dropped (from this process and its children),
everything else passes unchanged, in order and promptly; `cryptotft -v` lets everything through."""

import os
import select
import subprocess
import sys
import textwrap
import time
import nbformat
import pytest

ABSL = 'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR'
ONEDNN = 'I0000 00:00:1796141794.886087   16886 port.cc:153] oneDNN custom operations are on. You may see ...'
AVX = (
    'To enable the following instructions: AVX2 AVX512F FMA, in other operations, '
    'rebuild TensorFlow with the appropriate compiler flags.'
)
TCP = '[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...'

WRITER = textwrap.dedent(
    f"""
    import logging
    import os
    import subprocess
    import sys
    from cryptotft.console import quiet_stderr

    child = "import os; os.write(2, b'{ONEDNN}\\\\n' + b'3 from a child process\\\\n' + b'{TCP}\\\\n')"
    with quiet_stderr(enabled=sys.argv[1] == 'on'):
        os.write(2, b'{ABSL}\\n1 written by C++\\n{ONEDNN}\\n')
        print('2 a log record', file=sys.stderr, flush=True)
        subprocess.run([sys.executable, '-c', child], check=True)
        os.write(2, b'{AVX}\\n')
        logging.getLogger('cryptotft.test').warning('4 a warning through logging')
    print('5 after the block', file=sys.stderr)
    """
)


def stderr_lines(*argv, script=WRITER) -> list[str]:
    r = subprocess.run([sys.executable, '-c', script, *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stderr.splitlines()


def test_only_real_lines_reach_stderr_in_order_from_this_process_and_a_child():
    assert stderr_lines('on') == [
        '1 written by C++',
        '2 a log record',
        '3 from a child process',
        '4 a warning through logging',
        '5 after the block',
    ]


def test_disabled_filter_passes_every_line():
    lines = stderr_lines('off')
    assert lines == [
        ABSL,
        '1 written by C++',
        ONEDNN,
        '2 a log record',
        ONEDNN,
        '3 from a child process',
        TCP,
        AVX,
        '4 a warning through logging',
        '5 after the block',
    ]


PROGRESS = textwrap.dedent(
    """
    import os
    import time
    from cryptotft.console import quiet_stderr

    with quiet_stderr():
        os.write(2, b'\\rprogress  50%')
        time.sleep(2)
        os.write(2, b'\\rprogress 100%\\n')
    """
)


def test_an_unfinished_progress_line_is_passed_on_at_once():
    proc = subprocess.Popen([sys.executable, '-c', PROGRESS], stderr=subprocess.PIPE)
    seen, first = b'', None
    while True:
        select.select([proc.stderr], [], [], 5)
        chunk = os.read(proc.stderr.fileno(), 1024)
        if not chunk:
            break
        seen += chunk
        if first is None and b'progress  50%' in seen:
            first = time.monotonic()
    end = time.monotonic()
    assert proc.wait(timeout=60) == 0
    assert seen == b'\rprogress  50%\rprogress 100%\n'
    assert first is not None and end - first > 1.0, 'the unfinished line waited for its newline'


def _cli(*args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ('TF_CPP_MIN_LOG_LEVEL', 'CRYPTOTFT_DB_URL')}
    argv = [sys.executable, '-m', 'cryptotft', *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_tensorflow_start_up_lines_are_dropped_and_v_brings_them_back(tmp_path):
    "`train` imports TensorFlow before it finds the snapshot missing: the quiet console is the one error line."
    quiet = _cli('train', '--dataset', 'missing.npz', cwd=tmp_path)
    assert quiet.returncode == 1 and quiet.stderr.count('\n') == 1 and quiet.stderr.startswith('error: '), quiet.stderr
    loud = _cli('-v', 'train', '--dataset', 'missing.npz', cwd=tmp_path)
    assert loud.returncode == 1 and 'absl::InitializeLog()' in loud.stderr, loud.stderr
    assert loud.stderr.rstrip().splitlines()[-1] == quiet.stderr.strip()


def test_report_kernel_writes_through_the_same_filter(tmp_path):
    "The report's kernel inherits file descriptor 2: its transport warning is dropped, and comes back with -v."
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_id = None\nruns_dir = None\nconfig_path = None')
    params.metadata['tags'] = ['parameters']
    nb.cells = [params, nbformat.v4.new_code_cell("print('ran')")]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nbformat.write(nb, tmp_path / 'tiny.ipynb')
    db = f'sqlite:///{tmp_path}/x.db'
    quiet = _cli('--db', db, 'report', '--notebook', 'tiny.ipynb', '--param', 'run_id=r1', cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == '', quiet.stderr
    assert quiet.stdout == f"report: {tmp_path / 'runs' / 'r1' / 'tiny.ipynb'}\n"
    loud = _cli('-v', '--db', db, 'report', '--notebook', 'tiny.ipynb', '--param', 'run_id=r2', cwd=tmp_path)
    assert loud.returncode == 0
    if 'Kernel is running over TCP' not in loud.stderr:
        pytest.skip('this ipykernel does not warn about TCP transport: nothing to filter')
