"""The fused, parallel Numba loop of an optimiser step (Adam / AdamW).

Conventions: 2-D arrays are [rows, channels] C-contiguous views of NHWC data; per-channel vectors have
length ``channels`` and the dtype of the data. Each function has a plain-numpy twin in ``tests/naive.py``
(checked in ``tests/test_kernels_optim.py``). A chain of numpy ufuncs makes one full pass over memory
(and often one fresh temporary) per step; each loop here touches its data in a single parallel pass.
"""

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def adam_step(data, grad, exp_avg, exp_avg_sq, shrink, l2, beta1, beta2, step_size, bias2_root, eps):
    """One Adam step over flat arrays, in place, in a single pass (Kingma & Ba 2015, Algorithm 1):
    w <- w * shrink; g <- grad + l2 * w; m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    w <- w - step_size * m / (sqrt(v) / bias2_root + eps). Intermediates are float64, rounded once."""
    for i in nb.prange(data.size):
        w = data[i] * shrink
        g = grad[i] + l2 * w
        m = beta1 * exp_avg[i] + (1.0 - beta1) * g
        v = beta2 * exp_avg_sq[i] + (1.0 - beta2) * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        data[i] = w - step_size * m / (np.sqrt(v) / bias2_root + eps)
