"""What the blend probes share (`carry_blend.py`, `prior_blend.py`): the study's chosen runs, and a model's
forecast plus a weighted second one."""

from pathlib import Path

import numpy as np


def chosen_runs(out: Path, study: dict, k: int) -> list[Path]:
    """Run folders of the study's chosen configuration on fold k, named as the study names them: the study's
    seed `study-<configuration>-f<k>`, then `study-<configuration>-s<seed>-f<k>` (a `-xN` ensemble's seeds)."""
    base, _, n = study['chosen'].rpartition('-x')
    if not (base and n.isdigit()):
        base = study['chosen']  # a single-seed configuration
    seed = study['budget']['seed']
    runs = [out / 'runs' / f'study-{base}-f{k}']
    return runs + [out / 'runs' / f'study-{base}-s{s}-f{k}' for s in range(seed + 1, seed + study['chosen_seeds'])]


def blend(model, other, model_sd, other_sd, w):
    "z(model) + w z(other), per side, with validation standard deviations (w = inf: the other alone)."
    if np.isinf(w):
        return other / other_sd
    return model / model_sd + w * other / other_sd
