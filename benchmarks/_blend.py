"""What the blend probes share (`carry_blend.py`, `prior_blend.py`): a model's forecast plus a weighted second one."""

import numpy as np


def blend(model, other, model_sd, other_sd, w):
    "z(model) + w z(other), per side, with validation standard deviations (w = inf: the other alone)."
    if np.isinf(w):
        return other / other_sd
    return model / model_sd + w * other / other_sd
