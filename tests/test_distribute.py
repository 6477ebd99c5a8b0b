"Data-parallel training: two logical CPU devices give the same losses as one device on the same data."

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    '''
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from cryptotft.config import Config, with_overrides
    from cryptotft.dataset import dataset_from_frame
    from cryptotft.tft import TFTConfig, prediction_loss
    from cryptotft.train import build_model, train, training_strategy, window_pipeline
    sys.path.insert(0, 'tests')
    from test_mean_head import planted_frame

    two = training_strategy(True)
    assert two.num_replicas_in_sync == 2
    cfg = with_overrides(
        Config(),
        model=dict(sequence_length=4, prediction_horizon=2, d_model=8, num_heads=2, epochs=2, batch_size=64,
                   dropout=0.0),
        training=dict(val_fraction=0.2, test_fraction=0.2, seed=3, data_parallel=True),
    )
    ds = dataset_from_frame(planted_frame('mean', n_bars=600, n_symbols=4), cfg, features=['x'])
    tcfg = TFTConfig.from_config(cfg, ds.features.shape[1], len(ds.symbols))
    ends = ds.ends('train')[: 64 * (len(ds.ends('train')) // 64)]  # whole global batches
    data = window_pipeline(ds, ends, 'regression', 64)
    keras.utils.set_random_seed(0)
    one_model = build_model(tcfg, ds.scaler)
    weights = one_model.get_weights()
    with two.scope():
        two_model = build_model(tcfg, ds.scaler)
        two_model.set_weights(weights)
    out = {}
    for name, model, strategy in (('one', one_model, tf.distribute.get_strategy()), ('two', two_model, two)):
        with strategy.scope():
            model.compile(optimizer=keras.optimizers.SGD(0.05), loss={'prediction': prediction_loss(tcfg)})
        before = model.evaluate(data, verbose=0)
        hist = model.fit(data, epochs=2, shuffle=False, verbose=0).history['loss']
        out[name] = [float(np.ravel(before)[0]), *map(float, hist)]
    res = train(cfg, ds, run_id='dp', runs_dir=sys.argv[1], progress=False, live_plots=False)  # the config switch
    out['train'] = [float(v) for v in res.history['loss']]
    print(json.dumps(out))
    '''
)


def test_two_logical_devices_train_to_the_same_losses_as_one(tmp_path):
    r = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(out['one']) == len(out['two']) == 3
    for a, b in zip(out['one'], out['two']):  # the loss before training and after each epoch
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), out
    assert len(out['train']) == 2 and all(v == v and v < 1e3 for v in out['train'])  # train() under the switch
