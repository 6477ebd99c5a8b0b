"""Does the model know more than the symbol's name? A probe after study run K.

Judged without funding tie-breaks (`rank_ic_time_tied`), the study's TFT beat LightGBM but not the name-only
prior `symbol_mean` (each symbol's training mean: it knows who the symbol is, nothing of the bar). A model
whose forecasts add to that prior is still worth having; one that only relearns it is not. This script blends
each model with the prior, `z(model) + w * z(prior)` (each divided by its standard deviation on the fold's
validation block), with one weight per model chosen on the first fold's validation only (tied rank IC, mean
of both sides), and scores the blends on every test block and pooled with day-block intervals of the paired
difference to the prior alone: the difference is what the model adds.

    .venv/bin/python benchmarks/prior_blend.py runs/study-K

It reads the study's folder (its `study.json`, dataset snapshot and run folders); the models are the
study's chosen TFT (its seed ensemble's mean when it is one) and LightGBM on the same inputs and target.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _blend import blend, chosen_runs  # the script's folder
from cryptotft.dataset import load_dataset
from cryptotft.evaluate import (
    baseline_predictions,
    bootstrap_block,
    ensemble_predictions,
    eval_frame,
    forecast,
    label_horizon,
    metrics_table,
    panel_rank_ic,
)

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, np.inf)  # prior weight in standard deviations; inf: the prior alone
METRIC = 'rank_ic_time_tied'


def components(out: Path, study: dict, ds, k: int, ends: np.ndarray, scale: str) -> dict:
    "(n, 2) forecasts of fold k at `ends`: the chosen TFT, LightGBM on its target, the symbol mean of its target."
    seed = study['budget']['seed']
    runs = chosen_runs(out, study, k)
    refs = baseline_predictions(ds, ds.ends('train', k), ends, seed=seed, target_scale=scale)
    suffix = '' if scale == 'none' else f'_{scale}'
    return {
        'tft': forecast(ensemble_predictions(runs, ends)).point,
        'lightgbm': refs[f'lightgbm{suffix}'],
        'prior': refs[f'symbol_mean{suffix}'],
    }


def main(out: Path, n_boot: int):
    t0 = time.perf_counter()
    study = json.loads((out / 'study.json').read_text())
    ds = load_dataset(out / f"dataset-{'indicators' if study['chosen'].startswith('indicators') else 'context'}.npz")
    run_json = json.loads((chosen_runs(out, study, 1)[0] / 'run.json').read_text())
    scale = run_json['config']['training']['target_scale']
    folds = [k for k in ds.folds if k > 0]
    parts = {}
    for k in folds:
        val, test = ds.ends('val', k), ds.ends('test', k)
        comp = components(out, study, ds, k, np.r_[val, test], scale)
        parts[k] = {name: (p[: len(val)], p[len(val) :]) for name, p in comp.items()} | {'val': val, 'test': test}
    first = folds[0]
    val_frame = eval_frame(ds, parts[first]['val'])
    rows = []
    for name in ('tft', 'lightgbm'):
        m, c = parts[first][name][0], parts[first]['prior'][0]
        for w in WEIGHTS:
            ic = panel_rank_ic(val_frame, blend(m, c, m.std(0), c.std(0), w), tied=True)
            rows.append(dict(model=name, weight=w, val_buy=ic[0], val_sell=ic[1], val_mean=np.mean(ic)))
    tried = pd.DataFrame(rows)
    choice = {name: float(g.loc[g.val_mean.idxmax(), 'weight']) for name, g in tried.groupby('model')}
    print(f"Study {out} (chosen {study['chosen']}, target {scale}); fold {first} validation, tied rank IC:")
    print(tried.round(4).to_string(index=False))
    print(f'chosen prior weights: {choice}\n')
    frames, named = [], []
    for k in folds:
        (tv, tt), (lv, lt), (pv, pt) = parts[k]['tft'], parts[k]['lightgbm'], parts[k]['prior']
        named.append(
            {
                'tft': tt,
                'lightgbm': lt,
                'prior': pt,
                'tft+prior': blend(tt, pt, tv.std(0), pv.std(0), choice['tft']),
                'lightgbm+prior': blend(lt, pt, lv.std(0), pv.std(0), choice['lightgbm']),
            }
        )
        frames.append(eval_frame(ds, parts[k]['test']))
    block = bootstrap_block(label_horizon(ds))
    cells = []
    for fold, frame, preds in [
        *zip(map(str, folds), frames, named),
        ('pooled', pd.concat(frames, ignore_index=True), {n: np.concatenate([p[n] for p in named]) for n in named[0]}),
    ]:
        t = metrics_table(frame, preds, n_boot=n_boot, block=block, reference='prior', versus=())
        t = t[t.metric == METRIC]
        for r in t.itertuples(index=False):
            cell = f'{r.value:.4f}'
            if r.predictor != 'prior':
                cell += f' ({r.diff:+.4f} [{r.diff_lo:+.4f}, {r.diff_hi:+.4f}])'
            cells.append(dict(fold=fold, side=r.side, predictor=r.predictor, cell=cell))
    wide = pd.DataFrame(cells).pivot_table(index=['fold', 'side'], columns='predictor', values='cell', aggfunc='first')
    print('Test blocks, tied rank IC per timestamp (the difference to the prior alone [95 % day-block interval]):')
    print(wide[['prior', 'tft', 'tft+prior', 'lightgbm', 'lightgbm+prior']].to_string())
    print(f'\n{time.perf_counter() - t0:.0f} s')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('out_dir', type=Path, help="a study's out_dir (run with tied=True or not: the score here is tied)")
    ap.add_argument('--n-boot', type=int, default=300, help='block-bootstrap resamples')
    args = ap.parse_args()
    main(args.out_dir, args.n_boot)
