"""Does a validation lead beyond the mechanics carry over to test? A probe after study runs AB and AC.

Run AB chose, on 180 validation days (fold 1, 2024-01 .. 2024-06), the TFT on the `rank_neutral` target over the
one on the `rank` target: validation rank IC beyond the mechanics 0.0146 against -0.0010, the paired difference's
day-block interval well clear of zero. On the test blocks the order reversed. This script shows where: for each
named configuration's fold-1 run of a study folder, the tied rank IC beyond the mechanics (`rank_ic_neutral`, the
study's controls: ATR, one-day ATR, the symbol's training mean rank, funding carry) per calendar month, over
fold 1's validation block and its test block, from the stored forecasts (nothing is retrained). A level that
moves between months by more than the day-block interval of one month allows is a change of regime, which no
resampling of the validation days can see.

    .venv/bin/python benchmarks/choice_drift.py runs/study-AB context-csrank-anon context-csneutral-anon
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from cryptotft.dataset import load_dataset
from cryptotft.evaluate import baseline_predictions, eval_frame, forecast, mechanics_controls, panel_rank_ic
from cryptotft.evaluate import stored_predictions


def monthly_neutral_ic(ds, runs: dict, split: str, fold: int = 1, seed: int = 42) -> pd.DataFrame:
    "Per month of `split` (fold `fold`): each run's tied rank IC beyond the mechanics, buy, sell and their mean."
    ends = ds.ends(split, fold)
    refs = baseline_predictions(ds, ds.ends('train', fold), ends, seed=seed, target_scale='rank')
    controls = mechanics_controls(ds, ends, refs, 'rank')
    frame = eval_frame(ds, ends)
    month = frame['timestamp'].dt.strftime('%Y-%m').to_numpy()
    rows = []
    for name, run_dir in runs.items():
        point = forecast(stored_predictions(run_dir, ends)).point
        for m in np.unique(month):
            k = month == m
            sub = frame[k].reset_index(drop=True)
            ic = panel_rank_ic(sub, point[k], tied=True, controls={c: v[k] for c, v in controls.items()})
            rows.append(dict(split=split, month=m, configuration=name, buy=ic[0], sell=ic[1]))
    out = pd.DataFrame(rows)
    out['mean'] = out[['buy', 'sell']].mean(axis=1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('study', type=Path, help='the study out_dir (holds runs/study-<configuration>-f1)')
    ap.add_argument('configurations', nargs='+', help='study configurations with a fold-1 run')
    args = ap.parse_args()
    runs = {c: args.study / 'runs' / f'study-{c}-f1' for c in args.configurations}
    ds = load_dataset(next(iter(runs.values())) / 'dataset.npz')  # the fold-1 run's snapshot: its splits
    table = pd.concat([monthly_neutral_ic(ds, runs, split) for split in ('val', 'test')])
    wide = table.pivot_table(index=['split', 'month'], columns='configuration', values='mean', sort=False)
    print('rank IC beyond the mechanics per month, mean of buy and sell (fold 1):')
    print(wide.round(4).to_string())
    totals = table.groupby(['split', 'configuration'])['mean'].agg(['mean', 'std', 'count'])
    print('\nover the months of each split (mean, standard deviation, months):')
    print(totals.round(4).to_string())


if __name__ == '__main__':
    main()
