"""Float products whose every output sums its terms in one fixed order, whatever the row count.

BLAS picks its blocking, its micro-kernel (OpenBLAS has separate "small matrix" kernels) and its
thread split from the matrix sizes, so ``x[:7] @ w.T`` and the first 7 rows of ``x[:20] @ w.T``
may differ in the last bit. A model's prediction for an image must not depend on which other
images share its batch, so the classifier and the other float products on the prediction path
use this kernel instead::

    out[m, n] = (...((x[m, 0] * wt[0, n]) + x[m, 1] * wt[1, n]) + ...) + x[m, K-1] * wt[K-1, n]

k ascending, one accumulator per output in the operands' precision (float32, or float64 for
gradient checks), no fused multiply-add (Numba does not contract
without fastmath). The inner loop runs over n, the independent outputs of one row, so it still
vectorises; rows run in parallel and never interact.
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels.typed import typed_njit


@nb.njit(inline="always")
def ordered_row(x_row, wt, acc):
    """acc = x_row @ wt, each output summed over k in ascending order: one row of :func:`_ordered_matmul`
    (shared with the squeeze-and-excitation gate, :mod:`numbnn.kernels.squeeze_excite`)."""
    width = wt.shape[1]
    for n in range(width):
        acc[n] = 0.0
    for k in range(x_row.shape[0]):
        value = x_row[k]
        for n in range(width):
            acc[n] += value * wt[k, n]


@typed_njit(["void(float32[:, ::1], float32[:, ::1], float32[:, ::1])",
          "void(float64[:, ::1], float64[:, ::1], float64[:, ::1])"], parallel=True, cache=True)
def _ordered_matmul(x, wt, out):
    for m in nb.prange(x.shape[0]):
        ordered_row(x[m], wt, out[m])


def ordered_matmul(x: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """x [M, K] @ wt [K, N], each output summed over k in ascending order (see module).

    Both operands float32, or both float64; the result has their dtype.
    """
    if x.ndim != 2 or wt.ndim != 2 or x.shape[1] != wt.shape[0]:
        raise InputError(f"ordered_matmul: x [M, K] and wt [K, N] needed, got {x.shape} and {wt.shape}")
    if x.dtype != wt.dtype or x.dtype not in (np.float32, np.float64):
        raise InputError(f"ordered_matmul: two float32 or two float64 operands needed, got {x.dtype} and {wt.dtype}")
    out = np.empty((x.shape[0], wt.shape[1]), x.dtype)
    _ordered_matmul(np.ascontiguousarray(x), np.ascontiguousarray(wt), out)
    return out
