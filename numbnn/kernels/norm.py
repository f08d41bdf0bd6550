"""Fused, parallel Numba loops of batch normalisation: per-channel moments, the backward's sums, and the
per-channel affine maps forward (scale * x + shift) and backward (a * g + b * x + shift); and the block
op that follows a binary conv, DPReLU(BN(x) + r) (or DPReLU(BN(x)) + r), in one pass each way (:func:`bn_add_dprelu` and
:func:`bn_add_dprelu_grad_sums`; :class:`numbnn.functional.norm.BatchNormAddDPRelu` has the math).

Layout, naive twins and the chunked reductions follow the conventions in :mod:`numbnn.kernels.channels`.
"""

import numba as nb
import numpy as np

from numbnn.kernels.channels import add_moments


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
            add_moments(x[i], center, first, second)
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


def _signatures(result: str, arguments: str) -> list[str]:
    """One signature per float dtype ``T`` (float32 training, float64 finite-difference checks)."""
    return [f"{result}({arguments})".replace("T", t) for t in ("float32", "float64")]


_ROWS, _VEC = "T[:, ::1]", "T[::1]"


@nb.njit(_signatures("void", f"{_ROWS}, {_ROWS}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, {_ROWS}, int64, int64, "
                             "boolean"), parallel=True, cache=True)
def bn_add_dprelu(x, r, scale, shift, pos, neg, shift_x, shift_y, out, first, x_first, add_after):
    """out[:, first + j] = DPReLU(x[:, x_first + j] * scale + shift + r)[:, j] for the C channels j of r:
    with u = (x*scale + shift) + r - shift_x, (pos if u >= 0 else neg) * u - shift_y (``out`` may be wider:
    one part of a concatenation along channels; so may x: the columns of one copy of a repeated residual).
    ``add_after``: DPReLU(x * scale + shift) + r instead (u without r, r added to the activation's output).
    Each float operation is the one :func:`affine`, the residual add and
    :func:`numbnn.kernels.activations.dprelu_forward` do, in their order, so the result is theirs bit for
    bit; the two intermediate maps are never written."""
    rows, c = r.shape
    for i in nb.prange(rows):
        target = out[i, first:first + c]  # row views: ``first + j`` as an index would be a signed sum, whose
        xi = x[i, x_first:x_first + c]    # negative-index wraparound check keeps LLVM from vectorising
        if add_after:
            for j in range(c):
                u = (xi[j] * scale[j] + shift[j]) - shift_x[j]
                target[j] = ((pos[j] if u >= 0 else neg[j]) * u - shift_y[j]) + r[i, j]
        else:
            for j in range(c):
                u = (xi[j] * scale[j] + shift[j]) + r[i, j] - shift_x[j]
                target[j] = (pos[j] if u >= 0 else neg[j]) * u - shift_y[j]


@nb.njit(inline="always")
def _slope_terms(gi, u, pos, neg, h, gu_pos, gu_neg, j):
    """h[j] = g * slope(u); g*u into gu_pos[j] or gu_neg[j] by the sign of u (the other one 0)."""
    positive = u >= 0
    h[j] = gi * (pos if positive else neg)
    gu = gi * u
    gu_pos[j] = gu if positive else 0.0
    gu_neg[j] = 0.0 if positive else gu


@nb.njit(_signatures("float64[:, :, ::1]", f"{_ROWS}, int64, {_ROWS}, int64, {_ROWS}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, "
                     f"{_VEC}, float64[::1], {_ROWS}, boolean, int64, boolean"), parallel=True, cache=True)
def bn_add_dprelu_grad_sums(g, first, x, x_first, r, scale, shift, pos, neg, shift_x, mean, h, with_pos, n_chunks,
                            add_after):
    """The backward's one pass over g[:, first : first + C], x[:, x_first : x_first + C] and r [rows, C]:
    recompute u as :func:`bn_add_dprelu` does (with ``add_after`` r is not part of u and is not read), write
    h[:, x_first : x_first + C] = g * slope(u) (the gradient of BN(x), and of r unless ``add_after``: then
    r's is g itself; h is not written if it has no rows: :func:`bn_activation_input_grad` recomputes it), and
    per chunk and channel return [sum g*u*(u>=0) (zeros unless ``with_pos``), sum g*u*(u<0), sum h, sum g,
    sum h * (x - mean)] in float64: the sums of :func:`numbnn.kernels.activations.dprelu_backward` and
    :func:`grad_sums`, in their order.

    Each row runs as two channel loops, the float32 element-wise part (h and the halves of g*u into row
    buffers) and then the float64 sums over that row, still in the cache: one loop doing both vectorised
    only from ~40 channels on (below, LLVM ran its scalar remainder, 5x slower), two simpler loops do from
    ~24 (ReActNet's narrowest maps have 32)."""
    rows, c = r.shape
    partial = np.zeros((5, n_chunks, c))
    store_h = h.shape[0] > 0
    for chunk in nb.prange(n_chunks):
        sum_pos, sum_neg, sum_h, sum_g, sum_hx = np.zeros(c), np.zeros(c), np.zeros(c), np.zeros(c), np.zeros(c)
        gu_pos, gu_neg = np.empty(c, x.dtype), np.empty(c, x.dtype)  # g*u where u >= 0 / u < 0, else 0
        h_row = np.empty((1, x.shape[1]), x.dtype)  # h's row when h is not stored
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            grad = g[i, first:first + c]  # row views (see bn_add_dprelu)
            xi = x[i, x_first:x_first + c]
            hi = h[i, x_first:x_first + c] if store_h else h_row[0, x_first:x_first + c]
            if add_after:  # two loops, not a select per element: the flag is fixed for the whole call
                for j in range(c):
                    _slope_terms(grad[j], (xi[j] * scale[j] + shift[j]) - shift_x[j], pos[j], neg[j], hi, gu_pos, gu_neg, j)
            else:
                for j in range(c):
                    _slope_terms(grad[j], (xi[j] * scale[j] + shift[j]) + r[i, j] - shift_x[j], pos[j], neg[j], hi,
                                 gu_pos, gu_neg, j)
            for j in range(c):
                d = hi[j]
                sum_neg[j] += gu_neg[j]
                sum_h[j] += d
                sum_g[j] += grad[j]
                sum_hx[j] += d * (xi[j] - mean[j])
            if with_pos:  # DPReLU's learnable positive slope (RPReLU's and PReLU's is the constant 1)
                for j in range(c):
                    sum_pos[j] += gu_pos[j]
        partial[0, chunk], partial[1, chunk], partial[2, chunk], partial[3, chunk], partial[4, chunk] = (
            sum_pos, sum_neg, sum_h, sum_g, sum_hx)
    return partial


@nb.njit(_signatures("T[:, ::1]", f"{_ROWS}, {_ROWS}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, {_VEC}, {_VEC}"),
         parallel=True, cache=True)
def bn_activation_input_grad(g, x, scale, shift, pos, neg, shift_x, a, b, dshift):
    """BN's input gradient under the fused op's ``add_after`` form (FTBNN's unit, activation(BN(x)) + r) in one
    pass: h = g * slope(u) with u = (x*scale + shift) - shift_x, recomputed as :func:`bn_add_dprelu_grad_sums`
    computes it, then a*h + b*x + dshift as :func:`affine2` computes it. Bit for bit those two kernels'
    result, without h written to memory by the first and read back by the second."""
    rows, c = x.shape
    out = np.empty_like(x)
    for i in nb.prange(rows):
        for j in range(c):
            u = (x[i, j] * scale[j] + shift[j]) - shift_x[j]
            h = g[i, j] * (pos[j] if u >= 0 else neg[j])
            out[i, j] = a[j] * h + b[j] * x[i, j] + dshift[j]
    return out
