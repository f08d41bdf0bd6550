"""Fused, parallel Numba loops of batch normalisation: per-channel moments, the backward's sums, and the
per-channel affine maps forward (scale * x + shift) and backward (a * g + b * x + shift).

Layout, naive twins and the chunked reductions follow the conventions in :mod:`numbnn.kernels.channels`.
"""

import numba as nb
import numpy as np


@nb.njit(parallel=True, cache=True)
def chunk_moments(x, center, n_chunks):
    """Per chunk of rows, per channel: [sum (x - center), sum (x - center)^2] in one pass over x.

    Batch norm's mean and variance then follow as mean = center + S1/M and var = S2/M - (S1/M)^2;
    with float64 sums and ``center`` a row of x (close to the mean), the subtraction loses nothing
    that matters for float32 data, and x is read once instead of twice."""
    rows, c = x.shape
    partial = np.zeros((2, n_chunks, c))
    for chunk in nb.prange(n_chunks):
        first, second = np.zeros(c), np.zeros(c)  # chunk-local sums: no writes to shared rows
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                d = x[i, j] - center[j]
                first[j] += d
                second[j] += d * d
        partial[0, chunk], partial[1, chunk] = first, second
    return partial


@nb.njit(parallel=True, cache=True)
def grad_sums(g, x, center, n_chunks):
    """Per chunk, per channel: [sum g, sum g * (x - center)]."""
    rows, c = x.shape
    partial = np.zeros((2, n_chunks, c))
    for chunk in nb.prange(n_chunks):
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                partial[0, chunk, j] += g[i, j]
                partial[1, chunk, j] += g[i, j] * (x[i, j] - center[j])
    return partial


@nb.njit(parallel=True, cache=True)
def affine(x, scale, shift):
    """out[i, j] = x[i, j] * scale[j] + shift[j]."""
    rows, c = x.shape
    out = np.empty_like(x)
    for i in nb.prange(rows):
        for j in range(c):
            out[i, j] = x[i, j] * scale[j] + shift[j]
    return out


@nb.njit(parallel=True, cache=True)
def affine2(g, x, a, b, shift):
    """out[i, j] = a[j] * g[i, j] + b[j] * x[i, j] + shift[j]."""
    rows, c = x.shape
    out = np.empty_like(x)
    for i in nb.prange(rows):
        for j in range(c):
            out[i, j] = a[j] * g[i, j] + b[j] * x[i, j] + shift[j]
    return out
