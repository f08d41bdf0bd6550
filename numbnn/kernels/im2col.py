"""Float im2col / col2im for NHWC convolutions.

``im2col`` turns a convolution into one matrix product. Row ``r = (n*Ho + oy)*Wo + ox`` of the
column matrix holds the receptive field of output pixel (n, oy, ox), ordered (kh, kw, c), so an OHWI
weight reshaped to [O, KH*KW*C] multiplies it directly::

    out[n, oy, ox, o] = sum_{kh,kw,c} x[n, oy*sh - ph + kh*dh, ox*sw - pw + kw*dw, c] * w[o, kh, kw, c]
    out.reshape(-1, O) == im2col(x, ...) @ w.reshape(O, -1).T

Taps that fall in the padding are 0. ``col2im`` is the exact adjoint (the transpose of the linear map
``im2col``): it scatter-adds every column entry back onto the input pixel it was read from, which is
the input gradient of the convolution.

Grouped convolutions (``groups=G``, C_g = C/G channels per group) take the columns group-major,
ordered (g, kh, kw, c): group g's K_g = KH*KW*C_g columns are the block ``cols[:, g*K_g:(g+1)*K_g]``
of every row, equal to the im2col of its channel slice x[..., g*C_g:(g+1)*C_g]. So each group's
products read a strided 2-D view of one matrix (BLAS takes its row stride as is) and no reordering
copy is ever made; with G = 1 the order is the plain (kh, kw, c).
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import as_groups, as_pad_value, as_shape4, out_array, require_array
from numbnn.kernels.geometry import conv_geometry

_FLOATS = (np.float32, np.float64)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out=None, signs=False, pad_value=0, groups=1) -> np.ndarray:
    """Receptive fields of NHWC float ``x`` as a [N*Ho*Wo, KH*KW*C] matrix, columns ordered (kh, kw, c)
    (with ``groups`` > 1: (group, kh, kw, c), see the module docstring).

    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are ints or (h, w) pairs. The result
    has the dtype of ``x`` (float32 or float64); padding taps are 0. ``out``, a C-contiguous array of
    that shape and dtype, is filled and returned instead of a new array (reusing one buffer across
    calls saves the page faults of a fresh large allocation).

    ``signs=True`` gives the columns of sign(x) (+1 where x >= 0, else -1) with padding taps equal to
    ``pad_value`` (0, +1 or -1) in the same pass: the columns a binary convolution's weight gradient
    needs, without a separate sign pass or padded copy of x.
    """
    x = require_array(x, "x", _FLOATS, ndim=4)
    groups = as_groups(groups, x.shape[3], "x")
    g = conv_geometry(x.shape[1], x.shape[2], kernel_size, stride, padding, dilation)
    shape = (x.shape[0] * g.ho * g.wo, g.kh * g.kw * x.shape[3])
    out = out_array(out, shape, x.dtype)
    if not isinstance(signs, (bool, np.bool_)):
        raise InputError(f"signs must be True or False, got {signs!r}")
    if signs:
        pad_value = as_pad_value(pad_value)
    elif pad_value != 0:
        raise InputError(f"pad_value applies to signs=True only (float columns pad with 0), got {pad_value!r}")
    _im2col(x, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, out, bool(signs), float(pad_value), groups)
    return out


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, out=None, groups=1) -> np.ndarray:
    """Adjoint of :func:`im2col` (with the same ``groups``): scatter-add ``cols`` [N*Ho*Wo, KH*KW*C] back
    to an ``input_shape`` array.

    Satisfies ``<im2col(x), c> == <x, col2im(c, x.shape)>`` for all x, c (up to rounding). ``out``, a
    C-contiguous array of ``input_shape`` and the dtype of ``cols`` (e.g. the images' slice of a whole
    batch's gradient), is overwritten with the result and returned instead of a new array.
    """
    cols = require_array(cols, "cols", _FLOATS, ndim=2)
    shape = as_shape4(input_shape)
    n, h, w, c = shape
    groups = as_groups(groups, c, "input_shape")
    g = conv_geometry(h, w, kernel_size, stride, padding, dilation, input_name="input_shape")
    expected = (n * g.ho * g.wo, g.kh * g.kw * c)
    if cols.shape != expected:
        raise InputError(f"cols must have shape {expected} for input_shape {shape}, got {cols.shape}")
    out = out_array(out, shape, cols.dtype)
    _col2im(cols, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, out, groups)
    return out


@nb.njit(inline="always")
def _copy_run(source, src, target, dst, length, signs):
    """target[dst:dst+length] = source[src:src+length], or its signs (+1 for >= 0, else -1).

    Indices are unsigned: Numba wraps negative signed indices around, a per-element branch that can
    stop LLVM vectorising the loop (unsigned, the im2col of a [128, 14, 14, 128] input took 15 ms of
    CPU instead of 19, and the sign-column packer of numbnn.kernels.sign_matmul 5 instead of 11)."""
    src, dst = np.uint64(src), np.uint64(dst)
    if signs:
        for t in range(np.uint64(length)):
            target[dst + t] = -1.0 if source[src + t] < 0 else 1.0
    else:
        for t in range(np.uint64(length)):
            target[dst + t] = source[src + t]


@nb.njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, cols, signs, fill, groups):
    n_img, h, w, c = x.shape
    cg = c // groups
    group_len = kh * kw * cg  # columns per group
    source = x.reshape(-1)
    target = cols.reshape(-1)
    # One task per output row (n, oy); each writes only its own Wo rows of `cols`. With dilation 1
    # and one group the kw taps of a kernel row are one contiguous run of kw*c values in x: copied
    # as a block. Otherwise each (tap, group) is a run of cg values, written to its group's block.
    for task in nb.prange(n_img * ho):
        n = task // ho
        oy = task % ho
        for ox in range(wo):
            row = (task * wo + ox) * kh * kw * c
            ix0 = ox * sw - pw
            for i in range(kh):
                iy = oy * sh - ph + i * dh
                dst = row + i * kw * cg  # kernel row i in group 0's block
                if iy < 0 or iy >= h:
                    for grp in range(groups):
                        for t in range(kw * cg):
                            target[dst + grp * group_len + t] = fill
                elif groups == 1 and dw == 1 and ix0 >= 0 and ix0 + kw <= w:
                    _copy_run(source, ((n * h + iy) * w + ix0) * c, target, dst, kw * c, signs)
                else:
                    for j in range(kw):
                        ix = ix0 + j * dw
                        for grp in range(groups):
                            at = dst + grp * group_len + j * cg
                            if 0 <= ix < w:
                                _copy_run(source, ((n * h + iy) * w + ix) * c + grp * cg, target, at, cg, signs)
                            else:
                                for ch in range(cg):
                                    target[at + ch] = fill


@nb.njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, x, groups):
    n_img, h, w, c = x.shape
    cg = c // groups
    group_len = kh * kw * cg  # columns per group
    # Gather form of the scatter-add, one task per *input* row (n, iy): it sums every column entry
    # read from that row, so no two tasks write the same pixel (no races, parallel even at batch 1).
    # Input row iy is read by output row oy through kernel row i iff oy*sh - ph + i*dh == iy.
    for task in nb.prange(n_img * h):
        n = task // h
        iy = task % h
        x[n, iy] = 0
        for i in range(kh):
            t = iy + ph - i * dh
            if t < 0 or t % sh != 0:
                continue
            oy = t // sh
            if oy >= ho:
                continue
            for ox in range(wo):
                row = (n * ho + oy) * wo + ox
                for j in range(kw):
                    ix = ox * sw - pw + j * dw
                    if 0 <= ix < w:
                        for grp in range(groups):  # unsigned indices: vectorised (see _copy_run)
                            at, col = np.uint64(grp * cg), np.uint64(grp * group_len + (i * kw + j) * cg)
                            for ch in range(np.uint64(cg)):
                                x[n, iy, ix, at + ch] += cols[row, col + ch]
