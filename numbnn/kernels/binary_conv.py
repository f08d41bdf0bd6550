"""Direct XNOR-popcount 2-D convolution on bit-packed NHWC activations and OHWI weights.

Notation: C_g = in_channels / groups channels per group, packed into W_g = ceil(C_g/64) words per
pixel; a tap is one (kh, kw) kernel position; K = KH*KW*C_g is the length of one receptive field.

Math. For output (n, oy, ox, o) in group g, a tap inside the image contributes the +1/-1 dot product
of its C_g input and weight channels, C_g - 2*popcount(x_words XOR w_words) (see binary_gemm). A tap
in the padding reads the constant ``pad_value`` p in every channel, so it contributes
p * wsum[o, tap] with wsum[o, tap] = sum_c s_w[o, tap, c] = C_g - 2*popcount(w[o, tap]).

The kernel fills padding taps with zero words, i.e. as if p were +1, so every receptive field is a
full K-bit vector and one popcount pass gives K - 2*popcount(patch XOR w). That counted
+1 * wsum for each padding tap where p * wsum was due, so it adds (p - 1) * wsum[o, tap] per
padding tap: nothing for p = +1 (LCE's "one-padding"), -wsum for p = 0 (taps count as 0, the same
as a float conv with zero padding) and -2*wsum for p = -1. Only border pixels have padding taps.

Layout. Per task (image n, output row oy) the receptive fields of the Wo output pixels are gathered
into a small [Wo, KH*KW*W_g] word buffer (word order (kh, kw, word), the order of the reshaped
weight), so the input is never copied in full; the product with the weights then runs as a GEMM.
"""

import numbers

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, require_array, words_for
from numbnn.kernels.geometry import conv_geometry
from numbnn.kernels.intrinsics import popcount


def binary_conv2d(x, w, in_channels, stride=1, padding=0, dilation=1, pad_value=0, groups=1) -> np.ndarray:
    """int32 [N, Ho, Wo, O]: convolution of packed +1/-1 activations ``x`` with packed weights ``w``.

    ``x`` uint64 [N, H, W, groups*ceil(C_g/64)] (each group's C_g = in_channels/groups channels packed
    on its own, see :func:`numbnn.kernels.pack_activations`); ``w`` uint64 [O, KH, KW, ceil(C_g/64)]
    (OHWI, see :func:`numbnn.kernels.pack_conv_weight`), O divisible by ``groups``; output channel o
    belongs to group o // (O/groups). ``stride``, ``padding``, ``dilation`` are ints or (h, w) pairs;
    ``pad_value`` 0, +1 or -1 is the value of taps in the padding. Equals a float convolution of the
    +1/-1 tensors padded with ``pad_value``; tail bits must be 0.
    """
    x = require_array(x, "x", (np.uint64,), ndim=4)
    w = require_array(w, "w", (np.uint64,), ndim=4)
    in_channels = as_int(in_channels, "in_channels", 1)
    groups = as_int(groups, "groups", 1)
    pad_value = _as_pad_value(pad_value)
    out_channels = w.shape[0]
    if in_channels % groups:
        raise InputError(f"in_channels={in_channels} is not divisible by groups={groups}")
    if out_channels % groups:
        raise InputError(f"w has {out_channels} output channels, not divisible by groups={groups}")
    group_words = words_for(in_channels // groups)
    if x.shape[3] != groups * group_words:
        raise InputError(
            f"x has {x.shape[3]} words per pixel, but in_channels={in_channels} in groups={groups} "
            f"needs {groups}*{group_words}"
        )
    if w.shape[3] != group_words:
        raise InputError(f"w has {w.shape[3]} words per tap, but {in_channels // groups} channels per group need {group_words}")
    g = conv_geometry(x.shape[1], x.shape[2], (w.shape[1], w.shape[2]), stride, padding, dilation)
    return _binary_conv2d(x, w, in_channels // groups, groups, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, pad_value)


def _as_pad_value(pad_value) -> int:
    if isinstance(pad_value, numbers.Real) and not isinstance(pad_value, bool) and pad_value in (0, 1, -1):
        return int(pad_value)
    raise InputError(f"pad_value must be 0, 1 or -1, got {pad_value!r}")


@nb.njit(cache=True)
def _tap_weight_sums(w, channels):
    """wsum[o, tap] = C_g - 2*popcount(w[o, tap]): the sum of a tap's +1/-1 weights."""
    out_channels, kh, kw, n_words = w.shape
    wsum = np.empty((out_channels, kh * kw), dtype=np.int64)
    for o in range(out_channels):
        for i in range(kh):
            for j in range(kw):
                ones = 0
                for t in range(n_words):
                    ones += popcount(w[o, i, j, t])
                wsum[o, i * kw + j] = channels - 2 * ones
    return wsum


@nb.njit(parallel=True, cache=True)
def _binary_conv2d(x, w, channels, groups, sh, sw, ph, pw, dh, dw, ho, wo, pad_value):
    n_img, h, width, _ = x.shape
    out_channels, kh, kw, n_words = w.shape
    per_group = out_channels // groups
    taps = kh * kw
    k_bits = taps * channels
    w_rows = w.reshape(out_channels, taps * n_words)
    wsum = _tap_weight_sums(w, channels)
    out = np.empty((n_img, ho, wo, out_channels), dtype=np.int32)
    for task in nb.prange(n_img * ho):
        n = task // ho
        oy = task % ho
        patch = np.empty((wo, taps * n_words), dtype=np.uint64)
        padded = np.empty((wo, taps), dtype=np.bool_)  # padded[ox, tap]: tap falls in the padding
        for g in range(groups):
            _gather_row_patch(x, n, oy, g * n_words, n_words, kh, kw, sh, sw, ph, pw, dh, dw, patch, padded)
            for ox in range(wo):
                for o in range(g * per_group, (g + 1) * per_group):
                    disagreements = 0
                    for t in range(taps * n_words):
                        disagreements += popcount(patch[ox, t] ^ w_rows[o, t])
                    out[n, oy, ox, o] = k_bits - 2 * disagreements
            if pad_value != 1:
                _correct_padding_taps(out, n, oy, padded, wsum, g * per_group, (g + 1) * per_group, pad_value)
    return out


@nb.njit(inline="always")
def _gather_row_patch(x, n, oy, first_word, n_words, kh, kw, sh, sw, ph, pw, dh, dw, patch, padded):
    """Receptive fields of output row oy (one group's words); padding taps become zero words (+1)."""
    h, width = x.shape[1], x.shape[2]
    wo = patch.shape[0]
    for ox in range(wo):
        for i in range(kh):
            iy = oy * sh - ph + i * dh
            for j in range(kw):
                ix = ox * sw - pw + j * dw
                tap = i * kw + j
                inside = 0 <= iy < h and 0 <= ix < width
                padded[ox, tap] = not inside
                for t in range(n_words):
                    patch[ox, tap * n_words + t] = x[n, iy, ix, first_word + t] if inside else np.uint64(0)


@nb.njit(inline="always")
def _correct_padding_taps(out, n, oy, padded, wsum, o_start, o_stop, pad_value):
    """Padding taps were counted as +1; add (pad_value - 1) * wsum[o, tap] for each (see module doc)."""
    wo, taps = padded.shape
    for ox in range(wo):
        for tap in range(taps):
            if padded[ox, tap]:
                for o in range(o_start, o_stop):
                    out[n, oy, ox, o] += (pad_value - 1) * wsum[o, tap]
