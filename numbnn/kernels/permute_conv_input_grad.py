"""Input gradient of a binary convolution by a variable permute of per-pixel sign tables (AVX-512).

The same dx = col2im(G diag(scale) S) as :mod:`numbnn.kernels.sign_conv_input_grad` (G [N*Ho*Wo, O] the
output gradient, S = sign(W)), with the vectors turned the other way: along 16 input channels of one
input pixel, the layout of dx (NHWC), so every result is added straight onto dx with no transpose.

For output pixel p and the quad of output channels 4q..4q+3 of a group, the 16 signed sums

    T_pq[b] = sum_{i<4} s_i(b) * scale_{4q+i} * G[p, 4q+i],    s_i(b) = -1 if bit i of b is set, else +1,

fill exactly one 16-float vector (a multiply and three fused multiply-adds of broadcast values with
constant +-1 patterns). The weights' signs give, per tap t, input channel c and quad q, the 4-bit code
code[t, c, q] = sum_i [W[4q+i, t, c] < 0] << i, and

    dx[in(p, t), c] += sum_q T_pq[code[t, c, q]],

where in(p, t) is the input pixel tap t of p reads. For 16 consecutive channels the lookup is one
variable permute (VPERMPS on a 512-bit register: lane j of the result is lane code_j of T_pq). So
per output pixel, tap and 16 input channels the kernel does O_g/4 permutes and adds, against O_g
multiply-adds of 16 lanes for a product with +-1 weights (BLAS, or the register-tiled kernel of
:mod:`numbnn.kernels.conv_input_grad`), and no 16x16 transposes or scatter of 16-pixel columns
(:mod:`numbnn.kernels.sign_conv_input_grad`, whose vectors run along pixels).

A call handles PIXELS consecutive output pixels of one image and CHUNK quads of one group, with their
PIXELS x CHUNK tables in registers (16 of the 32): each code vector is loaded once for all PIXELS pixels
(the codes, 9*C*O bytes, are re-read for every pixel group, from L1 or L2). Chunks of 8 quads (32
outputs) and 2 pixels where a group has a multiple of 32 outputs, otherwise 4 quads and 4 pixels; an
image's last pixels, fewer than PIXELS, go one at a time. The taps' offsets in an image are computed
once per call (the same for every image); taps that fall in the padding add onto a scratch vector
instead (a select between two pointers; no branch per pixel). A task owns whole images, walking their
pixel groups, taps and channels in one order: every element of dx sums its terms in the same order
whatever the number of threads.

On the zoo's 3x3 shapes at batch 128 with 16-256 outputs per group this took 0.45-0.90x the time of
the better of the tiled and lookup kernels, on 1x1 shapes from 64 inputs 0.55-0.84x that of BLAS or the
lookup (2 threads, AMD EPYC Zen 4, 2026-12-07; `python3 benchmarks/conv_input_grad.py --threads 2
[--pointwise]`, docs/performance.md).

VPERMPS on 16 lanes needs AVX-512F: LLVM cannot lower the permute for a target without it (it stops
the process), so :func:`available` gates every use on the features Numba compiles for. float32,
O/G and C/G multiples of 16 (:func:`fits`); sums run in another order than BLAS's, so results agree
with the BLAS path to float32 rounding (exactly when every partial sum is exact).
"""

import functools

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

from numbnn.errors import InputError
from numbnn.kernels.conv_input_grad import sign_input_grad_arguments
from numbnn.kernels.intrinsics import F16, LANES, aligned_zeros, as_int64s, vector_pointer

_I64 = ir.IntType(64)
_I32x16 = ir.VectorType(ir.IntType(32), LANES)
_PERMUTE = "llvm.x86.avx512.permvar.sf.512"  # VPERMPS zmm: result[j] = table[index[j] & 15]
# lane b of pattern i: the sign s_i(b) that output 4q+i takes in entry b of a quad's table
_PATTERNS = [[-1.0 if (lane >> i) & 1 else 1.0 for lane in range(LANES)] for i in range(4)]


@functools.cache
def available() -> bool:
    """Whether the code Numba generates here has AVX-512F (NUMBA_CPU_FEATURES if set, else the host's)."""
    features = nb.config.CPU_FEATURES if nb.config.CPU_FEATURES is not None else get_host_cpu_features()
    return "+avx512f" in features.split(",")


def fits(channels: int, outputs: int, groups: int = 1) -> bool:
    """Whether :func:`permute_conv_input_grad` takes a conv: whole 16-float vectors of input and output
    channels per group, on a target with AVX-512F."""
    return (channels % groups == 0 and outputs % groups == 0 and (channels // groups) % LANES == 0
            and (outputs // groups) % LANES == 0 and available())


def permute_conv_input_grad(grad, w, input_shape, kernel_size, stride=1, padding=0, dilation=1, groups=1, scale=None,
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
    if not fits(c, o, groups):
        raise InputError(f"permute_conv_input_grad needs multiples of {LANES} input and output channels per group "
                         f"and AVX-512F, got {c // groups} and {o // groups}"
                         + ("" if available() else " on a target without AVX-512F"))
    _permute_conv_input_grad(grad, scale, _sign_codes(w, groups), h, width, c, g.kh, g.kw, g.sh,
                             g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, groups, out)
    return out


def _aligned(values: np.ndarray) -> np.ndarray:
    """A flat copy of ``values`` whose data starts on a 64-byte boundary (vector loads of it never split a line)."""
    store = np.empty(values.size + LANES, values.dtype)
    skip = (LANES - (store.ctypes.data // values.itemsize) % LANES) % LANES
    aligned = store[skip : skip + values.size]
    aligned[:] = values.reshape(-1)
    return aligned




def _sign_codes(w, groups):
    """int32 [G, KH*KW, C_g/16, O_g/4, 16], 64-byte aligned: entry (g, t, b, q, j) = the 4-bit code of the
    signs of w[g*O_g + 4q : +4, tap t, channel 16b + j] (bit i set for a negative weight of output 4q + i)."""
    o, kh, kw, cg = w.shape
    og = o // groups
    negative = (w < 0).reshape(groups, og // 4, 4, kh * kw, cg // LANES, LANES)
    return _aligned(np.einsum("gqitbj,i->gtbqj", negative.astype(np.int32), np.array([1, 2, 4, 8], np.int32)))


@intrinsic
def _build_tables(typingctx, tables, at, g, g_at, scale, scaled, count):
    """tables.flat[at + 16q : +16] = T_q for q < count (a multiple of 4): lane b = sum_{i<4} s_i(b) * scale[4q+i] *
    g.flat[g_at + 4q+i]. The row's products with the scale go to ``scaled`` first, 16 at a time, so each table
    is a multiply and three fused multiply-adds of broadcast loads with the constant sign patterns."""

    def codegen(context, builder, sig, args):
        at_, g_at_, count_ = as_int64s(context, builder, (args[1], args[3], args[6]), (sig.args[1], sig.args[3], sig.args[6]))
        scaled_data = context.make_array(sig.args[5])(context, builder, args[5]).data
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F16, [F16, F16, F16]), "llvm.fma.v16f32")
        patterns = [ir.Constant(F16, [ir.Constant(ir.FloatType(), v) for v in p]) for p in _PATTERNS]
        broadcast = ir.Constant(_I32x16, [0] * LANES)
        with cgutils.for_range(builder, builder.udiv(count_, ir.Constant(_I64, 4))) as loop:
            offset = builder.mul(loop.index, ir.Constant(_I64, LANES))
            values = builder.load(vector_pointer(context, builder, sig.args[2], args[2], builder.add(g_at_, offset)), align=4)
            factors = builder.load(vector_pointer(context, builder, sig.args[4], args[4], offset), align=4)
            builder.store(builder.fmul(values, factors), vector_pointer(context, builder, sig.args[5], args[5], offset),
                          align=64)
        with cgutils.for_range(builder, count_) as loop:
            first = builder.mul(loop.index, ir.Constant(_I64, 4))
            table = None
            for i in range(4):
                value = builder.load(builder.gep(scaled_data, [builder.add(first, ir.Constant(_I64, i))]))
                vector = builder.insert_element(ir.Constant(F16, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
                vector = builder.shuffle_vector(vector, vector, broadcast)
                table = builder.fmul(vector, patterns[i]) if table is None else builder.call(fma, [vector, patterns[i], table])
            offset = builder.add(at_, builder.mul(loop.index, ir.Constant(_I64, LANES)))
            builder.store(table, vector_pointer(context, builder, sig.args[0], args[0], offset), align=64)
        return context.get_dummy_value()

    return types.none(tables, at, g, g_at, scale, scaled, count), codegen


def _permute_pixels(pixels: int, chunk: int):
    """An intrinsic ``f(dx, scratch, shift, targets, taps, tables, tables_at, table_stride, codes, codes_at,
    tap_stride, blocks, block_stride)`` adding, for p < pixels, t < taps and b < blocks,

        sum_{i < chunk} permute(tables.flat[tables_at + p*table_stride + 16i : +16],
                                codes.flat[codes_at + t*tap_stride + b*block_stride + 16i : +16])

    onto dx.flat[targets[p*taps + t] + shift + 16b : +16], or onto scratch[16b : +16] where that target is
    negative (a tap in the padding). The pixels' chunk tables stay in registers; each code vector is
    loaded once for all pixels."""

    @intrinsic
    def permute_pixels(typingctx, dx, scratch, shift, targets, taps, tables, tables_at, table_stride, codes, codes_at,
                       tap_stride, blocks, block_stride):
        def codegen(context, builder, sig, args):
            shift_, taps_, tables_at_, table_stride_, codes_at_, tap_stride_, blocks_, block_stride_ = as_int64s(
                context, builder, [args[i] for i in (2, 4, 6, 7, 9, 10, 11, 12)],
                [sig.args[i] for i in (2, 4, 6, 7, 9, 10, 11, 12)])
            permute = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F16, [F16, _I32x16]), _PERMUTE)
            dx_data = context.make_array(sig.args[0])(context, builder, args[0]).data
            scratch_data = context.make_array(sig.args[1])(context, builder, args[1]).data
            target_data = context.make_array(sig.args[3])(context, builder, args[3]).data
            code_data = context.make_array(sig.args[8])(context, builder, args[8]).data

            def constant(v):
                return ir.Constant(_I64, v)

            tables_ = [[builder.load(vector_pointer(context, builder, sig.args[5], args[5], builder.add(
                builder.add(tables_at_, builder.mul(table_stride_, constant(p))), constant(LANES * i))), align=64)
                for i in range(chunk)] for p in range(pixels)]
            with cgutils.for_range(builder, taps_) as tap:
                tap_codes = builder.add(codes_at_, builder.mul(tap.index, tap_stride_))
                rows = []
                for p in range(pixels):
                    target = context.cast(builder, builder.load(builder.gep(
                        target_data, [builder.add(builder.mul(constant(p), taps_), tap.index)])), sig.args[3].dtype, types.int64)
                    real = builder.gep(dx_data, [builder.add(target, shift_)])
                    rows.append(builder.select(builder.icmp_signed(">=", target, constant(0)), real, scratch_data))
                with cgutils.for_range(builder, blocks_) as block:
                    block_codes = builder.add(tap_codes, builder.mul(block.index, block_stride_))
                    terms = [[] for _ in range(pixels)]
                    for i in range(chunk):
                        code_pointer = builder.gep(code_data, [builder.add(block_codes, constant(LANES * i))])
                        code = builder.load(builder.bitcast(code_pointer, _I32x16.as_pointer()), align=64)
                        for p in range(pixels):
                            terms[p].append(builder.call(permute, [tables_[p][i], code]))
                    for p in range(pixels):
                        total = terms[p]
                        while len(total) > 1:  # a tree of adds: no long dependency chain
                            total = [builder.fadd(total[j], total[j + 1]) for j in range(0, len(total), 2)]
                        pointer = builder.bitcast(builder.gep(rows[p], [builder.mul(block.index, constant(LANES))]),
                                                  F16.as_pointer())
                        builder.store(builder.fadd(builder.load(pointer, align=4), total[0]), pointer, align=4)
            return context.get_dummy_value()

        signature = types.none(dx, scratch, shift, targets, taps, tables, tables_at, table_stride, codes, codes_at,
                               tap_stride, blocks, block_stride)
        return signature, codegen

    return permute_pixels


_QUADS_4X4, _ONE_4 = _permute_pixels(4, 4), _permute_pixels(1, 4)  # 4 quads (16 outputs) for 4 pixels, or one
_QUADS_8X2, _ONE_8 = _permute_pixels(2, 8), _permute_pixels(1, 8)  # 8 quads (32 outputs) for 2 pixels, or one


@nb.njit(parallel=True, cache=True)
def _permute_conv_input_grad(g, scale, codes, h, w, c, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, groups, dx):
    n, o = dx.shape[0], g.shape[1]
    per_group, group_channels = o // groups, c // groups
    quads, blocks, taps = per_group // 4, group_channels // LANES, kh * kw
    chunk = 8 if per_group % 32 == 0 else 4
    pixels = 2 if chunk == 8 else 4
    tap_stride = blocks * quads * LANES
    g_flat = g.reshape(-1)
    image_pixels = ho * wo
    all_targets = np.empty(image_pixels * taps, np.int64)  # an image's dx offset of each pixel's taps, -1 in the padding
    for pixel in range(image_pixels):
        top, left = pixel // wo * sh - ph, pixel % wo * sw - pw
        for tap in range(taps):
            iy, ix = top + tap // kw * dh, left + tap % kw * dw
            all_targets[pixel * taps + tap] = (iy * w + ix) * c if 0 <= iy < h and 0 <= ix < w else -1
    for image in nb.prange(n):
        dx[image] = 0.0
        dx_image = dx[image].reshape(-1)
        tables = aligned_zeros(pixels * o * 4)  # each pixel's O/4 tables of 16 floats
        scratch = aligned_zeros(c)  # where taps in the padding add
        scaled = aligned_zeros(o)  # a pixel's gradient times the scale
        for first in range(0, image_pixels, pixels):
            count = min(pixels, image_pixels - first)
            for k in range(count):
                _build_tables(tables, k * o * 4, g_flat, (image * image_pixels + first + k) * o, scale, scaled, o // 4)
            targets = all_targets[first * taps :]
            for group in range(groups):
                for q in range(0, quads, chunk):
                    tables_at, codes_at = (group * quads + q) * LANES, group * taps * tap_stride + q * LANES
                    if count == pixels and chunk == 8:
                        _QUADS_8X2(dx_image, scratch, group * group_channels, targets, taps, tables, tables_at, o * 4,
                                   codes, codes_at, tap_stride, blocks, quads * LANES)
                    elif count == pixels:
                        _QUADS_4X4(dx_image, scratch, group * group_channels, targets, taps, tables, tables_at, o * 4,
                                   codes, codes_at, tap_stride, blocks, quads * LANES)
                    else:
                        for k in range(count):
                            one = targets[k * taps : (k + 1) * taps]
                            at = k * o * 4 + tables_at
                            if chunk == 8:
                                _ONE_8(dx_image, scratch, group * group_channels, one, taps, tables, at, o * 4, codes,
                                       codes_at, tap_stride, blocks, quads * LANES)
                            else:
                                _ONE_4(dx_image, scratch, group * group_channels, one, taps, tables, at, o * 4, codes,
                                       codes_at, tap_stride, blocks, quads * LANES)
    return dx
