"""XNOR-popcount 2-D convolution on bit-packed NHWC activations and OHWI weights (no im2col copy).

Notation: C_g = in_channels / groups channels per group, packed into W_g = ceil(C_g/64) words per
pixel; a tap is one (kh, kw) kernel position; K = KH*KW*C_g is the length of one receptive field.

Math. For output (n, oy, ox, o) in group g, a tap inside the image contributes the +1/-1 dot product
of its C_g input and weight channels, C_g - 2*popcount(x_words XOR w_words) (see binary_gemm). A tap
in the padding reads the constant ``pad_value`` p in every channel, so it contributes
p * wsum[o, tap] with wsum[o, tap] = sum_c s_w[o, tap, c] = C_g - 2*popcount(w[o, tap]).

The kernel fills padding taps with zero words, i.e. as if p were +1, so every receptive field is a
full K-bit vector and one popcount pass gives K - 2*popcount(patch XOR w); border pixels then get
(p - 1) * wsum[o, tap] per padding tap from the one correction table (:mod:`numbnn.kernels.padding`).

This module is the checked entry point; the loops are the one binary-convolution driver of
:mod:`numbnn.kernels.binary_conv_driver` with its INT32 transform (the packed runtime calls the same
driver with its other transforms): per block of output pixels the receptive fields are gathered into
a small buffer (1x1 convolutions read x in place), then multiplied tile by tile with the weights'
column panels. The input is never copied in full.
"""

import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, as_pad_value, require_array, words_for
from numbnn.kernels.binary_conv_driver import binary_conv_int32, weight_panels
from numbnn.kernels.geometry import conv_geometry
from numbnn.kernels.padding import border_corrections, tap_weight_sums

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
    pad_value = as_pad_value(pad_value)
    out_channels = w.shape[0]
    if in_channels % groups:
        raise InputError(f"in_channels={in_channels} is not divisible by groups={groups}")
    if out_channels % groups:
        raise InputError(f"w has {out_channels} output channels, not divisible by groups={groups}")
    per_group = in_channels // groups
    group_words = words_for(per_group)
    if x.shape[3] != groups * group_words:
        raise InputError(
            f"x has {x.shape[3]} words per pixel, but in_channels={in_channels} in groups={groups} "
            f"needs {groups}*{group_words}"
        )
    if w.shape[3] != group_words:
        raise InputError(f"w has {w.shape[3]} words per tap, but {per_group} channels per group need {group_words}")
    g = conv_geometry(x.shape[1], x.shape[2], (w.shape[1], w.shape[2]), stride, padding, dilation)
    n = x.shape[0]
    if n == 0 or out_channels == 0:
        return np.zeros((n, g.ho, g.wo, out_channels), dtype=np.int32)
    geometry = tuple(g)
    tap_bits, panels, k = weight_panels(np.ascontiguousarray(w), per_group, groups)
    border_row, correction = border_corrections(x.shape[1], x.shape[2], *geometry, tap_weight_sums(w, per_group), pad_value)
    out = np.empty((n * g.ho * g.wo, out_channels), dtype=np.int32)
    binary_conv_int32(np.ascontiguousarray(x), geometry, tap_bits, panels, k, border_row, correction, out)
    return out.reshape(n, g.ho, g.wo, out_channels)
