"""Behaviour of the TFT model module: shapes, masks, selection weights, training, save/load, JAX."""

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip('keras')
tf = pytest.importorskip('tensorflow')
from keras import ops  # noqa: E402 (after the importorskip guards)

from cryptotft.tft import (  # noqa: E402
    TFTConfig,
    attention_profile,
    build_tft,
    feature_importance,
    prediction_loss,
    quantile_loss,
)

TINY = dict(n_features=8, n_symbols=3, sequence_length=20, d_model=16, num_heads=2)


def batch(tcfg, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        'features': rng.normal(size=(n, tcfg.sequence_length, tcfg.n_features)).astype('float32'),
        'symbol': rng.integers(0, tcfg.n_symbols, n).astype('int32'),
    }


def planted_dataset(tcfg, n=256, seed=0, dict_target=True):
    "Target = last bar's first feature (regression) or its sign (classification), for both sides."
    x = batch(tcfg, n, seed)
    y = np.repeat(x['features'][:, -1, :1], 2, axis=1)
    if tcfg.task == 'classification':
        y = (y > 0).astype('float32')
    return tf.data.Dataset.from_tensor_slices((x, {'prediction': y} if dict_target else y)).batch(32)


@pytest.mark.parametrize('task,shape', [('regression', (8, 2, 4)), ('classification', (8, 2))])
def test_output_shapes_for_both_tasks(task, shape):
    tcfg = TFTConfig(task=task, **TINY)
    out = build_tft(tcfg)(batch(tcfg))
    assert tuple(out['prediction'].shape) == shape
    assert tuple(out['attention'].shape) == (8, 20, 20)
    assert tuple(out['temporal_weights'].shape) == (8, 20, 8)
    if task == 'classification':
        p = ops.convert_to_numpy(out['prediction'])
        assert np.all((p > 0) & (p < 1))


def test_attention_is_causal_and_sums_to_one():
    tcfg = TFTConfig(**TINY)
    att = ops.convert_to_numpy(build_tft(tcfg)(batch(tcfg))['attention'])  # (B, T, T)
    np.testing.assert_allclose(att.sum(-1), 1, atol=1e-5)
    future = np.triu(np.ones((20, 20), bool), 1)
    assert np.all(att[:, future] == 0)
    assert np.all(att[:, ~future] > 0)


def test_variable_selection_weights_sum_to_one_over_features():
    tcfg = TFTConfig(**TINY)
    w = ops.convert_to_numpy(build_tft(tcfg)(batch(tcfg))['temporal_weights'])
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(-1), 1, atol=1e-5)


@pytest.mark.parametrize('task', ['regression', 'classification'])
def test_tiny_model_learns_planted_signal(task):
    keras.utils.set_random_seed(0)
    tcfg = TFTConfig(task=task, **TINY)
    model = build_tft(tcfg)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={'prediction': prediction_loss(tcfg)}, jit_compile=True)
    loss = model.fit(planted_dataset(tcfg), epochs=4, verbose=0).history['loss']
    assert loss[-1] < 0.8 * loss[0], loss


def test_fit_accepts_a_plain_target_for_the_prediction_output():
    keras.utils.set_random_seed(0)
    tcfg = TFTConfig(**TINY)
    model = build_tft(tcfg)
    model.compile(optimizer='adam', loss={'prediction': prediction_loss(tcfg)})
    hist = model.fit(planted_dataset(tcfg, 64, dict_target=False), epochs=1, verbose=0).history
    assert np.isfinite(hist['loss'][0])


def test_save_and_load_give_identical_predictions(tmp_path):
    tcfg = TFTConfig(task='classification', dropout=0.1, **{**TINY, 'n_symbols': 5})
    model = build_tft(tcfg)
    model.compile(optimizer='adam', loss={'prediction': prediction_loss(tcfg)})
    model.fit(planted_dataset(tcfg, 64), epochs=1, verbose=0)
    path = tmp_path / 'tft.keras'
    model.save(path)
    again = keras.models.load_model(path)
    x = batch(tcfg, 16, seed=3)
    a, b = model.predict(x, verbose=0), again.predict(x, verbose=0)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert again.get_layer('tft').tcfg == tcfg


def test_quantile_loss_is_the_pinball_loss():
    y = np.array([[0.0, 1.0]], 'float32')
    pred = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]], 'float32')  # over by 1, then under by 1
    expected = (np.mean([0.9, 0.5, 0.1]) + np.mean([0.1, 0.5, 0.9])) / 2
    assert np.isclose(float(quantile_loss((0.1, 0.5, 0.9))(y, pred)), expected)


def test_interpretation_helpers_rank_features_and_lags():
    w = np.zeros((4, 5, 3))
    w[..., 2] = 0.7
    w[..., 0] = 0.3
    fi = feature_importance(w, ['a', 'b', 'c'])
    assert list(fi.feature) == ['c', 'a', 'b']
    att = np.zeros((2, 5, 5))
    att[:, -1, -2] = 1.0  # the last bar looks one bar back
    prof = attention_profile(att)
    assert prof.set_index('lag').attention.idxmax() == 1


def test_mixed_bfloat16_policy_gives_float32_outputs_and_trains():
    keras.mixed_precision.set_global_policy('mixed_bfloat16')
    try:
        tcfg = TFTConfig(**TINY)
        model = build_tft(tcfg)
        out = model(batch(tcfg))
        model.compile(optimizer='adam', loss={'prediction': prediction_loss(tcfg)})
        before = [ops.convert_to_numpy(w) for w in model.trainable_weights]
        hist = model.fit(
            planted_dataset(tcfg, n=64), epochs=1, verbose=0
        )  # dropout on: the hand-written gradients in bf16
    finally:
        keras.mixed_precision.set_global_policy('float32')
    assert all(keras.backend.standardize_dtype(v.dtype) == 'float32' for v in out.values())
    assert np.all(np.isfinite(ops.convert_to_numpy(out['prediction'])))
    assert np.isfinite(hist.history['loss'][-1])
    after = {w.path: ops.convert_to_numpy(w) for w in model.trainable_weights}
    moved = {w.path for w, b in zip(model.trainable_weights, before) if not np.array_equal(after[w.path], b)}
    assert any(p.endswith('/embed') for p in moved) and any(p.endswith('/hidden') for p in moved)


JAX_SCRIPT = """
import numpy as np, keras
from cryptotft.tft import TFTConfig, build_tft, prediction_loss
tcfg = TFTConfig(n_features=8, n_symbols=3, sequence_length=20, d_model=16, num_heads=2)
x = {'features': np.random.rand(64, 20, 8).astype('float32'), 'symbol': np.zeros(64, 'int32')}
m = build_tft(tcfg); m.compile(optimizer='adam', loss={'prediction': prediction_loss(tcfg)})
m.fit(x, {'prediction': np.random.rand(64, 2).astype('float32')}, epochs=1, verbose=0)
assert m.predict(x, verbose=0)['prediction'].shape == (64, 2, 4)
print('ok', keras.backend.backend())
"""


def test_runs_on_the_jax_backend():
    pytest.importorskip('jax')
    env = {**os.environ, 'KERAS_BACKEND': 'jax'}
    res = subprocess.run([sys.executable, '-c', JAX_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'ok jax' in res.stdout


def test_hash_dropout_shared_axes_reuse_one_mask_at_the_stated_rate():
    from cryptotft.tft import HashDropout

    x = np.ones((6, 64, 60, 8), 'float32')
    y = ops.convert_to_numpy(HashDropout(0.2, seed=3, shared_axes=(0,))(x, training=True))
    assert all(np.array_equal(y[0], y[v]) for v in range(1, 6))  # one mask for every variable
    assert abs((y > 0).mean() - 0.8) < 0.01 and np.isclose(y.mean(), 1, atol=0.02)
    z = ops.convert_to_numpy(HashDropout(0.2, seed=3)(x, training=True))
    assert not np.array_equal(z[0], z[1])  # without shared_axes each slice gets its own coins
