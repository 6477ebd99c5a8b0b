"""Is the symbol's prior a fixed trait or a recent streak? A probe after study run P.

The study's strongest reference is `symbol_mean`: each symbol's mean label over the fold's training windows
(1.5 years and more), the prior that `model.symbol_prior` builds into the TFT. If what it captures were a
streak (a symbol whose managed trades did well lately keeps doing well), a trailing mean over the last weeks
would rank the symbols better than the whole training history, and the TFT should get it as an input. This
script scores the trailing mean of each symbol's resolved labels over the last 7 .. 365 days against the
training mean, on fold 1's validation block and on every test block, by the study's tied rank IC per
timestamp, with day-block intervals of the difference.

A label is known at bar t only once its trade is over: the label of bar s covers bars s+1 .. s+horizon, so
the trailing mean at t reads labels of bars s <= t - horizon (by timestamp, so holes in the candles are
respected): it is causal, like every input.

    .venv/bin/python benchmarks/track_record.py runs/study-P/dataset-indicators.npz
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cryptotft.dataset import load_dataset
from cryptotft.evaluate import BARS_PER_DAY, bootstrap_block, eval_frame, label_horizon, metrics_table, symbol_means

DAYS = (7, 30, 90, 180, 365)  # trailing windows
METRIC = 'rank_ic_time_tied'
BAR_MS = 900_000


def trailing_means(ds, y: np.ndarray, days: float, horizon: int) -> np.ndarray:
    "(N, 2) each row's trailing mean of its symbol's labels `y` (N, 2) resolved by then, over `days` (NaN: none yet)."
    y = np.asarray(y, np.float64)
    out = np.full(y.shape, np.nan)
    for k in np.unique(ds.symbol_id):
        rows = np.flatnonzero(ds.symbol_id == k)
        ts = ds.timestamps[rows]
        ok = np.isfinite(y[rows])
        sums = np.vstack([np.zeros((1, 2)), np.cumsum(np.where(ok, y[rows], 0.0), axis=0)])
        counts = np.vstack([np.zeros((1, 2)), np.cumsum(ok, axis=0)])
        known_until = ts - horizon * BAR_MS  # labels of bars at or before this are resolved
        hi = np.searchsorted(ts, known_until, side='right')
        lo = np.searchsorted(ts, known_until - days * 86_400_000, side='right')
        n = counts[hi] - counts[lo]
        out[rows] = np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)
    return out


def main(path: Path, n_boot: int):
    t0 = time.perf_counter()
    ds = load_dataset(path)
    horizon = label_horizon(ds)
    y = ds.targets('regression')  # (N, 2) buy / sell returns
    trailing = {f'trail_{d}d': trailing_means(ds, y, d, horizon) for d in DAYS}
    folds = [k for k in ds.folds if k > 0]
    block = bootstrap_block(horizon, BARS_PER_DAY)
    parts = [(f'{folds[0]} val', ds.ends('val', folds[0]), folds[0])] + [(str(k), ds.ends('test', k), k) for k in folds]
    frames, preds = {}, {}
    for name, ends, k in parts:
        train = ds.ends('train', k)
        prior = symbol_means(y[train], ds.symbol_id[train], ds.symbol_id[ends])
        frames[name] = eval_frame(ds, ends)
        # no resolved label yet (a symbol's first days): its training mean, so every row is ranked
        preds[name] = {'training mean': prior} | {
            n: np.where(np.isfinite(p[ends]), p[ends], prior) for n, p in trailing.items()
        }
    tests = [str(k) for k in folds]
    frames['pooled'] = pd.concat([frames[n] for n in tests], ignore_index=True)
    preds['pooled'] = {p: np.concatenate([preds[n][p] for n in tests]) for p in preds[tests[0]]}
    cells = []
    for name, frame in frames.items():
        t = metrics_table(frame, preds[name], n_boot=n_boot, block=block, reference='training mean', versus=())
        for r in t[t.metric == METRIC].itertuples(index=False):
            cell = f'{r.value:+.4f}'
            if r.predictor != 'training mean':
                cell += f' ({r.diff:+.4f} [{r.diff_lo:+.4f}, {r.diff_hi:+.4f}])'
            cells.append(dict(block=name, side=r.side, predictor=r.predictor, cell=cell))
    wide = pd.DataFrame(cells).pivot_table(index=['block', 'side'], columns='predictor', values='cell', aggfunc='first')
    print(f'{path}: {len(ds.symbols)} symbols, horizon {horizon} bars; tied rank IC per timestamp')
    print('(trailing means: the difference to the training mean [95 % day-block interval])')
    print(wide.loc[list(frames), ['training mean', *trailing]].to_string())
    print(f'\n{time.perf_counter() - t0:.0f} s')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('dataset', type=Path, help="a study's dataset snapshot (dataset-indicators.npz)")
    ap.add_argument('--n-boot', type=int, default=300, help='block-bootstrap resamples')
    args = ap.parse_args()
    main(args.dataset, args.n_boot)
