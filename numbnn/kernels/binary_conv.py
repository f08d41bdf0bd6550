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

Layout (indirect convolution, as in XNNPack/LCE's indirect BGEMM). The receptive field of one
output pixel is KH runs, one per kernel row, of KW*W_g words each, in word order (kh, kw, word), the
order of the reshaped weight. With dilation 1 and one group a run is contiguous in x, so for
interior pixels the tiled micro-kernel (:mod:`numbnn.kernels.tiles`) reads it in place through a
table of run offsets; only runs touching the padding (or strided by dilation/groups) are copied into
a small per-task buffer, with zero words for the padding taps. The input is never copied in full.
Each parallel task takes PIXEL_BLOCK consecutive output pixels (over n, oy, ox) and sweeps every
weight panel with them.
"""

import numba as nb
import numpy as np

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, as_pad_value, require_array, words_for
from numbnn.kernels.geometry import conv_geometry, next_pixel, pixel_coordinates
from numbnn.kernels.padding import add_border_corrections, border_corrections, tap_weight_sums
from numbnn.kernels.tiles import TILE_COLS, TILE_ROWS, column_panels, column_splits, tile_dot_runs


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
    group_words = words_for(in_channels // groups)
    if x.shape[3] != groups * group_words:
        raise InputError(
            f"x has {x.shape[3]} words per pixel, but in_channels={in_channels} in groups={groups} "
            f"needs {groups}*{group_words}"
        )
    if w.shape[3] != group_words:
        raise InputError(f"w has {w.shape[3]} words per tap, but {in_channels // groups} channels per group need {group_words}")
    g = conv_geometry(x.shape[1], x.shape[2], (w.shape[1], w.shape[2]), stride, padding, dilation)
    if x.shape[0] == 0 or w.shape[0] == 0:  # nothing to compute (the task split divides by the pixel blocks)
        return np.zeros((x.shape[0], g.ho, g.wo, w.shape[0]), dtype=np.int32)
    return _binary_conv2d(
        x, w, in_channels // groups, groups, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, pad_value, nb.get_num_threads()
    )


# Output pixels per parallel task; their receptive fields stay in L1/L2 while the tiles sweep every
# weight panel.
PIXEL_BLOCK = 16 * TILE_ROWS


@nb.njit(parallel=True, cache=True)
def _binary_conv2d(x, w, channels, groups, sh, sw, ph, pw, dh, dw, ho, wo, pad_value, threads):
    n_img = x.shape[0]
    out_channels, kh, kw, n_words = w.shape
    panels = _group_panels(w.reshape(out_channels, kh * kw * n_words), groups)
    border_row, correction = border_corrections(
        x.shape[1], x.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, tap_weight_sums(w, channels), pad_value
    )
    pixels = n_img * ho * wo
    out = np.empty((pixels, out_channels), dtype=np.int32)
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)
    blocks = (pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    splits = column_splits(blocks, panels.shape[0] // groups, threads)
    for task in nb.prange(blocks * splits):
        first = (task // splits) * PIXEL_BLOCK
        _conv_pixel_block(x, panels, border_row, correction, channels, groups, geometry, out, first, task % splits, splits)
    return out.reshape(n_img, ho, wo, out_channels)


@nb.njit(cache=True)
def _conv_pixel_block(x, panels, border_row, correction, channels, groups, geometry, out, first, split, splits):
    """Output pixels first .. first+PIXEL_BLOCK-1 (fewer at the end); of each group's column panels
    the ones numbered split, split+splits, ... (and their padding corrections)."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    out_channels = out.shape[1]
    per_group = out_channels // groups
    panels_per_group = panels.shape[0] // groups
    n_words = x.shape[3] // groups
    run_words = kw * n_words
    k_bits = kh * kw * channels
    count = min(PIXEL_BLOCK, out.shape[0] - first)
    source = x.reshape(-1)
    offsets = np.empty((PIXEL_BLOCK, kh), dtype=np.int64)
    gathered = np.zeros((PIXEL_BLOCK * kh + 1) * run_words, dtype=np.uint64)  # last run: all zero
    edge = np.empty((TILE_ROWS, TILE_COLS), dtype=np.int32)
    for g in range(groups):
        _locate_runs(x, first, count, g * n_words, n_words, geometry, offsets, gathered)
        for q in range(split, panels_per_group, splits):
            panel = g * panels_per_group + q
            col0 = g * per_group + q * TILE_COLS
            cols = min(TILE_COLS, per_group - q * TILE_COLS)
            for tile in range(0, count, TILE_ROWS):
                if tile + TILE_ROWS <= count and cols == TILE_COLS:
                    tile_dot_runs(source, gathered, offsets, tile, run_words, panels, panel, k_bits, out, first + tile, col0)
                else:  # edge tile: compute into scratch, keep the part inside `out`
                    tile_dot_runs(source, gathered, offsets, tile, run_words, panels, panel, k_bits, edge, 0, 0)
                    for r in range(min(TILE_ROWS, count - tile)):
                        for c in range(cols):
                            out[first + tile + r, col0 + c] = edge[r, c]
            add_border_corrections(out, first, first, count, ho * wo, border_row, correction, col0, col0 + cols)


@nb.njit(cache=True)
def _group_panels(w_rows, groups):
    """Weight panels of every group, group after group: [groups * panels_per_group, field_words, TILE_COLS]."""
    per_group = w_rows.shape[0] // groups
    per = (per_group + TILE_COLS - 1) // TILE_COLS
    panels = np.empty((groups * per, w_rows.shape[1], TILE_COLS), dtype=np.uint64)
    for g in range(groups):
        panels[g * per : (g + 1) * per] = column_panels(w_rows[g * per_group : (g + 1) * per_group])
    return panels


@nb.njit(inline="always")
def _locate_runs(x, first, count, first_word, n_words, geometry, offsets, gathered):
    """Where each kernel row's run of kw*n_words words lives, for output pixels first .. first+count-1.

    offsets[i, a] >= 0: the run is contiguous in x (flat index), as for every interior pixel with
    dilation 1 and one group (or 1-wide kernels). Otherwise the run is copied into `gathered` with
    padding taps as zero words (+1), and offsets[i, a] = -(its start) - 1; kernel rows wholly in the
    padding and rows past `count` point at the all-zero last run."""
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = geometry
    h, width, pixel_words = x.shape[1], x.shape[2], x.shape[3]
    source = x.reshape(-1)
    run_words = kw * n_words
    zero_run = -(PIXEL_BLOCK * kh * run_words) - 1
    contiguous = kw == 1 or (dw == 1 and n_words == pixel_words)
    n, oy, ox = pixel_coordinates(first, ho, wo)
    for i in range(PIXEL_BLOCK):
        for a in range(kh):
            iy = oy * sh - ph + a * dh
            ix0 = ox * sw - pw
            if i >= count or iy < 0 or iy >= h:
                offsets[i, a] = zero_run
            elif contiguous and ix0 >= 0 and ix0 + (kw - 1) * dw < width:
                offsets[i, a] = ((n * h + iy) * width + ix0) * pixel_words + first_word
            else:
                start = (i * kh + a) * run_words
                for b in range(kw):
                    ix = ix0 + b * dw
                    inside = 0 <= ix < width
                    src = ((n * h + iy) * width + ix) * pixel_words + first_word
                    for t in range(n_words):
                        gathered[start + b * n_words + t] = source[src + t] if inside else np.uint64(0)
                offsets[i, a] = -start - 1
        n, oy, ox = next_pixel(n, oy, ox, ho, wo)
