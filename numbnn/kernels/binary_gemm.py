"""XNOR-popcount matrix product of bit-packed +1/-1 matrices.

For +1/-1 vectors s_a, s_b of length k encoded as bits (bit 1 = -1), two entries agree exactly where
the bits are equal, so with d = popcount(a XOR b) disagreements::

    sum_t s_a[t] * s_b[t] = (k - d) - d = k - 2 * popcount(a XOR b)

The tail bits past k are 0 in both operands, so they XOR to 0 and add nothing to d. The popcount
sums run in register tiles (see :mod:`numbnn.kernels.tiles`).
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, require_array, words_for
from numbnn.kernels.tiles import TILE_COLS, TILE_ROWS, column_panels, column_splits, store_edge_tile, tile_dot


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
    if a.shape[0] == 0 or b.shape[0] == 0:  # nothing to compute (the task split divides by the row blocks)
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.int32)
    return _binary_matmul(a, b, k, nb.get_num_threads())


# Rows of `a` per parallel task: its tiles sweep every column panel while the rows stay in L1.
ROW_BLOCK = 16 * TILE_ROWS


@nb.njit(parallel=True, cache=True)
def _binary_matmul(a, b, k, threads):
    panels = column_panels(b)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    blocks = (a.shape[0] + ROW_BLOCK - 1) // ROW_BLOCK
    splits = column_splits(blocks, panels.shape[0], threads)
    for task in nb.prange(blocks * splits):
        _matmul_row_block(a, panels, k, out, (task // splits) * ROW_BLOCK, task % splits, splits)
    return out


@nb.njit(cache=True)
def _matmul_row_block(a, panels, k, out, first, split, splits):
    """Rows first .. first+ROW_BLOCK-1 of `out` (fewer at the end), column panels split, split+splits, ..."""
    m, n_words = a.shape
    n = out.shape[1]
    count = min(ROW_BLOCK, m - first)
    rows, row0 = a, first
    if count % TILE_ROWS:  # last block: copy into zero rows so every tile reads TILE_ROWS rows
        rows = np.zeros((ROW_BLOCK, n_words), dtype=np.uint64)
        for r in range(count):
            for t in range(n_words):
                rows[r, t] = a[first + r, t]
        row0 = 0
    for p in range(split, panels.shape[0], splits):
        col0 = p * TILE_COLS
        for tile in range(0, count, TILE_ROWS):
            if tile + TILE_ROWS <= count and col0 + TILE_COLS <= n:
                tile_dot(rows, row0 + tile, panels, p, k, out, first + tile, col0)
            else:
                store_edge_tile(rows, row0 + tile, panels, p, k, out, first + tile, col0)
