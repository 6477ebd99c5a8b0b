"Walk-forward for real: one model per fold on expanding, purged windows; per-fold and pooled out-of-sample tables."

import json

import numpy as np

from cryptotft.config import Config, with_overrides
from cryptotft.dataset import dataset_from_frame
from cryptotft.evaluate import walk_forward_summary, walk_forward_table
from cryptotft.train import train_walk_forward
from test_mean_head import planted_frame


def test_three_folds_train_three_models_and_report_three_rows_plus_the_pooled_one(tmp_path):
    cfg = with_overrides(
        Config(),
        model=dict(sequence_length=4, prediction_horizon=2, d_model=8, num_heads=2, epochs=1, batch_size=256),
        training=dict(val_fraction=0.1, test_fraction=0.3, walk_forward_folds=3, runs_dir=str(tmp_path), seed=1),
    )
    ds = dataset_from_frame(planted_frame('mean', n_bars=1200, n_symbols=4), cfg, features=['x'])
    runs = train_walk_forward(cfg, ds, run_id='wf', progress=False, live_plots=False)
    assert [r.run_id for r in runs] == ['wf-f1', 'wf-f2', 'wf-f3']
    H = cfg.model.prediction_horizon * 900_000
    blocks = []
    for k, r in enumerate(runs, start=1):
        meta = json.loads((r.run_dir / 'run.json').read_text())
        assert meta['fold'] == k
        train_ts, val_ts = ds.timestamps[ds.ends('train', k)], ds.timestamps[ds.ends('val', k)]
        test_ts = ds.timestamps[ds.ends('test', k)]
        assert train_ts.max() + H < val_ts.min() and val_ts.max() + H < test_ts.min()  # purged on both sides
        blocks.append((test_ts.min(), test_ts.max(), len(test_ts), train_ts.max()))
    assert all(a[1] < b[0] and a[3] < b[3] for a, b in zip(blocks, blocks[1:]))  # later blocks, expanding training
    w = [r.model.get_weights()[-2] for r in runs]
    assert not np.allclose(w[0], w[1]) and not np.allclose(w[1], w[2])  # three models
    table = walk_forward_table(cfg, [r.run_id for r in runs], str(tmp_path), n_boot=50, out_dir=tmp_path / 'wf')
    ic = table[(table.metric == 'rank_ic_time') & (table.reference == 'zero') & (table.predictor == 'model')]
    assert sorted(ic['fold'].unique()) == ['1', '2', '3', 'pooled'] and len(ic) == 8  # 3 folds + pooled, 2 sides
    n = table[(table.metric == 'mae') & (table.reference == 'zero') & (table.predictor == 'zero')]
    assert {'lightgbm', 'train_median', 'model_median'} <= set(table.predictor)
    assert (tmp_path / 'wf' / 'metrics.csv').exists() and len(n) == 8
    summary = walk_forward_summary(table)
    assert list(summary.index) == ['1', '2', '3', 'pooled'] and ('model', 'buy') in summary.columns
