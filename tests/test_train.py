"Training end to end on tiny synthetic data: loss falls, no leakage, exact reload, run folder and db rows."

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cryptotft.config import Config, with_overrides
from cryptotft.dataset import dataset_from_frame, export_dataset, load_dataset
from cryptotft.db import connect
from conftest import tiny_processed
from cryptotft.synthetic import synthetic_market
from cryptotft.train import load_run, predict_windows, train

TINY = dict(
    sequence_length=16, prediction_horizon=8, d_model=8, num_heads=2, batch_size=64, dropout=0.0, learning_rate=3e-3
)


def tiny_cfg(**training):
    return with_overrides(
        Config(),
        model=TINY,
        training=dict(val_fraction=0.2, test_fraction=0.2, plot_every=2, early_stopping_patience=10, **training),
    )


def momentum_frame(days=14, seed=0):
    "Synthetic market with a planted momentum drift; three scale-free features; labels with an 8-bar horizon."
    candles, funding = synthetic_market(('BTCUSDT', 'ETHUSDT'), days=days, seed=seed, momentum=0.3)
    return tiny_processed(candles, funding, horizon=8, third='mom_16')


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "One tiny regression run trained from a dataset snapshot, recorded in a SQLite database."
    tmp = tmp_path_factory.mktemp('train')
    cfg = tiny_cfg()
    ds = dataset_from_frame(momentum_frame(), cfg, ['log_return', 'range_pct', 'mom_16'])
    snap = load_dataset(export_dataset(ds, tmp / 'snapshot.npz'))
    db = connect(f"sqlite:///{tmp / 'runs.db'}")
    db.init_db()
    res = train(cfg, snap, epochs=4, runs_dir=tmp / 'runs', db=db, progress=False, run_id='tiny-run')
    return res, snap, db


def test_tiny_model_trains_end_to_end_and_its_loss_falls(run):
    res, _, _ = run
    h = res.history
    assert len(h) == 4 and h['loss'].iloc[-1] < h['loss'].iloc[0]
    assert np.isfinite(res.metrics['test']['buy_pinball'])


def test_saved_model_reloads_and_gives_identical_predictions(run):
    res, snap, _ = run
    model, meta = load_run(res.run_dir)
    ds = load_dataset(meta['dataset_path'])  # the snapshot in the run folder, no database
    ends = ds.ends('test')
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), res.model.get_weights()))  # exact reload
    # the same outputs up to float rounding (the trained model's predict graph was traced for other batch shapes)
    np.testing.assert_allclose(predict_windows(model, ds, ends), predict_windows(res.model, snap, ends), atol=1e-5)
    assert meta['feature_names'] == snap.feature_names and meta['run_dir'] == str(res.run_dir.resolve())


def test_run_folder_holds_config_features_range_splits_and_plots(run):
    res, snap, _ = run
    d = res.run_dir
    for name in ('model.keras', 'run.json', 'scaler.json', 'history.csv', 'dataset.npz'):
        assert (d / name).is_file(), name
    assert any((d / 'tensorboard').rglob('events.out.tfevents.*'))
    assert sorted(p.name for p in (d / 'plots').iterdir()) == ['epoch_002.png', 'epoch_004.png']
    meta = json.loads((d / 'run.json').read_text())
    assert meta['config']['model']['epochs'] == 4 and meta['index']['sequence_length'] == 16
    assert meta['data_range'] == {
        **snap.config['data_range'],
        **{k: meta['data_range'][k] for k in ('start_utc', 'end_utc')},
    }
    assert {r['split'] for r in meta['splits']} == {'train', 'val', 'test'}
    assert np.allclose(meta['scaler']['mean'], snap.scaler['mean'])
    assert len(pd.read_csv(d / 'history.csv')) == 4


def test_run_writes_model_metadata_and_training_sequences(run):
    res, snap, db = run
    runs = db.read_runs()
    row = runs[runs.run_id == 'tiny-run'].iloc[0]
    assert row.status == 'finished' and row.task == 'regression' and 'test' in row.metrics
    assert row.artifacts['model.keras'].endswith('model.keras')
    seq = db.read_sql("SELECT * FROM training_sequences WHERE run_id = 'tiny-run'")
    assert seq.n_samples.sum() == sum(len(v) for v in snap.splits.values())


def planted_frame(shuffle: bool, n=3000, seed=0):
    "Fake bars: random features; profit flags planted from past features (or shuffled across rows)."
    rng = np.random.default_rng(seed)
    frames = []
    for i, s in enumerate(('AAAUSDT', 'BBBUSDT')):
        x = rng.normal(size=(n, 3))
        buy = x[:, 0] + 0.5 * np.roll(x[:, 0], 2) + 0.5 * rng.normal(size=n)  # bars t and t-2 of the window
        sell = x[:, 1] - 0.5 * x[:, 2] + 0.5 * rng.normal(size=n)
        ts = pd.Series(pd.date_range('2024-01-01', periods=n, freq='15min', tz='UTC'))
        frames.append(
            pd.DataFrame(
                {
                    'symbol': s,
                    'timestamp': ts,
                    'f0': x[:, 0],
                    'f1': x[:, 1],
                    'f2': x[:, 2],
                    'buy_return': buy,
                    'sell_return': sell,
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    if shuffle:
        df[['buy_return', 'sell_return']] = rng.permutation(df[['buy_return', 'sell_return']].to_numpy())
    return df


@pytest.mark.parametrize('shuffle', [True, False])
def test_shuffled_targets_score_at_chance_while_a_planted_signal_does_better(shuffle, tmp_path):
    cfg = tiny_cfg()
    ds = dataset_from_frame(planted_frame(shuffle), cfg, ['f0', 'f1', 'f2'])
    res = train(cfg, ds, task='classification', epochs=4, runs_dir=tmp_path, progress=False)
    auc = [res.metrics['test'][f'{s}_auc'] for s in ('buy', 'sell')]
    if shuffle:
        assert all(abs(a - 0.5) < 0.07 for a in auc), auc  # ~1,100 test windows: sd of AUC ~0.02
    else:
        assert min(auc) > 0.7, auc


ALLOCATOR_SCRIPT = """
import os
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import tensorflow as tf      # importing TensorFlow first is fine: the allocator is chosen at the first tensor
import cryptotft
x = tf.ones((256, 1024))
try:
    tf.config.experimental.get_memory_info('CPU:0')
    stats = 'stats'
except ValueError:
    stats = 'nostats'
print(os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'), stats)
"""


@pytest.mark.parametrize('user_value, expected', [(None, 'true'), ('false', 'false')])
def test_importing_cryptotft_selects_the_bfc_cpu_allocator_unless_the_user_chose(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPU_ALLOCATOR_USE_BFC'}
    if user_value is not None:
        env['TF_CPU_ALLOCATOR_USE_BFC'] = user_value
    res = subprocess.run([sys.executable, '-c', ALLOCATOR_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    chosen, stats = res.stdout.split()[-2:]
    assert chosen == expected  # cryptotft chose BFC; a value the user set is kept
    if expected == 'true':
        # only the BFC allocator keeps memory stats on every host (some hosts' default allocator keeps them too)
        assert stats == 'stats'
