"""How much of a study's neutral rank IC survives more controls? A probe after study run V.

`rank_ic_neutral` (cryptotft.evaluate) neutralises each score, bar by bar, against the ranks of the window's
14-bar ATR, the symbol's training mean and the funding carry, and ranks what is left against the realised
returns. With trade levels scaled by volatility (`risk_profile.volatility_target_pct`) the levels follow the
one-day ATR, a slower volatility than the 14-bar one, so part of that mechanic may survive the standard
controls. This script rescores a finished study's chosen TFT and its references on every test block and
pooled, once with the standard controls and once with extra columns of the study's dataset as further
controls (default `vol_rel_mkt_96`: the symbol's one-day return volatility over the market's; at one bar it
ranks the symbols by their one-day volatility), with day-block intervals.

    .venv/bin/python benchmarks/neutral_controls.py runs/study-V

It reads the study's folder (its `study.json`, dataset snapshot and run folders); it trains nothing but the
study's LightGBM references, refitted per fold exactly as the study fits them.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _blend import chosen_runs  # the script's folder
from cryptotft.dataset import load_dataset
from cryptotft.evaluate import (
    baseline_predictions,
    bootstrap_block,
    ensemble_predictions,
    eval_frame,
    forecast,
    label_horizon,
    mechanics_controls,
    metrics_table,
)


def fold_parts(out: Path, study: dict, ds, k: int, scale: str, extra: list[str]) -> tuple:
    "Fold k's test frame, named forecasts, standard controls and standard + extra controls."
    ends = ds.ends('test', k)
    refs = baseline_predictions(ds, ds.ends('train', k), ends, seed=study['budget']['seed'], target_scale=scale)
    named = {'model': forecast(ensemble_predictions(chosen_runs(out, study, k), ends)).point}
    for name in ('lightgbm', f'lightgbm_{scale}', 'volatility_mean', f'volatility_mean_{scale}', 'symbol_mean'):
        if name in refs:
            named[name] = refs[name]
    standard = mechanics_controls(ds, ends, refs, scale)
    more = standard | {name: ds.features[ends, ds.feature_names.index(name)] for name in extra}
    return eval_frame(ds, ends), named, standard, more


def stacked(dicts: list[dict]) -> dict:
    "One dict of the folds' arrays, concatenated in fold order."
    return {name: np.concatenate([d[name] for d in dicts]) for name in dicts[0]}


def neutral(frame, named, controls, n_boot, block, seed) -> pd.DataFrame:
    "The `rank_ic_neutral` rows (against zero) of one table."
    table = metrics_table(frame, named, n_boot=n_boot, block=block, seed=seed, controls=controls, versus=())
    return table[(table.metric == 'rank_ic_neutral') & (table.reference == 'zero')]


def main(out: Path, extra: list[str], n_boot: int):
    t0 = time.perf_counter()
    study = json.loads((out / 'study.json').read_text())
    ds = load_dataset(out / f"dataset-{'indicators' if study['chosen'].startswith('indicators') else 'context'}.npz")
    missing = [name for name in extra if name not in ds.feature_names]
    if missing:
        raise SystemExit(f'{missing} are not columns of the dataset of {out}; choose from {ds.feature_names}')
    run_json = json.loads((chosen_runs(out, study, 1)[0] / 'run.json').read_text())
    scale = run_json['config']['training']['target_scale']
    block, seed = bootstrap_block(label_horizon(ds)), study['budget']['seed']
    parts = {k: fold_parts(out, study, ds, k, scale, extra) for k in ds.folds if k > 0}
    folds = list(parts.values())
    pooled = (
        pd.concat([f[0] for f in folds], ignore_index=True),
        stacked([f[1] for f in folds]),
        stacked([f[2] for f in folds]),
        stacked([f[3] for f in folds]),
    )
    rows = []
    for fold, (frame, named, standard, more) in [*parts.items(), ('pooled', pooled)]:
        for label, controls in (('standard', standard), ('+ ' + ', '.join(extra), more)):
            t = neutral(frame, named, controls, n_boot, block, seed)
            rows.append(t.assign(fold=str(fold), controls=label))
    table = pd.concat(rows, ignore_index=True)
    table['cell'] = [f'{v:.4f} [{a:.4f}, {b:.4f}]' for v, a, b in zip(table.value, table.lo, table.hi)]
    wide = table.pivot_table(index=['fold', 'side', 'controls'], columns='predictor', values='cell', aggfunc='first')
    print(f"Study {out} (chosen {study['chosen']}, target {scale}): rank_ic_neutral on test, by controls")
    print(f"standard controls: {list(parts[1][2])}; extra: {extra}")
    with pd.option_context('display.width', 250, 'display.max_columns', 20):
        print(wide.to_string())
    print(f'\n{time.perf_counter() - t0:.0f} s')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('study', type=Path, help='the study out_dir (runs/study-V)')
    parser.add_argument('--extra', nargs='+', default=['vol_rel_mkt_96'], help='dataset columns as more controls')
    parser.add_argument('--n-boot', type=int, default=300)
    args = parser.parse_args()
    main(args.study, args.extra, args.n_boot)
