"""The trade outcome learned, the funding carry added: a probe of the next step after study runs I and J.

A model trained on the labels without funding (a study run with `-p funding False`, e.g. run J) learns what
predicts the managed trade's outcome; the funding a trade will pay is known at the bar (`funding_carry`) and
needs no learning. This script blends the two, `z(model) + w * z(carry)`, each component divided by its
standard deviation on the fold's validation block, with one weight `w` per model chosen on the first fold's
validation only (rank IC per timestamp, mean of both sides), and scores the blend on every test block
against the labels WITH funding (a study run with funding, e.g. run I: the same rows). It does so for the
outcome study's chosen TFT and for LightGBM fitted on the outcome ranks, so both meet the carry on equal
terms, and prints them beside the funding-trained predictors of the funding study's headline.

    .venv/bin/python benchmarks/carry_blend.py runs/study-J runs/study-I

Both folders must come from the same data, symbols, folds and horizon (checked: same rows and splits).
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
    ensemble_predictions,
    eval_frame,
    forecast,
    funding_carry,
    label_horizon,
    panel_rank_ic,
)

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, np.inf)  # carry weight in standard deviations; inf: the carry alone


def components(outcome: Path, study: dict, ds, funded_ds, k: int, ends: np.ndarray) -> dict:
    "(n, 2) forecasts of fold k at `ends`: the outcome study's chosen TFT, LightGBM on outcome ranks, the carry."
    seed = study['budget']['seed']
    runs = chosen_runs(outcome, study, k)
    out = {'tft': forecast(ensemble_predictions(runs, ends)).point}
    refs = baseline_predictions(ds, ds.ends('train', k), ends, seed=seed, target_scale='rank')
    out['lightgbm_rank'] = refs['lightgbm_rank']
    out['carry'] = funding_carry(funded_ds.features[ends], funded_ds.feature_names, label_horizon(funded_ds))
    return out


def main(outcome: Path, funded: Path):
    t0 = time.perf_counter()
    fds = load_dataset(funded / 'dataset-context.npz')
    ods = load_dataset(outcome / 'dataset-context.npz')
    if not (np.array_equal(fds.timestamps, ods.timestamps) and np.array_equal(fds.symbol_id, ods.symbol_id)):
        raise SystemExit('the two studies hold different rows: same data, symbols and dates are needed')
    study = json.loads((outcome / 'study.json').read_text())
    feat = 'indicators' if study['chosen'].startswith('indicators') else 'context'
    chosen_ds = ods if feat == 'context' else load_dataset(outcome / f'dataset-{feat}.npz')  # what its TFT read
    folds = [k for k in fds.folds if k > 0]
    parts = {}
    for k in folds:
        val, test = fds.ends('val', k), fds.ends('test', k)
        if not (np.array_equal(val, ods.ends('val', k)) and np.array_equal(test, ods.ends('test', k))):
            raise SystemExit(f'fold {k} has other splits in the two studies')
        both = np.r_[val, test]
        comp = components(outcome, study, chosen_ds, fds, k, both)
        parts[k] = {name: (p[: len(val)], p[len(val) :]) for name, p in comp.items()} | {'val': val, 'test': test}
    # one weight per model, chosen on fold 1's validation against the labels with funding
    first = folds[0]
    val_frame = eval_frame(fds, parts[first]['val'])
    choice = {}
    rows = []
    for name in ('tft', 'lightgbm_rank'):
        m, c = parts[first][name][0], parts[first]['carry'][0]
        for w in WEIGHTS:
            ic = panel_rank_ic(val_frame, blend(m, c, m.std(0), c.std(0), w))
            rows.append(dict(model=name, weight=w, val_buy=ic[0], val_sell=ic[1], val_mean=np.mean(ic)))
    tried = pd.DataFrame(rows)
    for name, g in tried.groupby('model'):
        choice[name] = float(g.loc[g.val_mean.idxmax(), 'weight'])
    print('Fold 1 validation (labels with funding), rank IC of each blend (weight inf: the carry alone):')
    print(tried.round(4).to_string(index=False))
    print(f'chosen weights: {choice}\n')
    # test: every fold with the fold-1 weight, each component scaled by its own fold's validation spread
    tests = []
    for k in folds:
        frame = eval_frame(fds, parts[k]['test'])
        for name in ('tft', 'lightgbm_rank'):
            (mv, mt), (cv, ct) = parts[k][name], parts[k]['carry']
            scored = {
                f'{name} (outcome)': mt,
                f'{name} + carry': blend(mt, ct, mv.std(0), cv.std(0), choice[name]),
            }
            for label, p in scored.items():
                ic = panel_rank_ic(frame, p)
                tests.append(dict(fold=str(k), predictor=label, buy=ic[0], sell=ic[1], score=p))
        ic = panel_rank_ic(frame, parts[k]['carry'][1])
        tests.append(dict(fold=str(k), predictor='carry', buy=ic[0], sell=ic[1], score=parts[k]['carry'][1]))
    table = pd.DataFrame(tests)
    pooled_frame = eval_frame(fds, np.concatenate([parts[k]['test'] for k in folds]))
    for label, g in table.groupby('predictor', sort=False):
        ic = panel_rank_ic(pooled_frame, np.concatenate(list(g.score)))
        table.loc[len(table)] = dict(fold='pooled', predictor=label, buy=ic[0], sell=ic[1], score=None)
    wide = table.pivot_table(index='predictor', columns='fold', values=['buy', 'sell'], sort=False)
    print('Test blocks, rank IC per timestamp against the labels with funding:')
    print(wide.round(4).to_string())
    head = pd.read_csv(funded / 'headline.csv', dtype={'fold': str})
    ref = head[(head.metric == 'rank_ic_time') & (head.fold == 'pooled')]
    ref = ref.pivot_table(index='predictor', columns='side', values='value').round(4)
    print(f'\nThe funding study ({funded}), pooled test rank IC of its predictors (trained with funding):')
    print(ref.to_string())
    print(f'\n{time.perf_counter() - t0:.0f} s')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('outcome', type=Path, help='out_dir of a study run with funding=False')
    ap.add_argument('funded', type=Path, help='out_dir of the same study with funding')
    args = ap.parse_args()
    main(args.outcome, args.funded)
