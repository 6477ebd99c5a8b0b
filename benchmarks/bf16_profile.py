"""Why mixed bf16 does not speed up the TFT on this CPU, and whether it ever could: a profile.

The CPU has AVX512_BF16 and AMX, and one batched einsum ('btvd,vde->btve', the variable selection's shape)
runs ~1.8x faster in bf16 than in fp32 (shared/specs/performance.md). The whole model under XLA does not.
This script measures, in one process and per size:

1. the isolated einsum, forward + backward, fp32 and bf16 (the spec's claim, re-measured now);
2. one compiled training step of the whole TFT (forward, backward, AdamW), fp32 and mixed_bfloat16;
   each with XLA (what training uses) and without it (TensorFlow's own kernels, which call oneDNN);
3. what XLA made of that step: the count of `convert` ops (casts between bf16 and fp32), of `dot`
   ops by operand type, and of oneDNN custom calls, read from the optimized HLO;
4. the training loss after a fixed number of steps on the same data and seed in both precisions
   (parity: bf16 must learn like fp32 before it may be chosen).

Run: .venv/bin/python benchmarks/bf16_profile.py [--sizes 32 128] [--steps 40] [--seconds 8]
"""

import argparse
import os
import re
import time
from collections import Counter

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras
import numpy as np
import tensorflow as tf

from cryptotft.tft import TFTConfig, build_tft, prediction_loss

BATCH = 64
N_INPUTS = 53
HEADS = {32: 4, 64: 4, 128: 8}


def cpu_flags() -> set:
    "The CPU feature flags of /proc/cpuinfo (empty where it cannot be read)."
    try:
        with open('/proc/cpuinfo') as f:
            line = next(x for x in f if x.startswith('flags'))
    except (OSError, StopIteration):
        return set()
    return set(line.split(':', 1)[1].split())


def time_call(fn, seconds: float) -> float:
    "Seconds per call of `fn` in steady state (after two warm-up calls), over about `seconds`."
    fn()
    fn()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def einsum_gflops(d_model: int, dtype: str, seconds: float, jit: bool = True) -> float:
    "Forward + backward GFLOP/s of the variable-selection einsum 'btvd,vde->btve' in `dtype`, with or without XLA."
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, 60, N_INPUTS, d_model)), dtype)
    w = tf.Variable(tf.constant(rng.normal(size=(N_INPUTS, d_model, d_model)) / d_model**0.5, dtype))

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.einsum('btvd,vde->btve', x, w)
            loss = tf.reduce_sum(tf.cast(y, 'float32'))
        gx, gw = tape.gradient(loss, [x, w])
        return gx[0, 0, 0, 0] + tf.cast(gw[0, 0, 0], gx.dtype)

    per_call = time_call(lambda: step().numpy(), seconds)
    flops = 3 * 2 * BATCH * 60 * N_INPUTS * d_model * d_model  # forward, grad x, grad w
    return flops / per_call / 1e9


def train_step_fn(model, tcfg, jit: bool = True):
    "A training step (forward, loss, backward, optimizer) of `model` as a tf.function, under XLA or not."
    loss_fn = prediction_loss(tcfg)
    optimizer = keras.optimizers.AdamW(1e-3, weight_decay=1e-4, clipnorm=1.0)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = loss_fn(y, out['prediction'])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def model_for(d_model: int, policy: str):
    "A TFT of the benchmark's workload under the Keras dtype `policy` (same seed: same initial weights)."
    tcfg = TFTConfig(n_features=N_INPUTS, n_symbols=8, d_model=d_model, num_heads=HEADS[d_model])
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_tft(tcfg)
    finally:
        keras.mixed_precision.set_global_policy('float32')
    return model, tcfg


def hlo_census(step, x, y) -> dict:
    "Counts of casts, dots by operand type and oneDNN calls in the optimized HLO of one training step."
    hlo = step.experimental_get_compiler_ir(x, y)(stage='optimized_hlo')
    ops = Counter()
    for line in hlo.splitlines():
        m = re.search(r'=\s+(\w+)\[[^\]]*\][^ ]*\s+(\w[\w-]*)\(', line)
        if not m:
            continue
        out_type, op = m.group(1), m.group(2)
        if op == 'convert':
            ops['convert'] += 1
        elif op == 'dot':
            ops[f'dot {out_type}'] += 1
        elif op == 'custom-call':
            ops['custom-call ' + (re.search(r'custom_call_target="([^"]+)"', line) or [None, '?'])[1]] += 1
        elif op in ('fusion', 'while', 'reduce', 'transpose'):
            ops[op] += 1
    return dict(ops)


def batches(tcfg, n: int, seed: int = 1):
    "`n` fixed random batches with a planted signal (the loss can fall), the same for every precision."
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feats = rng.normal(size=(BATCH, tcfg.sequence_length, N_INPUTS)).astype('float32')
        y = np.stack([feats[:, -1, 0] - 0.5 * feats[:, -2, 1], -feats[:, -1, 0]], axis=1).astype('float32')
        x = {'features': tf.constant(feats), 'symbol': tf.constant(rng.integers(0, 8, BATCH).astype('int32'))}
        out.append((x, tf.constant(y)))
    return out


def profile(d_model: int, steps: int, seconds: float) -> list[dict]:
    "Einsum and whole-step speed, HLO census and loss after `steps` steps, fp32 against mixed_bfloat16."
    rows = []
    for policy, dtype in (('float32', 'float32'), ('mixed_bfloat16', 'bfloat16')):
        model, tcfg = model_for(d_model, policy)
        data = batches(tcfg, steps)
        step = train_step_fn(model, tcfg)
        census = hlo_census(step, *data[0])
        losses = [float(step(*b)) for b in data]  # the first call compiles
        per_step = time_call(lambda: step(*data[0]).numpy(), seconds)
        graph_model, _ = model_for(d_model, policy)
        graph_step = train_step_fn(graph_model, tcfg, jit=False)  # TensorFlow's own kernels: oneDNN
        per_graph_step = time_call(lambda: graph_step(*data[0]).numpy(), seconds)
        rows.append(
            dict(
                d_model=d_model,
                policy=policy,
                einsum_gflops=einsum_gflops(d_model, dtype, seconds / 2),
                einsum_gflops_graph=einsum_gflops(d_model, dtype, seconds / 2, jit=False),
                samples_per_s=BATCH / per_step,
                samples_per_s_graph=BATCH / per_graph_step,
                loss_first=losses[0],
                loss_last=float(np.mean(losses[-5:])),
                **census,
            )
        )
    return rows


def report(rows: list[dict]):
    "Print the per-size comparison and the decision it supports."
    for d in sorted({r['d_model'] for r in rows}):
        fp, bf = [r for r in rows if r['d_model'] == d]
        print(f'\nd_model {d}, batch {BATCH}, T 60, {N_INPUTS} inputs')
        print(f"{'':28s}{'float32':>14s}{'mixed_bfloat16':>16s}{'bf16 / fp32':>13s}")
        lines = (
            ('einsum_gflops', 'einsum GFLOP/s, XLA'),
            ('einsum_gflops_graph', 'einsum GFLOP/s, no XLA'),
            ('samples_per_s', 'train step samples/s, XLA'),
            ('samples_per_s_graph', 'train step samples/s, no XLA'),
        )
        for key, label in lines:
            print(f'{label:28s}{fp[key]:14.1f}{bf[key]:16.1f}{bf[key] / fp[key]:12.2f}x')
        print(f"{'loss, first step':28s}{fp['loss_first']:14.4f}{bf['loss_first']:16.4f}")
        print(f"{'loss, mean of last 5 steps':28s}{fp['loss_last']:14.4f}{bf['loss_last']:16.4f}")
        keys = sorted(k for k in set(fp) | set(bf) if k.startswith(('convert', 'dot', 'custom-call', 'fusion')))
        for k in keys:
            print(f'{"HLO " + k:28s}{fp.get(k, 0):14d}{bf.get(k, 0):16d}')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', nargs='+', type=int, default=[32, 128], choices=sorted(HEADS))
    ap.add_argument('--steps', type=int, default=40, help='training steps for the loss-parity check')
    ap.add_argument('--seconds', type=float, default=8.0, help='length of each timing')
    args = ap.parse_args()
    flags = cpu_flags()
    print(
        f'tensorflow {tf.__version__}, keras {keras.__version__}, {os.cpu_count()} CPUs; '
        f"avx512_bf16 {'avx512_bf16' in flags}, amx_bf16 {'amx_bf16' in flags}"
    )
    rows = []
    for d in args.sizes:
        rows += profile(d, args.steps, args.seconds)
    report(rows)
