"""`cryptotft train` against its own model: the real trainer on a real dataset, samples/s, one process.

The trainer's speed is the model's speed minus what the input pipeline (window gather from the index,
the in-model scaler), the callbacks and the epoch structure cost. This script measures both sides on
the same model, in one process, one after the other:

1. the model alone: the TFT that `train` builds (`build_model`, `_compile`: same optimizer, loss,
   XLA and steps per execution), fit on random batches that live in memory (bench_train's method:
   wall clock between compiled calls, once compiled);
2. `cryptotft.train.train` itself on a dataset made from real 15m candles in ../shared/data (indicators,
   labels, splits, scaler as `prepare` makes them), with a clock on its training batches: the same
   steady-state window inside every epoch (first compiled call of an epoch left out: it includes the
   shuffle buffer's refill), validation passes excluded.

The ratio trainer / model is the share of the model's speed that a user gets; the goal is >= 0.95.
Run: .venv/bin/python benchmarks/bench_trainer.py [--symbols 4] [--d-model 32] [--batch 256] [--epochs 3]
"""

import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import real_processed_frame, train_samples_per_s  # noqa: E402

import cryptotft.train as trainer  # noqa: E402
from cryptotft.config import Config, with_overrides  # noqa: E402
from cryptotft.dataset import dataset_from_frame  # noqa: E402
from cryptotft.tft import TFTConfig  # noqa: E402
from _options import run_with_options  # noqa: E402

MAJORS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'XRPUSDT', 'DOGEUSDT', 'ADAUSDT', 'TRXUSDT']


class BatchClock(keras.callbacks.Callback):
    "Wall clock at the end of every compiled train call, per epoch (validation is not a train batch)."

    def __init__(self):
        super().__init__()
        self.epochs = []
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append([])
        self.epoch_seconds.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds[-1] = time.perf_counter() - self.epoch_seconds[-1]  # training, validation, callbacks

    def on_train_batch_end(self, batch, logs=None):
        self.epochs[-1].append((time.perf_counter(), time.process_time()))

    def samples_per_s(self, samples_per_call: int) -> tuple[float, float]:
        "Steady-state (wall, cpu-time est.) samples/s over all epochs: each from the end of its first call to its last."
        full = [e for e in self.epochs if len(e) > 1]
        calls = sum(len(e) - 1 for e in full)
        wall = sum(e[-1][0] - e[0][0] for e in full)
        cpu = sum(e[-1][1] - e[0][1] for e in full)
        samples = calls * samples_per_call
        return samples / wall, samples * os.cpu_count() / cpu


def real_dataset(cfg: Config, symbols: list[str], start: str):
    "A Dataset of the real candles of `symbols` from `start` on, indexed for `cfg`."
    df = real_processed_frame(symbols=symbols)
    df = df[df['timestamp'] >= start].reset_index(drop=True)
    return dataset_from_frame(df, cfg)


def model_alone(cfg: Config, ds, seconds: float) -> tuple[float, float]:
    "(wall, cpu-time est.) samples/s of the model `train` builds, fit on random in-memory batches."
    bs = cfg.model.batch_size
    tcfg = TFTConfig.from_config(cfg, ds.features.shape[1], len(ds.symbols), 'regression')
    model = trainer.build_model(tcfg, ds.scaler)
    trainer._compile(model, tcfg, cfg, math.ceil(len(ds.ends('train')) / bs))  # XLA or not, as train decides
    rng = np.random.default_rng(0)
    n = 8 * bs
    x = {
        'features': rng.normal(size=(n, tcfg.sequence_length, tcfg.n_features)).astype('float32'),
        'symbol': rng.integers(0, tcfg.n_symbols, n).astype('int32'),
    }
    y = rng.normal(size=(n, tcfg.n_targets)).astype('float32')
    data = tf.data.Dataset.from_tensor_slices((x, {'prediction': y})).batch(bs, drop_remainder=True).cache().repeat()
    return train_samples_per_s(model, data, bs, seconds)


def trainer_run(cfg: Config, ds, runs_dir: Path) -> tuple[tuple[float, float], int, list[float]]:
    "(wall, cpu-time est.) samples/s of `cryptotft.train.train` on `ds`, its train windows, its epochs' seconds."
    clock = BatchClock()
    own = trainer._callbacks

    def with_clock(*args, **kwargs):
        return own(*args, **kwargs) + [clock]

    trainer._callbacks = with_clock
    try:
        trainer.train(cfg, ds, task='regression', runs_dir=runs_dir, progress=False, live_plots=False)
    finally:
        trainer._callbacks = own
    samples_per_call = trainer.steps_per_execution(cfg) * cfg.model.batch_size
    return clock.samples_per_s(samples_per_call), len(ds.ends('train')), clock.epoch_seconds


def main(symbols=4, d_model=32, heads=4, batch=256, epochs=4, stride=4, start='2024-01-01', seconds=20.0):
    "Build the real dataset, then measure the model alone, the trainer, the model alone again; print the ratios."
    cfg = with_overrides(
        Config(),
        model={'d_model': d_model, 'num_heads': heads, 'batch_size': batch, 'epochs': epochs},
        training={'window_stride': stride, 'early_stopping_patience': epochs, 'plot_every': 10_000},
    )
    t0 = time.perf_counter()
    ds = real_dataset(cfg, MAJORS[:symbols], start)
    print(
        f'real data: {symbols} symbols from {start}, {ds.features.shape[0]:,} rows x {ds.features.shape[1]} '
        f'features; train windows {len(ds.ends("train")):,} (stride {stride}); built in {time.perf_counter() - t0:.0f} s'
    )
    steps = math.ceil(len(ds.ends('train')) / batch) * epochs
    print(
        f'tensorflow {tf.__version__}, {os.cpu_count()} CPUs; d_model {d_model}, {heads} heads, batch {batch}, '
        f'T {cfg.model.sequence_length}, steps per execution {trainer.steps_per_execution(cfg)}, '
        f'XLA {steps >= trainer.XLA_MIN_STEPS} ({steps} planned steps; from {trainer.XLA_MIN_STEPS})'
    )
    alone = model_alone(cfg, ds, seconds)
    print(f'model alone (random in-memory batches): wall {alone[0]:,.0f} samples/s, cpu-time est. {alone[1]:,.0f}')
    runs = Path(os.environ.get('TMPDIR', '/tmp')) / 'bench_trainer_runs'
    real, n_train, epoch_seconds = trainer_run(cfg, ds, runs)
    print(
        f'cryptotft train ({epochs} epochs x {n_train:,} windows): wall {real[0]:,.0f} samples/s, cpu-time est. {real[1]:,.0f}'
    )
    after = model_alone(cfg, ds, seconds)
    print(f'model alone again: wall {after[0]:,.0f} samples/s, cpu-time est. {after[1]:,.0f}')
    # what a user sees per epoch: its training windows over the whole epoch (validation and callbacks included)
    per_epoch = n_train / np.median(epoch_seconds)
    fit_val = len(trainer.fit_validation_ends(ds, ds.ends('val'), trainer.val_stride(cfg)))
    print(
        f'whole epochs (median {np.median(epoch_seconds):.1f} s; validation during fit: {fit_val:,} of '
        f'{len(ds.ends("val")):,} windows, val_stride {trainer.val_stride(cfg)}): {per_epoch:,.0f} training windows/s'
    )
    wall = real[0] / ((alone[0] + after[0]) / 2)
    cpu = real[1] / ((alone[1] + after[1]) / 2)
    print(
        f'ratio trainer / model: wall {wall:.2f}, cpu-time {cpu:.2f} (goal >= 0.95; the cpu-time ratio is the one '
        'that a busy neighbour does not move: what the trainer costs per sample beyond the model)'
    )
    print(f'ratio whole epochs / model: {per_epoch / ((alone[0] + after[0]) / 2):.2f}')


if __name__ == '__main__':
    run_with_options(main, __doc__, stride='training.window_stride', start='first candle used (UTC)')
