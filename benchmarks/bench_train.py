"""Training throughput of cryptotft's TFT on random data (fwd + bwd + optimizer step, Keras `fit`).

The peer is pytorch-forecasting's TFT on the workload of shared/specs/performance.md: 53 time-varying
inputs (49 unknown reals + 4 known time features), T 60, batch 64, one step ahead, quantile loss. Our model
gets the same 53 inputs. Given `--pf-python` (a Python with torch and pytorch-forecasting; see
benchmarks/pf_tft.py), the peer is measured in the same run, right after our model at each size, and the
ratio is against that; otherwise against the numbers recorded in the spec (59.3 samples/s at d_model 128 /
8 heads, 325.5 at d_model 32 / 4 heads), which this machine does not always reproduce. Goal: >= 4x (issue 19).
Importing cryptotft selects TensorFlow's BFC CPU allocator (cryptotft/__init__.py); TF_CPU_ALLOCATOR_USE_BFC=false
in the environment measures without it.
Run: .venv/bin/python benchmarks/bench_train.py [--seconds 20] [--pf-python /tmp/pf/bin/python --rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras
import numpy as np
import tensorflow as tf

from cryptotft.tft import TFTConfig, build_tft, prediction_loss

PF_SAMPLES_PER_S = {128: 59.3, 32: 325.5}  # recorded: pytorch-forecasting 1.8.0, torch 2.13 CPU, batch 64 (the spec)
N_INPUTS = 53  # the peer's time-varying inputs: 49 unknown reals + 4 known time features
# train steps per compiled call (measured): 4 amortises Keras's per-step overhead at d_model 32 (+16%), but
# at d_model 128 any value > 1 loses ~15% wall-clock (same CPU time, idle cores), so 1 there
STEPS_PER_EXECUTION = {128: 1, 32: 4}
SIZES = {'default': dict(d_model=128, num_heads=8), 'small': dict(d_model=32, num_heads=4)}


def cpu_allocator():
    "'BFC' if TensorFlow's CPU allocator is the BFC one (importing cryptotft selects it; it alone keeps stats), else 'default'."
    try:
        tf.config.experimental.get_memory_info('CPU:0')
        return 'BFC'
    except ValueError:
        return 'default'


def random_dataset(tcfg, batch_size, n_batches=8, seed=0):
    "A repeating tf.data pipeline of random in-memory batches (kept out of the measurement's way)."
    rng = np.random.default_rng(seed)
    n = batch_size * n_batches
    x = {
        'features': rng.normal(size=(n, tcfg.sequence_length, tcfg.n_features)).astype('float32'),
        'symbol': rng.integers(0, tcfg.n_symbols, n).astype('int32'),
    }
    y = rng.normal(scale=0.02, size=(n, tcfg.n_targets)).astype('float32')
    return (
        tf.data.Dataset.from_tensor_slices((x, {'prediction': y}))
        .batch(batch_size, drop_remainder=True)
        .cache()
        .repeat()
    )


def compiled_model(tcfg, policy='float32', jit_compile=True, steps_per_execution=1):
    "A TFT compiled for training under the Keras dtype `policy`, `steps_per_execution` train steps per call."
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_tft(tcfg)
    finally:
        keras.mixed_precision.set_global_policy('float32')
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={'prediction': prediction_loss(tcfg)},
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


class _CallClock(keras.callbacks.Callback):
    "Wall and CPU clock at the end of every compiled train call (steps_per_execution steps)."

    def __init__(self):
        super().__init__()
        self.wall, self.cpu = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())


def train_samples_per_s(model, data, batch_size, seconds=20.0, warmup_steps=3):
    """Steady-state (wall, cpu) training samples/s of `fit`, timed between its compiled calls.

    A warm-up fit traces and compiles first. The timed window runs from the end of the first compiled call of
    a long fit to the end of its last, so it leaves out what a fit costs once, however long it trains (making
    and tearing down its iterator: about 1 s on this machine, paid once per `fit`, i.e. once per training run).
    Beside wall-clock samples/s we report samples per CPU-second times the core count: what the run would
    reach with the cores to itself (an upper estimate, robust to a busy neighbour)."""
    k = model.steps_per_execution  # whole compiled calls only: every fit below runs multiples of k steps
    model.fit(data, steps_per_epoch=k * warmup_steps, epochs=1, verbose=0)
    clock = _CallClock()
    model.fit(data, steps_per_epoch=4 * k, epochs=1, verbose=0, callbacks=[clock])
    per_call = (clock.wall[-1] - clock.wall[0]) / 3
    clock = _CallClock()
    model.fit(data, steps_per_epoch=k * max(3, int(seconds / per_call) + 1), epochs=1, verbose=0, callbacks=[clock])
    samples = (len(clock.wall) - 1) * k * batch_size
    return samples / (clock.wall[-1] - clock.wall[0]), samples * os.cpu_count() / (clock.cpu[-1] - clock.cpu[0])


def pf_samples_per_s(python, d_model, num_heads, seconds):
    "pytorch-forecasting's TFT samples/s measured now by benchmarks/pf_tft.py under `python` (None: not measured)."
    if not python:
        return None
    cmd = [
        python,
        str(Path(__file__).with_name('pf_tft.py')),
        '--d-model',
        str(d_model),
        '--heads',
        str(num_heads),
        '--seconds',
        str(seconds),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f'pf_tft.py failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])['samples_per_s']


def bench_train(
    seconds=20.0,
    batch_size=64,
    n_features=N_INPUTS,
    n_symbols=8,
    sizes=('default', 'small'),
    policies=('float32',),
    jit_compile=True,
    steps_per_execution=None,
    pf_python=None,
    rounds=1,
):
    """Print parameters and training samples/s per size and dtype policy, with the ratio to pytorch-forecasting.

    With `pf_python`, each of `rounds` rounds measures our model(s) and then the peer, so that both see the
    machine in the same state; the summary line gives the median ratio over the rounds."""
    rows = []
    for size in sizes:
        tcfg = TFTConfig(n_features=n_features, n_symbols=n_symbols, **SIZES[size])
        data = random_dataset(tcfg, batch_size)
        models = {
            policy: compiled_model(tcfg, policy, jit_compile, steps_per_execution or STEPS_PER_EXECUTION[tcfg.d_model])
            for policy in policies
        }
        for r in range(rounds):
            for policy, model in models.items():
                wall, cpu = train_samples_per_s(model, data, batch_size, seconds)
                rows.append(
                    dict(
                        size=size,
                        d_model=tcfg.d_model,
                        params=model.count_params(),
                        policy=policy,
                        round=r,
                        wall=wall,
                        cpu=cpu,
                        load=os.getloadavg()[0],
                    )
                )
                print(
                    f'{size:8s} d_model {tcfg.d_model:3d}  params {model.count_params():>9,d}  {policy:15s} '
                    f'spe {model.steps_per_execution}  wall {wall:7.1f} samples/s  cpu-time est. {cpu:7.1f}  '
                    f'load {os.getloadavg()[0]:.1f}',
                    flush=True,
                )
            live = pf_samples_per_s(pf_python, tcfg.d_model, tcfg.num_heads, seconds)
            pf, label = (live, 'measured now') if live else (PF_SAMPLES_PER_S[tcfg.d_model], 'recorded in the spec')
            mine = [x for x in rows if x['size'] == size and x['round'] == r]
            for x in mine:
                x.update(pf=pf, pf_source=label, ratio=x['wall'] / pf)
            print(
                f'{size:8s} pytorch-forecasting TFT {pf:7.1f} samples/s ({label}); ours / theirs: '
                + ', '.join(f"{x['policy']} {x['ratio']:.2f}x" for x in mine),
                flush=True,
            )
        for policy in policies:
            mine = [x for x in rows if x['size'] == size and x['policy'] == policy]
            print(
                f'{size:8s} {policy}: median over {len(mine)} round(s): ours {np.median([x["wall"] for x in mine]):.1f} '
                f'samples/s, pytorch-forecasting {np.median([x["pf"] for x in mine]):.1f}, '
                f'ratio {np.median([x["ratio"] for x in mine]):.2f}x (goal 4x)',
                flush=True,
            )
    return rows


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=20.0, help='length of each measurement')
    ap.add_argument('--sizes', nargs='+', default=['default', 'small'], choices=list(SIZES))
    ap.add_argument(
        '--policies', nargs='+', default=['float32'], help='Keras dtype policies, e.g. float32 mixed_bfloat16'
    )
    ap.add_argument(
        '--steps-per-execution',
        type=int,
        default=None,
        help=f'Keras compile steps_per_execution (default by d_model: {STEPS_PER_EXECUTION})',
    )
    ap.add_argument('--jit', default='true', help="Keras jit_compile: true (XLA) | false | auto")
    ap.add_argument(
        '--pf-python', default=None, help='a Python with torch + pytorch-forecasting: measure the peer in this run'
    )
    ap.add_argument(
        '--rounds', type=int, default=1, help='alternate our measurement and the peer this many times per size'
    )
    args = ap.parse_args()
    jit = {'true': True, 'false': False}.get(args.jit.lower(), 'auto')
    print(
        f'keras {keras.__version__} backend {keras.backend.backend()}, tensorflow {tf.__version__}, '
        f'{os.cpu_count()} CPUs, batch 64, T 60, {N_INPUTS} inputs, jit_compile={jit}, steps_per_execution={args.steps_per_execution or STEPS_PER_EXECUTION}, '
        f'CPU allocator {cpu_allocator()} (TF_CPU_ALLOCATOR_USE_BFC=false for the default)'
    )
    bench_train(
        args.seconds,
        sizes=args.sizes,
        policies=args.policies,
        jit_compile=jit,
        steps_per_execution=args.steps_per_execution,
        pf_python=args.pf_python,
        rounds=args.rounds,
    )


# --- dataset memory and batch-gather throughput (cryptotft.dataset / cryptotft.train) -------------------
# Run: .venv/bin/python -c "import sys; sys.path.insert(0, 'benchmarks'); import bench_train; bench_train.bench_dataset()"
PF_INDEX_MB_PER_M_ROWS, PF_PANEL_MB_PER_M_ROWS = 290.0, 220.0  # pytorch-forecasting 1.8.0 (shared/specs/performance.md)


def real_processed_frame(
    data_dir='../shared/data/binance_usdm_15m',
    funding_dir='../shared/data/binance_usdm_funding',
    horizon=100,
    symbols=None,
):
    "Real 15m candles (all, or `symbols`) -> indicators -> scale-free model features + labels, as one frame."
    from pathlib import Path
    import pandas as pd
    from cryptotft.indicators import compute_indicators, model_features
    from cryptotft.labels import expected_returns, labels_for_storage

    frames = []
    for f in sorted(Path(data_dir).glob('*.parquet')):
        if symbols is not None and f.stem not in symbols:
            continue
        c = pd.read_parquet(f)
        c['timestamp'] = (
            pd.to_datetime(c['timestamp'], unit='ms', utc=True)
            if c['timestamp'].dtype.kind in 'iu'
            else pd.to_datetime(c['timestamp'], utc=True)
        )
        c = c.sort_values('timestamp').reset_index(drop=True).assign(turnover=np.nan)
        fund = Path(funding_dir) / f.name
        fund = pd.read_parquet(fund) if fund.exists() else None
        if fund is not None and fund['timestamp'].dtype.kind in 'iu':
            fund['timestamp'] = pd.to_datetime(fund['timestamp'], unit='ms', utc=True)
        ind = compute_indicators(c)
        feats = model_features(pd.concat([c, ind], axis=1))
        lab = labels_for_storage(expected_returns(c, horizon=horizon, funding=fund))[
            ['buy_return', 'sell_return', 'buy_profit', 'sell_profit']
        ]
        frames.append(pd.concat([c[['timestamp']].assign(symbol=f.stem, warmup=ind['warmup']), feats, lab], axis=1))
    return pd.concat(frames, ignore_index=True)


def _rss_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) / 1024


def bench_dataset(seconds=10.0, batch_size=256):
    "Print the dataset's memory for all real 15m data vs pytorch-forecasting, and batch-gather throughput."
    import gc
    from cryptotft.config import Config
    from cryptotft.dataset import dataset_from_frame, get_batch
    from cryptotft.train import window_pipeline

    t0 = time.perf_counter()
    df = real_processed_frame()
    t_frame = time.perf_counter() - t0
    gc.collect()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    ds = dataset_from_frame(df, Config())
    t_index = time.perf_counter() - t0
    del df
    gc.collect()
    n, f = ds.features.shape
    mb = ds.nbytes / 1e6
    idx_mb = sum(v.nbytes for v in ds.splits.values()) / 1e6
    print(
        f'real data: {n:,} rows x {f} features, {len(ds.symbols)} symbols; windows '
        + ', '.join(f'{k} {len(v):,}' for k, v in ds.splits.items())
    )
    print(
        f'frame (indicators + labels) {t_frame:.1f} s, dataset_from_frame {t_index:.1f} s; '
        f'process RSS {rss0:.0f} MB with frame -> {_rss_mb():.0f} MB after dropping it'
    )
    print(
        f'dataset arrays {mb:,.0f} MB = {mb / n * 1e6:,.0f} MB per 1M rows (of which window index {idx_mb:,.0f} MB = '
        f'{idx_mb / n * 1e6:,.0f} MB per 1M rows); pytorch-forecasting: {PF_INDEX_MB_PER_M_ROWS:.0f} MB index + '
        f'{PF_PANEL_MB_PER_M_ROWS:.0f} MB panel per 1M rows -> {(PF_INDEX_MB_PER_M_ROWS + PF_PANEL_MB_PER_M_ROWS) / (mb / n * 1e6):.1f}x ours'
    )
    ends = ds.ends('train')
    rng = np.random.default_rng(0)
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        get_batch(ds, rng.choice(ends, batch_size), 'regression')
        k += 1
    np_sps = k * batch_size / (time.perf_counter() - t0)
    data = iter(window_pipeline(ds, ends, 'regression', batch_size, shuffle=True).repeat())
    next(data)
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        next(data)
        k += 1
    tf_sps = k * batch_size / (time.perf_counter() - t0)
    print(
        f'batch gather (B {batch_size}, T {ds.sequence_length}, F {f}): numpy get_batch {np_sps:,.0f} windows/s, '
        f'tf.data window_pipeline {tf_sps:,.0f} windows/s ({tf_sps / PF_SAMPLES_PER_S[128]:,.0f}x the samples/s that '
        f'the TFT of pytorch-forecasting trains at d_model 128: the input pipeline stays out of the way)'
    )
    return dict(rows=n, features=f, mb=mb, np_windows_per_s=np_sps, tf_windows_per_s=tf_sps)
