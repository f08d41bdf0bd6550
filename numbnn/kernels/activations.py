"""Fused, parallel Numba loops of the activations and their straight-through gradients: sign, the
clipped STE (also per weight row with the layer's scale), ApproxSign, PokeBNN's DPReLU (forward, and
backward with its per-channel parameter sums), and the per-channel count of negative values (the mean
of a sign without writing the signs).

Layout, naive twins and the chunked reductions follow the conventions in :mod:`numbnn.kernels.channels`.
"""

import numba as nb
import numpy as np

from numbnn.kernels.channels import shuffle_row


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


NEGATIVE_COUNT_ROWS = 1024  # rows per parallel task of negative_counts


@nb.njit(parallel=True, cache=True)
def negative_counts(x):
    """int64 [C]: how many rows r of x [R, C] have x[r, c] < 0. The mean of sign(x) over the rows is
    (R - 2 count) / R, exact (counts per task of NEGATIVE_COUNT_ROWS rows, then summed)."""
    rows, channels = x.shape
    tasks = (rows + NEGATIVE_COUNT_ROWS - 1) // NEGATIVE_COUNT_ROWS
    partial = np.zeros((max(tasks, 1), channels), np.int64)
    for task in nb.prange(tasks):
        for r in range(task * NEGATIVE_COUNT_ROWS, min(rows, (task + 1) * NEGATIVE_COUNT_ROWS)):
            for c in range(channels):
                partial[task, c] += x[r, c] < 0
    return partial.sum(axis=0)


@nb.njit(parallel=True, cache=True)
def scaled_sign_rows(w, scale, out):
    """out[o, k] = scale[o] * sign(w[o, k]): a binary layer's +1/-1 weight rows times their per-output-channel
    scale (XNOR-Net's alpha), one pass instead of a sign pass and a multiply pass."""
    rows, k = w.shape
    for o in nb.prange(rows):
        s = scale[o]
        for j in range(k):
            out[o, j] = -s if w[o, j] < 0 else s
    return out


@nb.njit(parallel=True, cache=True)
def scaled_ste_grad_rows(grad, w, scale, clip, out):
    """out[o, k] = grad[o, k] * scale[o] where |w[o, k]| <= clip, else 0: the weight gradient of
    scale * sign(w) through the clipped STE, in one pass; ``out`` may be ``grad`` itself."""
    rows, k = w.shape
    for o in nb.prange(rows):
        s = scale[o]
        for j in range(k):
            out[o, j] = grad[o, j] * s if abs(w[o, j]) <= clip else 0.0
    return out


@nb.njit(parallel=True, cache=True)
def approx_sign_grad(grad, x, out):
    """out = grad * max(0, 2 - 2|x|); ``out`` may be ``grad`` itself."""
    for i in nb.prange(x.size):
        d = 2.0 - 2.0 * abs(x[i])
        out[i] = grad[i] * d if d > 0 else 0.0
    return out


@nb.njit(parallel=True, cache=True)
def approx_sign_grad_shifted_sums(grad, x, shift, pending, with_pending, out, n_chunks):
    """The backward of a binary conv's input x under RSign's threshold in one pass, for [rows, C] arrays and a
    per-channel shift: t = grad * max(0, 2 - 2|x + shift|) (:func:`approx_sign_grad` at x + shift, the sum
    rounded to x's dtype as numpy's x + shift is, and never written), out = t + pending (the gradient other ops
    have already sent to x; just t unless ``with_pending``, when ``pending`` is not read), and per chunk of
    rows and channel the float64 sum of t, the threshold's gradient ([n_chunks, C],
    :func:`numbnn.kernels.channels.chunk_sums`' chunks and order). Each value is the unfused passes' bit for
    bit; ``out`` may be ``grad``. Per row, t goes to a row buffer and the sums and the add run in a second
    loop: no output overlaps an input there, so both loops vectorise with ``out`` being ``grad`` (one loop
    writing ``out`` = ``grad`` and summing fell to LLVM's scalar version after its overlap check: 13.7
    against 1.2 ms on [100352, 32] at 2 threads)."""
    rows, c = x.shape
    partial = np.zeros((n_chunks, c))
    for chunk in nb.prange(n_chunks):
        sums, term = np.zeros(c), np.empty(c, x.dtype)
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                d = 2.0 - 2.0 * abs(x[i, j] + shift[j])
                term[j] = grad[i, j] * d if d > 0 else 0.0
            if with_pending:
                for j in range(c):
                    sums[j] += term[j]
                    out[i, j] = term[j] + pending[i, j]
            else:
                for j in range(c):
                    sums[j] += term[j]
                    out[i, j] = term[j]
        partial[chunk] = sums
    return partial


@nb.njit(parallel=True, cache=True)
def approx_sign_grad_unshuffled(grad, x, groups, pending, with_pending, out, n_chunks):
    """The backward of a binary conv's input under a channel shuffle in one pass, for [rows, C] arrays: the conv
    read xs = x shuffled (:func:`numbnn.kernels.channels.shuffle_columns` with ``groups``), so with
    t = grad * max(0, 2 - 2|xs|) (:func:`approx_sign_grad` at xs), x's gradient is t shuffled back (+ pending,
    the gradient other ops have already sent to x, if ``with_pending``; ``pending`` is not read otherwise).
    The unfused passes (the gradient, the inverse shuffle, the engine's addition) bit for bit. Per row, t goes
    to a row buffer first (so ``out`` may be ``grad``), and with a pending gradient its inverse shuffle to a
    second one: simple loops that vectorise (one loop gathering t through an index array took 2.3x as long
    on [25088, 64], G = 4, in a probe on Zen 4: docs/performance.md, 2026-12-07 afternoon)."""
    rows, c = x.shape
    for chunk in nb.prange(n_chunks):
        term, back = np.empty(c, x.dtype), np.empty(c, x.dtype)
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                d = 2.0 - 2.0 * abs(x[i, j])
                term[j] = grad[i, j] * d if d > 0 else 0.0
            if with_pending:
                shuffle_row(term, back, groups, True)
                for k in range(c):
                    out[i, k] = back[k] + pending[i, k]
            else:
                shuffle_row(term, out[i], groups, True)
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
