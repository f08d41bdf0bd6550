"""XNOR-popcount matrix product of bit-packed +1/-1 matrices.

For +1/-1 vectors s_a, s_b of length k encoded as bits (bit 1 = -1), two entries agree exactly where
the bits are equal, so with d = popcount(a XOR b) disagreements::

    sum_t s_a[t] * s_b[t] = (k - d) - d = k - 2 * popcount(a XOR b)

The tail bits past k are 0 in both operands, so they XOR to 0 and add nothing to d.
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, require_array, words_for
from numbnn.kernels.intrinsics import popcount


def binary_matmul(a, b, k) -> np.ndarray:
    """int32 [M, N] with result[i, j] = sum_{t<k} s_a[i, t] * s_b[j, t] = k - 2*popcount(a[i] ^ b[j]).

    ``a`` uint64 [M, W] and ``b`` uint64 [N, W] are packed over the same ``k`` (W = ceil(k/64)) by
    :func:`numbnn.kernels.pack_bits`; their tail bits must be 0.
    """
    a = require_array(a, "a", (np.uint64,), ndim=2)
    b = require_array(b, "b", (np.uint64,), ndim=2)
    k = as_int(k, "k", 1)
    for name, m in (("a", a), ("b", b)):
        if m.shape[1] != words_for(k):
            raise InputError(f"{name} has {m.shape[1]} words per row, but k={k} needs {words_for(k)}")
    return _binary_matmul(a, b, k)


@nb.njit(parallel=True, cache=True)
def _binary_matmul(a, b, k):
    m, n_words = a.shape
    n = b.shape[0]
    out = np.empty((m, n), dtype=np.int32)
    for i in nb.prange(m):
        for j in range(n):
            disagreements = 0
            for t in range(n_words):
                disagreements += popcount(a[i, t] ^ b[j, t])
            out[i, j] = k - 2 * disagreements
    return out
