"""Input gradient of a binary convolution by table lookup on the weights' signs.

A binary convolution's input gradient is dx = col2im(D), D = G diag(scale) S, with G [N*Ho*Wo, O] the
gradient of the output, scale the per-output-channel alpha and S = sign(W) [O, K] (K = KH*KW*C, the
columns ordered (kh, kw, c) as in :func:`numbnn.kernels.im2col`). BLAS spends one multiply-add per
entry of S and writes D to memory for col2im to read back. Here the +1/-1 matrix S is the right
operand, so the vectors run along 16 rows of G (16 output pixels): for output channels o..o+3 the
signs of S[o:o+4, k] form a 4-bit index b and

    T[b] = sum_{i<4} s_i(b) * scale_{o+i} * G[p:p+16, o+i],    s_i(b) = -1 if bit i of b is set, else +1,

so column k of the 16 pixels is the sum of O/4 looked-up vectors, one load and add each instead of 4
multiply-adds per pixel (the table-lookup products of :mod:`numbnn.kernels.sign_matmul`, there with S
on the left). The offsets of the looked-up entries depend on the weights alone and are computed once
per call (:func:`_lookup_offsets`), so the column loop is loads and adds, four accumulators deep. A
task owns whole images (no two tasks write the same pixel of dx); for each 16 of its pixels it builds
the O/4 tables (15 vector steps each) once and reuses them for all K columns. The blocks of 16 pixels
start at multiples of 16 of the whole batch (a block across two tasks' images is built by both, each
adding its own rows), so every element of dx sums its terms in one order whatever the number of
threads and tasks. Every 16 columns (one tap, 16 channels) are transposed in registers
(:func:`numbnn.kernels.intrinsics.store_transposed16`) and each pixel's 16 values added onto the input
pixel its tap reads: D never exists. Per block, the 16 rows of G are transposed in registers as well
(whole 16x16 blocks), and each pixel's input offset per tap is computed once for all the tap's columns
(0.88x the time with 32 outputs, 0.94-0.98x with 64-128, in a probe on the Intel Xeon, 2026-12-07): for a
pixel whose taps all read real input pixels as its first tap's offset plus the tap's (the pixel coordinates
stepped without divisions), only the border pixels' taps one by one (0.89-0.90x the time on bnn-small's
28x28 maps, 0.95-1.02x on 14x14 and 7x7, whose pixels are more often on the border; probe, 2026-12-07 (morning)). On the zoo's 3x3 shapes with 32-256 output channels per group
this took 0.39-0.65x the time of BLAS on +-1 weights plus col2im at 2 threads; with 16 per group 0.35x,
where the register-tiled kernel of :mod:`numbnn.kernels.conv_input_grad` took 0.28x
(`benchmarks/conv_input_grad.py`, Intel Xeon; docs/performance.md, section "2026-12-07").

Grouped convolutions (``groups=G``, FTBNN's group execution): group g's input channels take only its
O_g = O/G output channels, dx[..., g] = col2im(G_g diag(scale_g) S_g), so each 16-pixel block builds a
group's O_g/4 tables in turn and runs that group's K_g = KH*KW*C/G columns on them.

float32, C/G a multiple of 16 (:func:`fits`); sums run in another order than BLAS's, so results agree
with the BLAS path to float32 rounding (exactly when every partial sum is exact).
"""

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from numbnn.errors import InputError
from numbnn.kernels.conv_input_grad import sign_input_grad_arguments
from numbnn.kernels.geometry import next_pixel, pixel_coordinates
from numbnn.kernels.intrinsics import F16, LANES, add_vector, aligned_zeros, as_int64s, store_transposed16, vector_pointer
from numbnn.kernels.sign_matmul import build_table

TABLE = 16 * LANES  # floats per 4-bit table
LOOKUPS_PER_STEP = 8  # offsets per pass of the column loop (the offset rows are padded to a multiple)
OFFSET_COLUMNS = 64  # columns per task of _lookup_offsets
TASK_PIXELS = 16  # a task's output pixels are a multiple of this where the batch allows (no shared blocks)
_I64 = ir.IntType(64)


def fits(channels: int, groups: int = 1) -> bool:
    """Whether :func:`sign_conv_input_grad` takes a conv: whole 16-float vectors of input channels per group."""
    return channels % groups == 0 and (channels // groups) % LANES == 0


def sign_conv_input_grad(grad, w, input_shape, kernel_size, stride=1, padding=0, dilation=1, groups=1, scale=None,
                         out=None) -> np.ndarray:
    """dx [N, H, W, C] = col2im(grad diag(scale) sign(W)) for a convolution of an ``input_shape`` input with
    OHWI weights ``w`` [O, KH, KW, C/G] (sign(0) = +1) in ``groups`` groups, given the output gradient
    ``grad`` [N*Ho*Wo, O] (float32) and ``scale`` float32 [O] or None (ones); see the module docstring.

    ``out``: a C-contiguous float32 array of ``input_shape``, overwritten and returned.
    """
    grad, w, shape, groups, g, scale, out = sign_input_grad_arguments(grad, w, input_shape, kernel_size, stride, padding,
                                                                      dilation, groups, scale, out)
    n, h, width, c = shape
    o = w.shape[0]
    if not fits(c, groups):
        raise InputError(f"sign_conv_input_grad needs a multiple of {LANES} input channels per group, got {c // groups}")
    _sign_conv_input_grad(grad, scale, _lookup_offsets(w.reshape(o, -1), groups), h, width, c, g.kh, g.kw, g.sh, g.sw,
                          g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, groups, _images_per_task(n, g.ho * g.wo), out)
    return out


def _images_per_task(images: int, pixels: int) -> int:
    """Images per task: enough that a task's pixels fill whole 16-pixel blocks, fewer where the batch
    would then leave fewer than 4 tasks per thread (the speed's choice only: the result does not depend on it)."""
    per_task = TASK_PIXELS // math.gcd(pixels, TASK_PIXELS)
    while per_task > 1 and -(-images // per_task) < 4 * nb.get_num_threads():
        per_task //= 2
    return per_task


@nb.njit(parallel=True, cache=True)
def _lookup_offsets(w, groups):
    """int32 [G*K_g, Q'] for weights w [O, K_g] in G groups, Q = ceil(O_g/4) tables per group and Q' that rounded
    up to LOOKUPS_PER_STEP: entry (g*K_g + k, q) is the float offset of table q's vector for the signs of
    w[g*O_g + 4q : g*O_g + 4q+4, k]; the padding entries point at table Q, all zeros. A task's block of
    OFFSET_COLUMNS columns collects its nibbles reading w along its rows, then writes them out."""
    o, k = w.shape
    per_group = o // groups
    tables = (per_group + 3) // 4
    per_column = (tables + LOOKUPS_PER_STEP - 1) // LOOKUPS_PER_STEP * LOOKUPS_PER_STEP
    offsets = np.empty((groups * k, per_column), dtype=np.int32)
    blocks = (k + OFFSET_COLUMNS - 1) // OFFSET_COLUMNS
    for task in nb.prange(groups * blocks):
        group, k0 = task // blocks, task % blocks * OFFSET_COLUMNS
        width = min(k, k0 + OFFSET_COLUMNS) - k0
        nibbles = np.zeros((per_column, OFFSET_COLUMNS), dtype=np.int32)
        for row in range(per_group):  # views indexed from 0 (k0 + j kept Numba's negative-index test in the loop)
            signs, nibble, shift = w[group * per_group + row, k0:k0 + width], nibbles[row // 4], row % 4
            for j in range(width):
                nibble[j] |= np.int32(signs[j] < 0) << shift
        for j in range(width):
            column = offsets[group * k + k0 + j]
            for q in range(per_column):
                column[q] = (min(q, tables) * 16 + nibbles[q, j]) * LANES
    return offsets


@intrinsic
def _sum_lookups(typingctx, out, at, tables, offsets, first, count):
    """out.flat[at : at+16] = the sum of the table vectors at offsets.flat[first : first+count] (count a
    multiple of 8; four accumulators, so the adds of one column do not wait on each other)."""

    def codegen(context, builder, sig, args):
        at_, first_, count_ = as_int64s(context, builder, (args[1], args[4], args[5]), (sig.args[1], sig.args[4], sig.args[5]))
        offset_data = context.make_array(sig.args[3])(context, builder, args[3]).data
        zero = ir.Constant(F16, [ir.Constant(ir.FloatType(), 0.0)] * LANES)
        sums = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        with cgutils.for_range(builder, builder.udiv(count_, ir.Constant(_I64, LOOKUPS_PER_STEP))) as loop:
            base = builder.add(first_, builder.mul(loop.index, ir.Constant(_I64, LOOKUPS_PER_STEP)))
            vectors = []
            for i in range(LOOKUPS_PER_STEP):
                offset = builder.sext(builder.load(builder.gep(offset_data, [builder.add(base, ir.Constant(_I64, i))])), _I64)
                vectors.append(builder.load(vector_pointer(context, builder, sig.args[2], args[2], offset), align=4))
            for a, total in enumerate(sums):
                builder.store(builder.fadd(builder.load(total), builder.fadd(vectors[2 * a], vectors[2 * a + 1])), total)
        parts = [builder.load(total) for total in sums]
        result = builder.fadd(builder.fadd(parts[0], parts[1]), builder.fadd(parts[2], parts[3]))
        builder.store(result, vector_pointer(context, builder, sig.args[0], args[0], at_), align=4)
        return context.get_dummy_value()

    if not (isinstance(offsets, types.Array) and offsets.dtype == types.int32 and offsets.ndim == 1):
        return None
    return types.none(out, at, tables, offsets, first, count), codegen


@nb.njit(parallel=True, cache=True)
def _sign_conv_input_grad(g, scale, offsets, h, w, c, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, groups, images_per_task,
                          dx):
    n, o = dx.shape[0], g.shape[1]
    per_column = offsets.shape[1]
    per_group, group_channels = o // groups, c // groups
    k = kh * kw * group_channels  # columns per group
    tables = (per_group + 3) // 4
    flat_offsets = offsets.reshape(-1)
    g_flat = g.reshape(-1)
    pixels = ho * wo
    dx_flat = dx.reshape(-1)
    span_h, span_w = (kh - 1) * dh, (kw - 1) * dw  # a pixel's taps reach this far past its first
    tap_steps = np.empty(kh * kw, np.int64)  # dx.flat offset of each tap from the first, for inside pixels
    for tap in range(kh * kw):
        tap_steps[tap] = (tap // kw * dh * w + tap % kw * dw) * c
    for task in nb.prange((n + images_per_task - 1) // images_per_task):
        n0 = task * images_per_task
        n1 = min(n, n0 + images_per_task)
        dx[n0:n1] = 0.0
        scaled = np.zeros((tables * 4, LANES), dtype=np.float32)  # a group's g.T * scale, zero past O_g and the pixels
        flat = scaled.reshape(-1)
        table = aligned_zeros((tables + 1) * TABLE)  # the last table stays zero (the offsets' padding)
        columns = aligned_zeros(LANES * LANES)  # 16 columns' vectors of 16 pixels
        block = aligned_zeros(LANES * LANES)  # their transpose: 16 pixels' rows of 16 columns
        base = np.empty(LANES, np.int64)  # dx.flat offset of each pixel's first tap (channel 0)
        inside = np.empty(LANES, np.bool_)  # whether all of the pixel's taps read real input pixels
        targets = np.empty((kh * kw, LANES), np.int64)  # the other pixels': each tap's offset, -1 in the padding
        p0, p1 = n0 * pixels, n1 * pixels
        for m0 in range(p0 - p0 % LANES, p1, LANES):  # blocks at multiples of 16 of the whole batch's pixels
            first, stop = max(m0, p0) - m0, min(m0 + LANES, p1) - m0  # this task's rows of the block
            if stop - first < LANES:
                scaled[:] = 0.0
            image, oy, ox = pixel_coordinates(m0 + first, ho, wo)
            for i in range(first, stop):  # once per block: every group and 16 channels of a tap scatter there
                top, left = oy * sh - ph, ox * sw - pw
                base[i] = ((image * h + top) * w + left) * c
                inside[i] = top >= 0 and top + span_h < h and left >= 0 and left + span_w < w
                if not inside[i]:
                    for tap in range(kh * kw):
                        iy, ix = top + tap // kw * dh, left + tap % kw * dw
                        targets[tap, i] = ((image * h + iy) * w + ix) * c if 0 <= iy < h and 0 <= ix < w else -1
                image, oy, ox = next_pixel(image, oy, ox, ho, wo)
            for group in range(groups):
                o0 = group * per_group
                if stop - first == LANES and per_group % LANES == 0:  # whole 16x16 blocks of g, transposed in registers
                    for ch0 in range(0, per_group, LANES):
                        store_transposed16(flat, ch0 * LANES, LANES, g_flat, m0 * o + o0 + ch0, o)
                    for ch in range(per_group):
                        factor, row = scale[o0 + ch], scaled[ch]
                        for i in range(LANES):
                            row[i] *= factor
                else:
                    for i in range(first, stop):
                        for ch in range(per_group):
                            scaled[ch, i] = g[m0 + i, o0 + ch] * scale[o0 + ch]
                for q in range(tables):
                    build_table(table, q * TABLE, flat, 4 * q * LANES, LANES)
                for c0 in range(0, k, LANES):
                    column_at = (group * k + c0) * per_column  # this column's first offset
                    for j in range(LANES):
                        _sum_lookups(columns, j * LANES, table, flat_offsets, column_at + j * per_column, per_column)
                    store_transposed16(block, 0, LANES, columns, 0, LANES)
                    tap, ch0 = c0 // group_channels, group * group_channels + c0 % group_channels
                    step = tap_steps[tap]
                    for i in range(first, stop):
                        target = base[i] + step if inside[i] else targets[tap, i]
                        if target >= 0:
                            add_vector(dx_flat, target + ch0, block, i * LANES)
    return dx
