"""Fused, parallel Numba loops for the memory-bound element-wise ops of training.

A chain of numpy ufuncs makes one full pass over memory (and often one fresh temporary) per step;
the activations, STEs and batch norm below each touch their data in a single parallel pass instead.
Per-channel reductions split the rows into a fixed number of chunks, sum each chunk into its own
float64 row and add the rows afterwards, so results do not depend on the thread count.

Conventions: 2-D arrays are [rows, channels] C-contiguous views of NHWC data; per-channel vectors have
length ``channels`` and the dtype of the data. Each function has a plain-numpy twin in the tests.
"""

import numba as nb
import numpy as np

_CHUNKS = 64


# ---- element-wise (flat arrays) ------------------------------------------------------------------


@nb.njit(parallel=True, cache=True)
def sign(x):
    """+1 where x >= 0 else -1 (so -0.0 and 0.0 give +1)."""
    out = np.empty_like(x)
    for i in nb.prange(x.size):
        out[i] = -1.0 if x[i] < 0 else 1.0
    return out


@nb.njit(parallel=True, cache=True)
def ste_grad(grad, x, clip, out):
    """out = grad * 1{|x| <= clip}; ``out`` may be ``grad`` itself."""
    for i in nb.prange(x.size):
        out[i] = grad[i] if abs(x[i]) <= clip else 0.0
    return out


@nb.njit(parallel=True, cache=True)
def approx_sign_grad(grad, x, out):
    """out = grad * max(0, 2 - 2|x|); ``out`` may be ``grad`` itself."""
    for i in nb.prange(x.size):
        d = 2.0 - 2.0 * abs(x[i])
        out[i] = grad[i] * d if d > 0 else 0.0
    return out


@nb.njit(parallel=True, cache=True)
def add(a, b, out):
    """out = a + b over flat arrays of one length (numpy's result bit for bit, on every thread)."""
    for i in nb.prange(a.size):
        out[i] = a[i] + b[i]
    return out


# ---- per-channel ([rows, channels]) --------------------------------------------------------------


@nb.njit(parallel=True, cache=True)
def copy_columns(source, target, first):
    """target[:, first : first + source.shape[1]] = source: one part of a concatenation along channels."""
    rows, c = source.shape
    for i in nb.prange(rows):
        for j in range(c):
            target[i, first + j] = source[i, j]
    return target


@nb.njit(parallel=True, cache=True)
def take_columns(source, first, target):
    """target = source[:, first : first + target.shape[1]]: one part of a split along channels, contiguous."""
    rows, c = target.shape
    for i in nb.prange(rows):
        for j in range(c):
            target[i, j] = source[i, first + j]
    return target


# Reductions return per-chunk partial sums [chunks, channels] (float64); the Python callers add the
# chunks up. Keeping that last step out of the jitted code keeps compile times short.


def n_chunks(rows: int) -> int:
    return min(_CHUNKS, rows)


@nb.njit(parallel=True, cache=True)
def chunk_sums(x, center, squared, n_chunks):
    """Per chunk of rows, per channel: sum of (x - center), or of (x - center)^2 if ``squared``."""
    rows, c = x.shape
    partial = np.zeros((n_chunks, c))
    for chunk in nb.prange(n_chunks):
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                d = x[i, j] - center[j]
                partial[chunk, j] += d * d if squared else d
    return partial


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
def add_channels(x, v, out):
    """out[i, j] = x[i, j] + v[j]: a per-channel vector broadcast over the rows."""
    rows, c = x.shape
    for i in nb.prange(rows):
        for j in range(c):
            out[i, j] = x[i, j] + v[j]
    return out


@nb.njit(parallel=True, cache=True)
def scale_columns(acc, scale, out):
    """out[i, j] = acc[i, j] * scale[j]: integer sums (a binary conv's) to floats times a per-channel
    scale in one pass. Exact products of int32 and float32 round once, as float32 numpy does."""
    rows, c = acc.shape
    for i in nb.prange(rows):
        for j in range(c):
            out[i, j] = acc[i, j] * scale[j]
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


@nb.njit(parallel=True, cache=True)
def dprelu_forward(x, pos, neg, shift_x, shift_y):
    """u = x - shift_x; out = (pos if u >= 0 else neg) * u - shift_y, per channel."""
    rows, c = x.shape
    out = np.empty_like(x)
    for i in nb.prange(rows):
        for j in range(c):
            u = x[i, j] - shift_x[j]
            out[i, j] = (pos[j] if u >= 0 else neg[j]) * u - shift_y[j]
    return out


@nb.njit(parallel=True, cache=True)
def dprelu_backward(g, x, pos, neg, shift_x, dx, n_chunks):
    """dx = g * slope(u); per chunk and channel [sum g*u*(u>=0), sum g*u*(u<0), sum dx, sum g]."""
    rows, c = x.shape
    partial = np.zeros((4, n_chunks, c))
    for chunk in nb.prange(n_chunks):
        # Chunk-local sums with the sign of u as a select, not a row index: the channel loop vectorises.
        sum_pos, sum_neg, sum_dx, sum_g = np.zeros(c), np.zeros(c), np.zeros(c), np.zeros(c)
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                u = x[i, j] - shift_x[j]
                gi = g[i, j]
                positive = u >= 0
                d = gi * (pos[j] if positive else neg[j])
                dx[i, j] = d
                gu = gi * u
                sum_pos[j] += gu if positive else 0.0
                sum_neg[j] += 0.0 if positive else gu
                sum_dx[j] += d
                sum_g[j] += gi
        partial[0, chunk], partial[1, chunk], partial[2, chunk], partial[3, chunk] = sum_pos, sum_neg, sum_dx, sum_g
    return partial


# ---- optimizer ---------------------------------------------------------------------------------


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
