"""Input gradient of a grouped convolution: each group's product kept in registers and scattered onto x.

With G groups, C_g = C/G input and O_g = O/G output channels per group and K_g = KH*KW*C_g columns per
group (ordered (kh, kw, c) as in :func:`numbnn.kernels.im2col`), the input gradient is

    dx = col2im(D),   D[:, g*K_g:(g+1)*K_g] = G[:, g*O_g:(g+1)*O_g] @ W_g,   W_g = w[g*O_g:(g+1)*O_g] as [O_g, K_g]

with G [N*Ho*Wo, O] the output gradient. Done with BLAS and col2im (:func:`numbnn.functional.conv.
blocked_backward`), each group's product has an inner dimension of only O_g (16 to 64 in FTBNN's
groups of 4, 32 in the first convs of bnn-small and ReActNet-A): little arithmetic per value of D,
which is written to memory whole and read back by col2im, and thin products that BLAS runs far below
its rate on square ones.

Here one task per image walks its output pixels in tiles of ROWS = 6 pixels. For one group and 48
columns (3 vectors of 16 floats) a tile keeps its 6 x 3 sums in 18 vector registers: per output
channel o of the group, the 6 pixels' gradients G[p, o] are broadcast and multiplied (FMA) into
the 3 weight vectors W_g[o, k:k+48], so 9 loads feed 18 multiply-adds and no sum leaves a register
until all O_g channels are in. The tile's 6 x K sums (every group's) go to a small buffer, and each
pixel's taps are then added onto the input pixels they read, all groups' C_g values of a tap at once
(16-float vector adds when C_g allows), within the image the task owns (no two tasks write the same
pixel). The tile shape was chosen on FTBNN's layers (2 threads, Intel Xeon,
2026-12-06): 6 x 3 ran those 1.0-2.8x faster than BLAS + col2im; 2 x 9, 4 x 3 and 8 x 3 were
slower or no faster.

float32 only, and K_g a multiple of 16 (:func:`fits`); sums run in another order than BLAS's, so
results agree with the BLAS path to float32 rounding (exactly when every product and partial sum is
exact, e.g. integer gradients and +-1 weights).
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from numbnn.errors import InputError
from numbnn.kernels._checks import as_groups, as_shape4, out_array, require_array
from numbnn.kernels.geometry import conv_geometry
from numbnn.kernels.intrinsics import F16, LANES, add_vector, as_int64s, vector_pointer

ROWS = 6  # output pixels per tile
VECTORS = 3  # 16-float column vectors per tile
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def fits(kernel_size: tuple[int, int], channels: int, groups: int) -> bool:
    """Whether a group's K_g = KH*KW*C/G columns are whole 16-float vectors, as :func:`conv_input_grad` needs."""
    return (kernel_size[0] * kernel_size[1] * (channels // groups)) % LANES == 0


def conv_input_grad(grad, w, input_shape, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                    out=None) -> np.ndarray:
    """dx [N, H, W, C] of a convolution of an ``input_shape`` input with OHWI weights ``w`` [O, KH, KW, C/G],
    given the output gradient ``grad`` [N*Ho*Wo, O] (float32 both; see the module docstring).

    ``out``: a C-contiguous float32 array of ``input_shape``, overwritten and returned.
    """
    grad, w, shape, groups, g = input_grad_arguments(grad, w, input_shape, kernel_size, stride, padding, dilation, groups,
                                                     (np.float32,))
    c, o = shape[3], w.shape[0]
    if not fits((g.kh, g.kw), c, groups):
        raise InputError(f"conv_input_grad needs KH*KW*C/groups to be a multiple of {LANES}, "
                         f"got {g.kh}*{g.kw}*{c // groups}")
    out = out_array(out, shape, np.float32)
    _conv_input_grad(grad, w.reshape(o, -1), g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, out, groups)
    return out


def input_grad_arguments(grad, w, input_shape, kernel_size, stride, padding, dilation, groups, w_dtypes):
    """The checked arguments of an input-gradient kernel: (grad float32 [N*Ho*Wo, O], w [O, KH, KW, C/G] of one
    of ``w_dtypes``, input_shape as 4 ints, groups, the conv geometry)."""
    grad = require_array(grad, "grad", (np.float32,), ndim=2)
    w = require_array(w, "w", w_dtypes, ndim=4)
    n, h, width, c = shape = as_shape4(input_shape)
    groups = as_groups(groups, c, "input_shape")
    g = conv_geometry(h, width, kernel_size, stride, padding, dilation, input_name="input_shape")
    o = w.shape[0]
    if o % groups or w.shape[1:] != (g.kh, g.kw, c // groups):
        raise InputError(f"w must have shape (O, {g.kh}, {g.kw}, {c // groups}) with O divisible by groups={groups}, "
                         f"got {w.shape}")
    if grad.shape != (n * g.ho * g.wo, o):
        raise InputError(f"grad must have shape {(n * g.ho * g.wo, o)}, got {grad.shape}")
    return grad, w, shape, groups, g


def sign_input_grad_arguments(grad, w, input_shape, kernel_size, stride, padding, dilation, groups, scale, out):
    """The checked arguments of an input-gradient kernel on scale_o * sign(W): those of
    :func:`input_grad_arguments` (w float32 or float64), then ``scale`` (float32 [O], ones for None) and ``out``."""
    grad, w, shape, groups, g = input_grad_arguments(grad, w, input_shape, kernel_size, stride, padding, dilation, groups,
                                                     (np.float32, np.float64))
    o = w.shape[0]
    if scale is None:
        scale = np.ones(o, np.float32)
    scale = require_array(scale, "scale", (np.float32,), ndim=1)
    if scale.shape != (o,):
        raise InputError(f"scale must have shape ({o},), got {scale.shape}")
    return grad, w, shape, groups, g, np.ascontiguousarray(scale), out_array(out, shape, np.float32)


def _tile_product(rows: int, vectors: int):
    """An intrinsic ``f(out, at, out_stride, g, g_at, g_stride, w, w_at, w_stride, count)`` writing, for
    r < rows and k < 16*vectors, out.flat[at + r*out_stride + k] = sum_{o < count} g.flat[g_at + r*g_stride + o]
    * w.flat[w_at + o*w_stride + k]: the rows x vectors sums stay in registers (alloca'd vectors that
    LLVM promotes) through the loop over o. No bounds checks: the caller keeps every index in range."""

    @intrinsic
    def product(typingctx, out, at, out_stride, g, g_at, g_stride, w, w_at, w_stride, count):
        def codegen(context, builder, sig, args):
            at_, out_stride_, g_at_, g_stride_, w_at_, w_stride_, count_ = as_int64s(
                context, builder, [args[i] for i in (1, 2, 4, 5, 7, 8, 9)], [sig.args[i] for i in (1, 2, 4, 5, 7, 8, 9)])
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F16, [F16] * 3), "llvm.fma.v16f32")
            zero = ir.Constant(F16, [ir.Constant(ir.FloatType(), 0.0)] * LANES)
            sums = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)] for _ in range(rows)]
            first_lane = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
            g_data = context.make_array(sig.args[3])(context, builder, args[3]).data
            with cgutils.for_range(builder, count_) as loop:
                o = loop.index
                broadcasts = []
                for r in range(rows):
                    at_g = builder.add(builder.add(g_at_, builder.mul(ir.Constant(_I64, r), g_stride_)), o)
                    one = builder.insert_element(ir.Constant(F16, ir.Undefined), builder.load(builder.gep(g_data, [at_g])),
                                                 ir.Constant(_I32, 0))
                    broadcasts.append(builder.shuffle_vector(one, ir.Constant(F16, ir.Undefined), first_lane))
                row_at = builder.add(w_at_, builder.mul(o, w_stride_))
                for v in range(vectors):
                    weights = builder.load(vector_pointer(context, builder, sig.args[6], args[6],
                                                          builder.add(row_at, ir.Constant(_I64, v * LANES))), align=4)
                    for r in range(rows):
                        builder.store(builder.call(fma, [broadcasts[r], weights, builder.load(sums[r][v])]), sums[r][v])
            for r in range(rows):
                row_out = builder.add(at_, builder.mul(ir.Constant(_I64, r), out_stride_))
                for v in range(vectors):
                    target = vector_pointer(context, builder, sig.args[0], args[0], builder.add(row_out, ir.Constant(_I64, v * LANES)))
                    builder.store(builder.load(sums[r][v]), target, align=4)
            return context.get_dummy_value()

        return types.none(out, at, out_stride, g, g_at, g_stride, w, w_at, w_stride, count), codegen

    return product


_tile = _tile_product(ROWS, VECTORS)
_tile_one_vector = _tile_product(ROWS, 1)
_row = _tile_product(1, VECTORS)
_row_one_vector = _tile_product(1, 1)


@nb.njit(inline="always")
def _group_products(buf, at, stride, k_group, g, g_at, o_all, w, w_at, o_group, rows):
    """buf[at + r*stride : +k_group] = G[pixel r, the group's channels] @ W_g for the ``rows`` pixels whose
    gradients start at g_at (ROWS pixels as tiles, fewer one by one)."""
    width = VECTORS * LANES
    if rows == ROWS:
        k = 0
        while k + width <= k_group:
            _tile(buf, at + k, stride, g, g_at, o_all, w, w_at + k, k_group, o_group)
            k += width
        while k < k_group:
            _tile_one_vector(buf, at + k, stride, g, g_at, o_all, w, w_at + k, k_group, o_group)
            k += LANES
        return
    for r in range(rows):
        k = 0
        while k + width <= k_group:
            _row(buf, at + r * stride + k, stride, g, g_at + r * o_all, o_all, w, w_at + k, k_group, o_group)
            k += width
        while k < k_group:
            _row_one_vector(buf, at + r * stride + k, stride, g, g_at + r * o_all, o_all, w, w_at + k, k_group, o_group)
            k += LANES


@nb.njit(parallel=True, cache=True)
def _conv_input_grad(grad, w2, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, dx, groups):
    n_img, h, w, c = dx.shape
    o_all = grad.shape[1]
    c_group, o_group = c // groups, o_all // groups
    k_group = kh * kw * c_group
    k_all = groups * k_group
    g, weights, flat = grad.reshape(-1), w2.reshape(-1), dx.reshape(-1)
    pixels = ho * wo
    for n in nb.prange(n_img):
        dx[n] = 0
        buf = np.empty(ROWS * k_all, dtype=np.float32)  # the tile's columns, group-major as im2col's
        for p0 in range(0, pixels, ROWS):
            rows = min(ROWS, pixels - p0)
            for grp in range(groups):
                _group_products(buf, grp * k_group, k_all, k_group, g, (n * pixels + p0) * o_all + grp * o_group, o_all,
                                weights, grp * o_group * k_group, o_group, rows)
            for r in range(rows):  # col2im of the tile: each tap's C_g values per group onto the pixel it read
                oy, ox = (p0 + r) // wo, (p0 + r) % wo
                for i in range(kh):
                    iy = oy * sh - ph + i * dh
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = ox * sw - pw + j * dw
                        if ix < 0 or ix >= w:
                            continue
                        at = ((n * h + iy) * w + ix) * c
                        src = r * k_all + (i * kw + j) * c_group
                        for grp in range(groups):
                            if c_group % LANES == 0:  # whole vectors (every 3x3 conv here)
                                for v in range(0, c_group, LANES):
                                    add_vector(flat, at + v, buf, src + v)
                            else:  # unsigned indices: vectorised (see numbnn.kernels.im2col._copy_run)
                                for ch in range(np.uint64(c_group)):
                                    flat[np.uint64(at) + ch] += buf[np.uint64(src) + ch]
                            at += c_group
                            src += k_group
    return dx
