"""Training throughput of cryptotft's TFT on random data (fwd + bwd + optimizer step, Keras `fit`).

Compares with pytorch-forecasting's TFT measured on the same kind of machine
(shared/specs/performance.md): 59.3 samples/s at d_model 128 / 8 heads, 325.5 at d_model 32 / 4 heads,
T 60, 49 reals, batch 64. Goal: >= 3x. Run: .venv/bin/python benchmarks/bench_train.py [--seconds 20]
"""
import argparse
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras
import numpy as np
import tensorflow as tf

from cryptotft.tft import TFTConfig, build_tft, prediction_loss

PF_SAMPLES_PER_S = {128: 59.3, 32: 325.5}  # pytorch-forecasting 1.8.0, torch 2.13 CPU, batch 64
SIZES = {'default': dict(d_model=128, num_heads=8), 'small': dict(d_model=32, num_heads=4)}


def random_dataset(tcfg, batch_size, n_batches=8, seed=0):
    "A repeating tf.data pipeline of random in-memory batches (kept out of the measurement's way)."
    rng = np.random.default_rng(seed)
    n = batch_size * n_batches
    x = {'features': rng.normal(size=(n, tcfg.sequence_length, tcfg.n_features)).astype('float32'),
         'symbol': rng.integers(0, tcfg.n_symbols, n).astype('int32')}
    y = rng.normal(scale=0.02, size=(n, tcfg.n_targets)).astype('float32')
    return tf.data.Dataset.from_tensor_slices((x, {'prediction': y})).batch(batch_size, drop_remainder=True).cache().repeat()


def compiled_model(tcfg, policy='float32', jit_compile='auto'):
    "A TFT compiled for training under the Keras dtype `policy`."
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_tft(tcfg)
    finally:
        keras.mixed_precision.set_global_policy('float32')
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss={'prediction': prediction_loss(tcfg)},
                  jit_compile=jit_compile)
    return model


def train_samples_per_s(model, data, batch_size, seconds=20.0, warmup_steps=3):
    "Samples/s of `fit` over about `seconds` after a warm-up fit that traces and compiles."
    model.fit(data, steps_per_epoch=warmup_steps, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    per_step = (time.perf_counter() - t0) / 2
    steps = max(2, int(seconds / per_step))
    t0 = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - t0)


def bench_train(seconds=20.0, batch_size=64, n_features=49, n_symbols=8, sizes=('default', 'small'),
                policies=('float32', 'mixed_bfloat16'), jit_compile='auto'):
    "Print parameters and training samples/s per size and dtype policy, with the ratio to pytorch-forecasting."
    rows = []
    for size in sizes:
        tcfg = TFTConfig(n_features=n_features, n_symbols=n_symbols, **SIZES[size])
        data = random_dataset(tcfg, batch_size)
        for policy in policies:
            model = compiled_model(tcfg, policy, jit_compile)
            sps = train_samples_per_s(model, data, batch_size, seconds)
            pf = PF_SAMPLES_PER_S[tcfg.d_model]
            rows.append((size, tcfg.d_model, model.count_params(), policy, sps, sps / pf))
            print(f'{size:8s} d_model {tcfg.d_model:3d}  params {model.count_params():>9,d}  {policy:15s} '
                  f'{sps:8.1f} samples/s  = {sps / pf:4.1f}x pytorch-forecasting ({pf})', flush=True)
    return rows


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=20.0, help='length of each measurement')
    ap.add_argument('--sizes', nargs='+', default=['default', 'small'], choices=list(SIZES))
    ap.add_argument('--policies', nargs='+', default=['float32', 'mixed_bfloat16'])
    ap.add_argument('--jit', default='auto', help="Keras jit_compile: auto | true | false")
    args = ap.parse_args()
    jit = {'true': True, 'false': False}.get(args.jit.lower(), 'auto')
    print(f'keras {keras.__version__} backend {keras.backend.backend()}, tensorflow {tf.__version__}, '
          f'{os.cpu_count()} CPUs, batch 64, T 60, 49 features, jit_compile={jit}')
    bench_train(args.seconds, sizes=args.sizes, policies=args.policies, jit_compile=jit)
