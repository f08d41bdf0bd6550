"""Float 2-D convolution on NHWC activations and OHWI weights.

With ``cols = im2col(x)`` ([N*Ho*Wo, KH*KW*C], columns ordered (kh, kw, c)) and the weight viewed
as ``W = w.reshape(O, KH*KW*C_in/groups)``, a convolution is one BLAS product per group::

    out = cols @ W.T            dW = grad.T @ cols            dx = col2im(grad @ W)

since col2im is the adjoint of im2col. With G groups im2col writes the columns group-major, (g, kh,
kw, c), so each group's products read and write strided 2-D views (K_g = KH*KW*C/G, O_g = O/G)::

    out[:, O_g-block g] = cols[:, K_g-block g] @ W[O_g-block g].T      (likewise dW_g and dcols_g)

each a :func:`numbnn.kernels.gemm.matmul` (split over threads), with no reordering copy. The
products run a few images at a time (see ``BLOCK_ROWS``) and the backward recomputes each block's
columns instead of keeping them. A 1x1 kernel without padding needs no im2col (a reshape, or a
strided slice for stride > 1). Convolutions with one input channel per group (depthwise, depthwise
with a channel multiplier, and the 1-channel stems of the FashionMNIST models) are computed tap by
tap instead (:mod:`numbnn.kernels.depthwise`), which avoids a GEMM whose inner dimension is only KH*KW. A spatial convolution
with few output channels per group (O_g <= 64, grouped or not) whose groups give whole vectors of
columns (float32, K_g a multiple of 16) takes its input gradient from
:func:`numbnn.kernels.conv_input_grad.conv_input_grad` instead of the dcols products and col2im:
their inner dimension is only O_g, and the kernel keeps those sums in registers and scatters them
onto dx directly.

The helpers here (geometry, columns and their adjoint, grouped products) are shared with the binary
convolution in :mod:`numbnn.functional.binary`, whose backward is an ordinary float convolution.
"""

from typing import NamedTuple

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.kernels import gemm
from numbnn.kernels import col2im, im2col
from numbnn.kernels.conv_input_grad import conv_input_grad, fits as _fits_conv_input_grad
from numbnn.kernels.depthwise import depthwise_conv2d, depthwise_conv2d_grads
from numbnn.kernels.geometry import ConvGeometry, conv_geometry


class ConvShape(NamedTuple):
    """Validated shapes of a grouped NHWC/OHWI convolution."""

    n: int
    h: int
    w: int
    c: int  # input channels
    o: int  # output channels
    groups: int
    geom: ConvGeometry

    @property
    def rows(self) -> int:  # output pixels: rows of the column matrix
        return self.n * self.geom.ho * self.geom.wo

    @property
    def out_shape(self) -> tuple:
        return (self.n, self.geom.ho, self.geom.wo, self.o)


def conv_shape(x_shape, w_shape, stride, padding, dilation, groups) -> ConvShape:
    """Check x [N,H,W,C] against w [O,KH,KW,C/groups] and the conv arguments; InputError if inconsistent."""
    if len(x_shape) != 4:
        raise InputError(f"x must be NHWC (rank 4), got shape {tuple(x_shape)}")
    if len(w_shape) != 4:
        raise InputError(f"w must be OHWI (rank 4), got shape {tuple(w_shape)}")
    check_int(groups, "groups")
    n, h, w, c = x_shape
    o, kh, kw, cg = w_shape
    if c != cg * groups:
        raise InputError(f"x has {c} channels but w expects {cg} per group x {groups} groups = {cg * groups}")
    if o % groups:
        raise InputError(f"w has {o} output channels, not divisible by groups={groups}")
    geom = conv_geometry(h, w, (kh, kw), stride, padding, dilation)
    return ConvShape(n, h, w, c, o, int(groups), geom)


def _is_pointwise(g: ConvGeometry) -> bool:
    return g.kh == g.kw == 1 and g.ph == g.pw == 0


def columns(x: np.ndarray, s: ConvShape, out=None) -> np.ndarray:
    """The im2col matrix of x [N*Ho*Wo, KH*KW*C], group-major (a reshape or strided copy for 1x1 kernels,
    whose (group, channel) order is the channel order).

    ``out``: a [N*Ho*Wo, KH*KW*C] buffer the im2col is written into (1x1 kernels do not use it).
    """
    g = s.geom
    if _is_pointwise(g):
        if g.sh == g.sw == 1:
            return x.reshape(-1, s.c)
        return np.ascontiguousarray(x[:, :: g.sh, :: g.sw]).reshape(-1, s.c)
    return im2col(x, (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw), out=out, groups=s.groups)


def columns_adjoint(dcols: np.ndarray, s: ConvShape, out=None) -> np.ndarray:
    """Adjoint of :func:`columns`: the gradient wrt x [N,H,W,C] of a gradient wrt the columns.

    ``out``: a C-contiguous [N,H,W,C] array the result is written into (else a new one or a view).
    """
    g = s.geom
    shape = (s.n, s.h, s.w, s.c)
    if _is_pointwise(g):
        if g.sh == g.sw == 1 and out is None:
            return dcols.reshape(shape)
        dx = np.zeros(shape, dtype=dcols.dtype) if out is None else out
        if g.sh == g.sw == 1:
            dx[...] = dcols.reshape(shape)
        else:
            dx[...] = 0
            dx[:, :: g.sh, :: g.sw] = dcols.reshape(s.n, g.ho, g.wo, s.c)
        return dx
    return col2im(np.ascontiguousarray(dcols), shape, (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw), out=out,
                  groups=s.groups)


def group_blocks(s: ConvShape, k: int):
    """Per group, (its column slice of the [M, k] group-major columns, its slice of the O output channels)."""
    kg, og = k // s.groups, s.o // s.groups
    return [(slice(i * kg, (i + 1) * kg), slice(i * og, (i + 1) * og)) for i in range(s.groups)]


def grouped_forward(cols: np.ndarray, w: np.ndarray, s: ConvShape) -> np.ndarray:
    """out [M, O] = per group, cols_g @ W_g.T, each written straight into its channels of out."""
    w2 = w.reshape(s.o, -1)
    out = np.empty((s.rows, s.o), dtype=np.result_type(cols, w2))
    for k_block, o_block in group_blocks(s, cols.shape[1]):
        gemm.matmul(cols[:, k_block], w2[o_block].T, out=out[:, o_block])
    return out


def grouped_backward(grad2: np.ndarray, cols, w: np.ndarray, s: ConvShape, need_cols: bool, need_w: bool,
                     dcols_out=None):
    """Gradients of :func:`grouped_forward` wrt the columns [M, K] and the weight (w's shape).

    ``dcols_out``: an [M, K] buffer the column gradient is written into.
    """
    w2 = w.reshape(s.o, -1)
    dcols = dw = None
    if need_cols:
        dcols = dcols_out
        if dcols is None:
            dcols = np.empty((s.rows, s.groups * w2.shape[1]), dtype=np.result_type(grad2, w2))
        for k_block, o_block in group_blocks(s, dcols.shape[1]):
            gemm.matmul(grad2[:, o_block], w2[o_block], out=dcols[:, k_block])
    if need_w:  # as cols.T @ grad2 (transposed back): OpenBLAS runs this layout faster for narrow O
        dw = np.empty(w2.shape, dtype=np.result_type(grad2, cols))
        for k_block, o_block in group_blocks(s, cols.shape[1]):
            dw[o_block] = gemm.matmul(cols[:, k_block].T, grad2[:, o_block]).T
        dw = dw.reshape(w.shape)
    return dcols, dw


# Column matrices are built and consumed a few images at a time: a block of at most BLOCK_ROWS output
# pixels and BLOCK_COLUMN_VALUES column entries keeps its [rows, KH*KW*C] columns in cache between
# im2col and the GEMM instead of writing the whole-batch matrix to memory and reading it back, and the
# large column buffers never exist. On the 28x28x32 3x3 layer at batch 128 this cut the backward's CPU
# time 1.7x (single thread); larger blocks mean fewer calls, each with its argument checks and thread
# wake-up. The entry budget halves the rows of wide column matrices only: a [128,14,14,256] 3x3 conv
# (K = 2304) took 14% less CPU per fwd+bwd with groups=4 in blocks of 2048 rows than of 4096, while
# columns up to K = 1152 (every 3x3 conv of reactnet-a) keep 4096 rows, so their sums keep their order.
BLOCK_ROWS = 4096
BLOCK_COLUMN_VALUES = 4096 * 1152


def image_blocks(s: ConvShape):
    """(first, stop) image ranges within both block budgets (one range for 1x1 kernels)."""
    pixels, width = s.geom.ho * s.geom.wo, s.geom.kh * s.geom.kw * s.c
    rows = min(BLOCK_ROWS, BLOCK_COLUMN_VALUES // width)
    per_block = s.n if _is_pointwise(s.geom) else max(1, rows // pixels)
    return [(n0, min(n0 + per_block, s.n)) for n0 in range(0, s.n, per_block)]


def blocked_forward(x: np.ndarray, w: np.ndarray, s: ConvShape) -> np.ndarray:
    """conv of x with w as [N*Ho*Wo, O], block by block."""
    out = np.empty((s.rows, s.o), dtype=np.result_type(x, w))
    pixels = s.geom.ho * s.geom.wo
    for n0, n1 in image_blocks(s):
        block = s._replace(n=n1 - n0)
        out[n0 * pixels : n1 * pixels] = grouped_forward(columns(x[n0:n1], block), w, block)
    return out


# The register-tiled input gradient is taken up to this many output channels per group (the inner
# dimension of BLAS's dcols product). Measured on 2 threads (Intel Xeon, 2026-12-06; docs/performance.md):
# 0.32-0.89x BLAS + col2im's time at O_g = 16-64 and 0.86-1.09x at O_g = 128 (benchmarks/conv_input_grad.py).
TILED_INPUT_GRAD_MAX_OUTPUTS = 64


def _tiled_input_grad(grad2, w, s: ConvShape) -> bool:
    """Whether dx comes from the register-tiled kernel (module docstring): spatial float32 convs with at
    most TILED_INPUT_GRAD_MAX_OUTPUTS output channels per group and whole vectors of columns per group."""
    g = s.geom
    return (g.kh * g.kw > 1 and s.o // s.groups <= TILED_INPUT_GRAD_MAX_OUTPUTS
            and grad2.dtype == w.dtype == np.float32 and _fits_conv_input_grad((g.kh, g.kw), s.c, s.groups))


def blocked_backward(grad2, block_columns, w, s: ConvShape, need_x: bool, need_w: bool, cols_dtype=None):
    """dx [N,H,W,C] and dw of a convolution, block by block.

    ``block_columns(n0, n1, block_shape, out)`` returns the column matrix of images n0:n1 (the
    forward's im2col, recomputed here rather than kept from the forward pass), built in ``out`` when
    it is not None (an array of ``cols_dtype``, default grad2's). With several blocks, one column
    buffer and one column-gradient buffer serve every block, and each block's input gradient is
    written straight into its images' slice of dx.
    """
    if s.n == 0:  # an empty batch: nothing flows back
        return (np.zeros((0, s.h, s.w, s.c), grad2.dtype) if need_x else None), \
            (np.zeros(w.shape, np.result_type(grad2, w)) if need_w else None)
    if need_x and _tiled_input_grad(grad2, w, s):
        g = s.geom
        dx = conv_input_grad(grad2, w, (s.n, s.h, s.w, s.c), (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw),
                             s.groups)
        return dx, (blocked_backward(grad2, block_columns, w, s, False, True, cols_dtype)[1] if need_w else None)
    blocks = image_blocks(s)
    if len(blocks) == 1:
        cols = block_columns(0, s.n, s, None) if need_w else None
        dcols, dw = grouped_backward(grad2, cols, w, s, need_x, need_w)
        return (columns_adjoint(dcols, s) if need_x else None), dw
    dx = np.empty((s.n, s.h, s.w, s.c), dtype=grad2.dtype) if need_x else None
    dw = np.zeros(w.shape, dtype=np.result_type(grad2, w)) if need_w else None
    pixels = s.geom.ho * s.geom.wo
    rows, width = (blocks[0][1] - blocks[0][0]) * pixels, s.geom.kh * s.geom.kw * s.c
    cols_buffer = np.empty((rows, width), dtype=cols_dtype or grad2.dtype) if need_w and not _is_pointwise(s.geom) else None
    dcols_buffer = np.empty((rows, width), dtype=np.result_type(grad2, w)) if need_x else None
    for n0, n1 in blocks:
        block = s._replace(n=n1 - n0)
        m = block.rows
        cols = block_columns(n0, n1, block, None if cols_buffer is None else cols_buffer[:m]) if need_w else None
        dcols, dw_block = grouped_backward(grad2[n0 * pixels : n1 * pixels], cols, w, block, need_x, need_w,
                                           None if dcols_buffer is None else dcols_buffer[:m])
        if need_w:
            dw += dw_block
        if need_x:
            columns_adjoint(dcols, block, out=dx[n0:n1])
    return dx, dw


class Conv2d(Function):
    """Grouped convolution through im2col + GEMM (see the module docstring for the math)."""

    @staticmethod
    def forward(ctx, x, w, bias, stride, padding, dilation, groups):
        s = conv_shape(x.shape, w.shape, stride, padding, dilation, groups)
        out = blocked_forward(x, w, s)
        if bias is not None:
            out += bias
        ctx.shape = s
        ctx.save_for_backward(x, w)
        return out.reshape(s.out_shape)

    @staticmethod
    def backward(ctx, grad):
        s = ctx.shape
        x, w = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        grad2 = np.ascontiguousarray(grad).reshape(s.rows, s.o)
        dx, dw = blocked_backward(grad2, lambda n0, n1, block, out: columns(x[n0:n1], block, out), w, s, need_x, need_w,
                                  cols_dtype=x.dtype)
        db = grad2.sum(axis=0) if need_b else None
        return dx, dw, db


class DepthwiseConv2d(Function):
    """Convolution with one input channel per group (w [C*m, KH, KW, 1]).

    out[n, y, x, c*m + j] = sum_{i,k} xpad[n, y*sh + i*dh, x*sw + k*dw, c] * w[c*m + j, i, k, 0]

    The forward pass is the kernel :func:`numbnn.kernels.depthwise.depthwise_conv2d` (shift-and-add
    order, the one the packed runtime calls too); the backward pass is
    :func:`numbnn.kernels.depthwise.depthwise_conv2d_grads` (one pass per image over the output pixels).
    """

    @staticmethod
    def forward(ctx, x, w, bias, stride, padding, dilation, groups):
        s = conv_shape(x.shape, w.shape, stride, padding, dilation, groups)
        dtype = np.result_type(x, w)
        out = depthwise_conv2d(x.astype(dtype, copy=False), w.astype(dtype, copy=False), stride, padding, dilation)
        if bias is not None:
            out += bias
        ctx.shape = s
        ctx.save_for_backward(x, w)
        return out

    @staticmethod
    def backward(ctx, grad):
        s = ctx.shape
        g = s.geom
        x, w = ctx.saved
        need_x, need_w, need_b = ctx.needs_input_grad
        dtype = np.result_type(x, w, grad)
        dx, dw = depthwise_conv2d_grads(x.astype(dtype, copy=False), w.astype(dtype, copy=False),
                                        grad.astype(dtype, copy=False), (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw),
                                        need_x=need_x)
        db = grad.reshape(-1, s.o).sum(axis=0) if need_b else None
        return (dx if need_x else None), (dw if need_w else None), db


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution of NHWC ``x`` with OHWI ``w`` [O, KH, KW, C/groups], optional ``bias`` [O].

    ``stride``, ``padding`` (zeros) and ``dilation`` are ints or (h, w) pairs. Returns NHWC
    [N, Ho, Wo, O] with Ho = (H + 2*ph - dh*(KH-1) - 1) // sh + 1.
    """
    if bias is not None and tuple(bias.shape) != (w.shape[0],):
        raise InputError(f"bias must have shape ({w.shape[0]},) (one per output channel of w), got {tuple(bias.shape)}")
    depthwise = isinstance(groups, int) and groups == x.shape[-1]  # one input channel per group (a 1-channel stem too)
    fn = DepthwiseConv2d if depthwise else Conv2d
    return fn.apply(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
