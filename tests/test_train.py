"Training end to end on tiny synthetic data: loss falls, no leakage, exact reload, run folder and db rows."

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import keras

from cryptotft.config import Config, ConfigError, DataError, with_overrides
from cryptotft.dataset import VOLATILITY_FLOOR_PCT, dataset_from_frame, export_dataset, load_dataset
from cryptotft.db import connect
from cryptotft.evaluate import eval_frame, forecast, load_run_artifacts, metrics_table, run_predictions
from conftest import tiny_processed
from cryptotft.synthetic import synthetic_market
from cryptotft.tft import TFTConfig
from cryptotft.train import RankICCheckpoint, build_model, load_run, predict_windows, train

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


SCALED = ['log_return', 'range_pct', 'mom_16', 'atr_pct']


def three_symbol_frame(days=14, seed=0):
    "Three SYNTHETIC symbols (a rank across symbols needs three) with a causal ATR % stand-in column."
    candles, funding = synthetic_market(('BTCUSDT', 'ETHUSDT', 'SOLUSDT'), days=days, seed=seed, momentum=0.3)
    df = tiny_processed(candles, funding, horizon=8, third='mom_16')
    c = candles.sort_values(['symbol', 'timestamp'])
    atr = ((c.high - c.low) / c.close).groupby(c.symbol).transform(lambda r: r.rolling(14).mean())
    return df.merge(c[['symbol', 'timestamp']].assign(atr_pct=atr), on=['symbol', 'timestamp'], how='left')


@pytest.fixture(scope='module')
def ranked(tmp_path_factory):
    "A tiny run that keeps the checkpoint of the best validation rank IC and learns volatility-scaled targets."
    tmp = tmp_path_factory.mktemp('ranked')
    cfg = tiny_cfg(checkpoint_metric='rank_ic', target_scale='volatility')
    ds = dataset_from_frame(three_symbol_frame(), cfg, SCALED)
    res = train(cfg, ds, epochs=4, runs_dir=tmp, run_id='ranked', progress=False, live_plots=False)
    return cfg, ds, res, tmp


def untrained(ds, cfg):
    "A fresh tiny model for `ds` (as `fit` leaves it: stop_training set)."
    model = build_model(TFTConfig.from_config(cfg, ds.features.shape[1], len(ds.symbols)), ds.scaler)
    model.stop_training = False
    return model


def test_rank_ic_callback_logs_the_number_evaluate_reports_and_reads_only_validation(tmp_path):
    cfg = tiny_cfg()
    ds = dataset_from_frame(three_symbol_frame(days=8), cfg, SCALED)
    model = untrained(ds, cfg)
    val = ds.ends('val')
    cb = RankICCheckpoint(ds, val, tmp_path / 'm.keras', patience=2)
    cb.set_model(model)
    logs = {}
    cb.on_epoch_end(0, logs)
    point = forecast(predict_windows(model, ds, val), cfg.model.quantiles).point
    table = metrics_table(eval_frame(ds, val), {'model': point}, n_boot=2)
    ic = table.query("metric == 'rank_ic_time' and reference == 'zero'").set_index('side')['value']
    assert np.isfinite(logs['val_rank_ic'])
    assert np.isclose(logs['val_rank_ic_buy'], ic['buy']) and np.isclose(logs['val_rank_ic_sell'], ic['sell'])
    assert np.isclose(logs['val_rank_ic'], (ic['buy'] + ic['sell']) / 2)
    # blank every label but the validation windows' and every feature row no validation window reads
    blind = ds.labels.copy()
    keep = np.zeros(len(blind), bool)
    keep[val] = True
    blind[~keep] = np.nan
    feats = ds.features.copy()
    rows = np.zeros(len(feats), bool)
    for t in range(ds.sequence_length):
        rows[val - t] = True
    feats[~rows] = np.nan
    cut = RankICCheckpoint(dataclasses.replace(ds, labels=blind, features=feats), val, tmp_path / 'n.keras', 2)
    assert not set(val) & set(ds.ends('test')) and len(cut.frame) == len(val)
    assert np.allclose(cut.score(model), [logs['val_rank_ic_buy'], logs['val_rank_ic_sell']])  # test never read


def test_rank_ic_checkpoint_saves_the_weights_of_the_best_epoch_and_stops_after_patience(tmp_path):
    cfg = tiny_cfg()
    ds = dataset_from_frame(three_symbol_frame(days=8), cfg, SCALED)
    model = untrained(ds, cfg)
    cb = RankICCheckpoint(ds, ds.ends('val'), tmp_path / 'best.keras', patience=3)
    cb.set_model(model)
    rng = np.random.default_rng(0)
    weights, scores = [], []
    for epoch in range(8):  # each "epoch" a random draw of weights: the rank IC goes up and down
        model.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])
        logs = {}
        cb.on_epoch_end(epoch, logs)
        weights.append(model.get_weights())
        scores.append(logs['val_rank_ic'])
        if model.stop_training:
            break
    best = int(np.nanargmax(scores))
    assert cb.best_epoch == best and np.isclose(cb.best, scores[best])
    assert model.stop_training == (len(scores) - 1 - best >= 3)
    saved = keras.saving.load_model(tmp_path / 'best.keras')
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), weights[best]))


def test_rank_ic_run_logs_every_epoch_and_restores_the_best_by_it(ranked):
    cfg, ds, res, _ = ranked
    history = pd.read_csv(res.run_dir / 'history.csv')
    assert {'val_loss', 'val_rank_ic', 'val_rank_ic_buy', 'val_rank_ic_sell'} <= set(history.columns)
    meta = json.loads((res.run_dir / 'run.json').read_text())
    m = meta['metrics']
    assert m['checkpoint_metric'] == 'rank_ic' and len(m['val_rank_ic_per_epoch']) == len(history) == m['epochs_run']
    assert m['best_epoch'] == int(history['val_rank_ic'].fillna(-np.inf).idxmax()) + 1
    assert np.isclose(m['best_val_rank_ic'], history['val_rank_ic'].max())
    scorer = RankICCheckpoint(ds, ds.ends('val'), res.run_dir / 'unused.keras', 1, target_scale='volatility')
    assert np.isclose(np.mean(scorer.score(res.model)), m['best_val_rank_ic'], atol=1e-4)  # the kept weights


def test_volatility_scaled_run_stores_and_serves_predictions_in_percent(ranked):
    cfg, ds, res, runs = ranked
    ends = np.concatenate([ds.ends('val'), ds.ends('test')])
    raw = predict_windows(res.model, ds, ends)  # the model's own outputs: returns in ATR units
    scale = ds.target_scale('volatility', ends)
    assert np.allclose(scale, 100 * ds.features[ends, SCALED.index('atr_pct')])
    with np.load(res.run_dir / 'predictions.npz') as z:
        stored = z['pred'][np.searchsorted(z['ends'], ends)]
    assert np.allclose(stored, raw * scale[:, None, None], rtol=1e-4, atol=1e-5)
    meta = json.loads((res.run_dir / 'run.json').read_text())
    assert meta['target_scale']['kind'] == 'volatility' and meta['config']['training']['target_scale'] == 'volatility'
    (res.run_dir / 'predictions.npz').unlink()  # predict again from the saved run folder alone
    art = load_run_artifacts(Config(), 'ranked', runs)
    assert art.target_scale == 'volatility'
    np.testing.assert_allclose(run_predictions(art, ends), stored, rtol=1e-4, atol=1e-5)
    assert not np.allclose(stored, raw, rtol=0.05)  # the scale is no identity: the units really differ


def test_huber_delta_is_in_the_units_of_the_targets_and_comes_back_with_the_saved_run(run, ranked):
    plain = json.loads((run[0].run_dir / 'run.json').read_text())
    assert plain['tft_config']['huber_delta'] == 10.0 == plain['config']['model']['huber_delta']  # percent targets
    _, _, res, _ = ranked
    meta = json.loads((res.run_dir / 'run.json').read_text())
    assert meta['config']['training']['target_scale'] == 'volatility' and meta['config']['model']['huber_delta'] == 10.0
    assert np.isclose(meta['tft_config']['huber_delta'], 10.0 / VOLATILITY_FLOOR_PCT)  # ATR units: beyond any label
    for run_dir, delta in ((run[0].run_dir, 10.0), (res.run_dir, meta['tft_config']['huber_delta'])):
        model, _ = load_run(run_dir)
        assert np.isclose(model.loss['prediction'].huber_delta, delta)  # the loss is rebuilt as it was trained


def test_selection_options_that_cannot_work_fail_before_anything_is_written(tmp_path):
    two = dataset_from_frame(momentum_frame(days=6), tiny_cfg(), ['log_return', 'range_pct', 'mom_16'])
    for training, message in (
        (dict(checkpoint_metric='sharpe'), 'checkpoint_metric'),
        (dict(checkpoint_metric='rank_ic'), 'three or more'),
        (dict(target_scale='volatility'), 'atr_pct'),
        (dict(target_scale='range'), 'target_scale'),
    ):
        with pytest.raises((ConfigError, DataError), match=message):
            train(tiny_cfg(**training), two, epochs=1, runs_dir=tmp_path, run_id='unwritten', progress=False)
    with pytest.raises(ConfigError, match='regression'):
        train(tiny_cfg(target_scale='volatility'), two, task='classification', runs_dir=tmp_path, run_id='unwritten')
    assert not (tmp_path / 'unwritten').exists()


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


XLA_FLAGS_SCRIPT = """
import os
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import cryptotft
import tensorflow as tf
f = tf.function(lambda x: tf.reduce_sum(tf.nn.elu(x) * 2.0), jit_compile=True)  # XLA aborts on an unknown flag
print(float(f(tf.ones((64, 64)))))
print(os.environ['XLA_FLAGS'])
"""


@pytest.mark.parametrize(
    'user_flags, expected',
    [
        (None, '--xla_cpu_prefer_vector_width=512'),
        ('--xla_cpu_enable_fast_math=false', '--xla_cpu_enable_fast_math=false --xla_cpu_prefer_vector_width=512'),
        ('--xla_cpu_prefer_vector_width=256', '--xla_cpu_prefer_vector_width=256'),
    ],
)
def test_importing_cryptotft_prefers_512_bit_xla_cpu_vectors_unless_the_user_chose(user_flags, expected):
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
    if user_flags is not None:
        env['XLA_FLAGS'] = user_flags
    res = subprocess.run([sys.executable, '-c', XLA_FLAGS_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]  # the flag exists in this TensorFlow's XLA
    lines = res.stdout.strip().splitlines()
    assert float(lines[-2]) == 8192.0  # elu(1) * 2 over 64 x 64 ones: the compiled function ran
    assert lines[-1] == expected  # added after the user's flags; a width the user chose is kept
