"""pytorch-forecasting's TFT on the workload of shared/specs/performance.md: training samples/s, steady state.

The peer that bench_train.py compares with. It needs torch and pytorch-forecasting, which cryptotft does not
depend on, so it runs in its own environment, e.g.
    python3 -m venv /tmp/pf && /tmp/pf/bin/pip install torch==2.13.0 pytorch-forecasting==1.8.0
    /tmp/pf/bin/python benchmarks/pf_tft.py --d-model 32 --heads 4 --seconds 20
and bench_train.py --pf-python /tmp/pf/bin/python runs it between its own measurements.
Workload: 8 symbols x 20,000 bars, 49 unknown reals + 4 known time features + the symbol as a static
categorical, encoder 60, one step ahead, quantile loss (0.1/0.5/0.9), batch 64, dropout 0.2, every input
embedded at d_model (hidden_continuous_size = d_model, as in the paper). Prints one JSON line.
"""

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd


def panel(n_symbols=8, n_bars=20_000, n_reals=49, seed=0):
    "Random panel: n_reals unknown reals (the target one of them), 4 known time features, a symbol column."
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_symbols):
        t = np.arange(n_bars)
        df = pd.DataFrame(
            rng.normal(size=(n_bars, n_reals - 1)).astype('float32'), columns=[f'f{i}' for i in range(n_reals - 1)]
        )
        df['target'] = rng.normal(scale=0.02, size=n_bars).astype('float32')
        df['time_idx'], df['symbol'] = t, f's{s}'
        for k, period in enumerate((96, 96 * 7)):
            df[f'sin{k}'], df[f'cos{k}'] = np.sin(2 * np.pi * t / period), np.cos(2 * np.pi * t / period)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--d-model', type=int, default=128)
    ap.add_argument('--heads', type=int, default=8)
    ap.add_argument('--seconds', type=float, default=20.0)
    ap.add_argument('--batch-size', type=int, default=64)
    args = ap.parse_args()
    warnings.filterwarnings('ignore')
    import lightning.pytorch as pl
    import torch
    from pytorch_forecasting import QuantileLoss, TemporalFusionTransformer, TimeSeriesDataSet

    torch.manual_seed(0)
    df = panel()
    reals = [c for c in df.columns if c.startswith('f')]
    ds = TimeSeriesDataSet(
        df,
        time_idx='time_idx',
        target='target',
        group_ids=['symbol'],
        max_encoder_length=60,
        max_prediction_length=1,
        static_categoricals=['symbol'],
        time_varying_unknown_reals=reals + ['target'],
        time_varying_known_reals=['sin0', 'cos0', 'sin1', 'cos1'],
        target_normalizer=None,
        add_relative_time_idx=False,
        add_target_scales=False,
        add_encoder_length=False,
    )
    # 8 batches made up front and replayed, as bench_train.py replays 8 cached batches: the model's speed, not
    # TimeSeriesDataSet's per-sample Python (about 5% more time per step at num_workers=0)
    batches = [b for _, b in zip(range(8), ds.to_dataloader(train=True, batch_size=args.batch_size, num_workers=0))]
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    model = TemporalFusionTransformer.from_dataset(
        ds,
        hidden_size=args.d_model,
        attention_head_size=args.heads,
        dropout=0.2,
        hidden_continuous_size=args.d_model,
        loss=QuantileLoss([0.1, 0.5, 0.9]),
        learning_rate=1e-3,
    )

    class Clock(pl.Callback):
        def __init__(self):
            self.t = []

        def on_train_batch_end(self, *a, **k):
            self.t.append(time.perf_counter())

    def fit(steps):
        clock = Clock()
        trainer = pl.Trainer(
            max_steps=steps,
            accelerator='cpu',
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[clock],
        )
        trainer.fit(model, train_dataloaders=loader)
        return clock.t

    t = fit(8)  # warm-up, and the time of one step
    per_step = (t[-1] - t[2]) / (len(t) - 3)
    t = fit(max(10, int(args.seconds / per_step)))
    sps = (len(t) - 1) * args.batch_size / (t[-1] - t[0])
    print(
        json.dumps(
            {
                'd_model': args.d_model,
                'heads': args.heads,
                'params': sum(p.numel() for p in model.parameters()),
                'samples_per_s': sps,
                'torch': torch.__version__,
                'threads': torch.get_num_threads(),
            }
        )
    )


if __name__ == '__main__':
    main()
