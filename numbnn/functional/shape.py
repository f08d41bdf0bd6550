"""Shape and combination ops: add, per-image channel gates, concat, reshape, padding, and NHWC channel/space
rearrangements."""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.autograd.arrays import PARALLEL_MIN_ELEMENTS
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.kernels import channels as _channel_kernels


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def add(a, b) -> Tensor:
    """a + b with numpy broadcasting (residual shortcuts)."""
    a, b_shape = _tensor(a), np.shape(b.data if isinstance(b, Tensor) else b)
    try:
        np.broadcast_shapes(a.shape, b_shape)
    except ValueError:
        raise InputError(f"a of shape {a.shape} and b of shape {b_shape} do not broadcast") from None
    return a + b


def channel_gate(x, gate) -> Tensor:
    """x * gate[:, None, ..., None, :]: one weight per image and channel of an [N, ..., C] map, gate [N, C]
    (a squeeze-and-excitation gate, Hu et al., arXiv 1709.01507, Sec. 3.2: the "scale" step)."""
    x, gate = _tensor(x), _tensor(gate)
    if x.ndim < 2:
        raise InputError(f"x must have a batch and a channel axis, got shape {x.shape}")
    if gate.shape != (x.shape[0], x.shape[-1]) or gate.dtype != x.dtype:
        raise InputError(f"gate must be [N, C] = {(x.shape[0], x.shape[-1])} of x's dtype {x.dtype}, "
                         f"got {gate.shape} {gate.dtype} for x {x.shape}")
    return ChannelGate.apply(x, gate)


class ChannelGate(Function):
    """:func:`channel_gate` in one parallel pass each way, without the broadcast product's full-size
    temporary that the gate's gradient (a sum over the pixels of g * x) would otherwise need."""

    @staticmethod
    def forward(ctx, x, gate):
        ctx.save_for_backward(x, gate)
        x3 = _as_pixels(x)
        return _channel_kernels.gate_channels(x3, np.ascontiguousarray(gate), np.empty_like(x3)).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, gate = ctx.saved
        x3, g3 = _as_pixels(x), _as_pixels(grad)
        dx = np.empty_like(x3) if ctx.needs_input_grad[0] else np.empty((0, 0, 0), x3.dtype)
        dx, dgate = _channel_kernels.gate_channels_grads(g3, x3, np.ascontiguousarray(gate), dx, np.empty_like(gate))
        return (dx.reshape(x.shape) if ctx.needs_input_grad[0] else None), dgate


def _as_pixels(a: np.ndarray) -> np.ndarray:
    """[N, ..., C] as a C-contiguous [N, pixels, C] view (a copy only if ``a`` is not contiguous)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1, a.shape[-1])


def reshape(x, shape) -> Tensor:
    """x with a new shape (one axis may be -1)."""
    x = _tensor(x)
    try:
        return x.reshape(tuple(shape))
    except ValueError:
        raise InputError(f"x of shape {x.shape} cannot be reshaped to shape {tuple(shape)}") from None


def _along_channels(arrays, axis) -> bool:
    """Large float arrays of one dtype joined on their last axis: the case the parallel copies take."""
    first = arrays[0]
    return (axis in (-1, first.ndim - 1) and first.dtype.kind == "f"
            and all(a.dtype == first.dtype and a.flags.c_contiguous for a in arrays)
            and sum(a.size for a in arrays) >= PARALLEL_MIN_ELEMENTS)


class Concat(Function):
    """Join inputs along ``axis``; the gradient is split back at the same offsets.

    Along the channels (a block's channel duplication) both directions are parallel row copies, and
    the gradient parts come back C-contiguous, so the layers that receive them need no copy of their own."""

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        ctx.widths = [a.shape[axis] for a in arrays]
        if not _along_channels(arrays, axis):
            return np.concatenate(arrays, axis=axis)
        out = np.empty(arrays[0].shape[:-1] + (sum(ctx.widths),), dtype=arrays[0].dtype)
        rows = out.reshape(-1, out.shape[-1])
        first = 0
        for a in arrays:
            _channel_kernels.copy_columns(a.reshape(-1, a.shape[-1]), rows, first)
            first += a.shape[-1]
        return out

    @staticmethod
    def backward(ctx, grad):
        bounds = np.cumsum(ctx.widths)[:-1]
        if not (ctx.axis in (-1, grad.ndim - 1) and grad.dtype.kind == "f" and grad.size >= PARALLEL_MIN_ELEMENTS):
            return tuple(np.split(grad, bounds, axis=ctx.axis))
        rows = np.ascontiguousarray(grad).reshape(-1, grad.shape[-1])
        if len(ctx.parents) > 1 and all(p is ctx.parents[0] for p in ctx.parents):
            summed = _repeated_input_grad(ctx, rows, grad.shape[:-1] + (ctx.widths[0],))
            if summed is not None:
                return summed
        parts = []
        for first, width in zip([0, *bounds], ctx.widths):
            part = _channel_kernels.take_columns(rows, int(first), np.empty((rows.shape[0], width), dtype=grad.dtype))
            parts.append(part.reshape(grad.shape[:-1] + (width,)))
        return tuple(parts)


def _repeated_input_grad(ctx, rows, shape):
    """The gradient of concat([x] * R) along channels as x's one sum, in one pass: the R slices added left to
    right after the gradient x's other readers had already sent (taken from the engine), the order in which
    the engine would add R slices, so the same bits without R copies and R additions; None for the other
    R - 1 positions. None if x already has a gradient the op cannot take (the engine then adds slice by slice)."""
    parent = ctx.parents[0]
    waiting = ctx.pending is not None and id(parent) in ctx.pending
    pending = ctx.take_pending_grad(0, parent.shape, parent.dtype) if waiting else None
    if waiting and pending is None:
        return None
    out = np.empty((rows.shape[0], shape[-1]), rows.dtype)
    earlier = out if pending is None else pending.reshape(out.shape)
    _channel_kernels.sum_column_blocks(rows, out, earlier, pending is not None)
    return (out.reshape(shape),) + (None,) * (len(ctx.parents) - 1)


def concat(tensors, axis: int = -1) -> Tensor:
    """Concatenate Tensors/arrays along ``axis`` (default: channels)."""
    tensors = list(tensors)
    if not tensors:
        raise InputError("concat needs at least one tensor")
    try:
        return Concat.apply(*tensors, axis=axis)
    except (ValueError, IndexError) as error:  # shapes that do not line up, or an axis out of range
        raise InputError(f"tensors cannot be joined along axis {axis}: {error}") from None


class Roll(Function):
    """np.roll along one axis (out[i] = x[i - shift], wrapping around); the gradient rolls back.

    One copy each way: as slices joined by a concatenation, the backward pass would scatter the
    gradient into two zero-filled arrays of the input's size and add them (RB-Net's shifted cells)."""

    @staticmethod
    def forward(ctx, x, shift, axis):
        ctx.shift, ctx.axis = shift, axis
        return _roll(x, shift, axis)

    @staticmethod
    def backward(ctx, grad):
        return _roll(grad, -ctx.shift, ctx.axis)


def _roll(x: np.ndarray, shift: int, axis: int) -> np.ndarray:
    """np.roll, as one parallel copy for the rows or columns of an NHWC array (np.roll copies on one thread)."""
    if x.ndim != 4 or axis not in (1, 2) or x.dtype.kind != "f":
        return np.roll(x, shift, axis=axis)
    shifts = (shift % x.shape[1], 0) if axis == 1 else (0, shift % x.shape[2])
    return _channel_kernels.roll_pixels(np.ascontiguousarray(x), *shifts, np.empty(x.shape, x.dtype))


def roll(x, shift: int, axis: int) -> Tensor:
    """Roll ``x`` by ``shift`` positions along ``axis`` (numpy's ``np.roll``), with its gradient."""
    for name, value in (("shift", shift), ("axis", axis)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputError(f"{name} must be an integer, got {value!r}")
    if not -len(x.shape) <= axis < len(x.shape):
        raise InputError(f"axis {axis} is out of range for x of shape {tuple(x.shape)}")
    return Roll.apply(x, shift=int(shift), axis=int(axis) % len(x.shape))


class Pad(Function):
    """Constant padding with numpy's ``pad_width`` convention; the gradient is the interior slice."""

    @staticmethod
    def forward(ctx, x, pad_width, value):
        ctx.interior = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, x.shape))
        return np.pad(x, pad_width, constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.interior]


def pad(x, pad_width, value: float = 0.0) -> Tensor:
    """Pad with a constant: ``pad_width`` is one (before, after) pair per axis, as in ``np.pad``."""
    pad_width = tuple((int(a), int(b)) for a, b in pad_width)
    if len(pad_width) != len(x.shape) or min(min(p) for p in pad_width) < 0:
        raise InputError(f"pad_width must be one non-negative (before, after) pair per axis of x {tuple(x.shape)}")
    return Pad.apply(x, pad_width=pad_width, value=value)


def _check_block(x, block: int, divide_spatial: bool):
    if len(x.shape) != 4:
        raise InputError(f"x must be NHWC (rank 4), got shape {tuple(x.shape)}")
    check_int(block, "block")
    n, h, w, c = x.shape
    if divide_spatial and (h % block or w % block):
        raise InputError(f"spatial size {h}x{w} is not divisible by block={block}")
    if not divide_spatial and c % (block * block):
        raise InputError(f"{c} channels are not divisible by block*block={block * block}")
    return n, h, w, c


class SpaceDepthMove(Function):
    """Space-to-depth ([N, H, W, C] -> [N, H/b, W/b, b*b*C], TensorFlow's NHWC order) if ``to_depth``, else
    its inverse (depth-to-space, DCR order), as one parallel copy; the gradient is the other direction.
    (As reshape, transpose, reshape the copy ran on one thread each way: RB-Net moves every binary conv's
    input and output like this.)"""

    @staticmethod
    def forward(ctx, x, block, to_depth):
        ctx.block, ctx.to_depth = block, to_depth
        return _move_blocks(x, block, to_depth)

    @staticmethod
    def backward(ctx, grad):
        return _move_blocks(grad, ctx.block, not ctx.to_depth)


def _move_blocks(x: np.ndarray, block: int, to_depth: bool) -> np.ndarray:
    n, h, w, c = x.shape
    shape = (n, h // block, w // block, block * block * c) if to_depth else (n, h * block, w * block, c // (block * block))
    out = np.empty(shape, dtype=x.dtype)
    x = np.ascontiguousarray(x)
    if to_depth:
        _channel_kernels.move_blocks(x, out, block, True)
    else:
        _channel_kernels.move_blocks(out, x, block, False)
    return out


def space_to_depth(x, block: int) -> Tensor:
    """[N, H, W, C] -> [N, H/b, W/b, b*b*C]; output channel (dy*b + dx)*C + c holds x[n, y*b+dy, x*b+dx, c].

    This is TensorFlow's NHWC ``space_to_depth`` order, the exact inverse of :func:`depth_to_space`.
    """
    _check_block(x, block, divide_spatial=True)
    return SpaceDepthMove.apply(x, block=int(block), to_depth=True)


def depth_to_space(x, block: int) -> Tensor:
    """[N, H, W, b*b*C] -> [N, H*b, W*b, C] in DCR order: channel (dy*b + dx)*C + c moves to (y*b+dy, x*b+dx)."""
    _check_block(x, block, divide_spatial=False)
    return SpaceDepthMove.apply(x, block=int(block), to_depth=False)


def channel_shuffle(x, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle on the last axis (arXiv 1707.01083, Sec. 3.1): view C as
    [groups, C/groups], transpose, flatten. Output channel j*groups + g is input channel g*(C/groups) + j.
    """
    c = tuple(x.shape)[-1]
    groups = check_int(groups, "groups")
    if c % groups:
        raise InputError(f"groups must divide {c} channels, got {groups!r}")
    return ChannelShuffle.apply(_tensor(x), groups=groups)


class ChannelShuffle(Function):
    """:func:`channel_shuffle` as one parallel pass (the reshape-transpose-reshape it equals costs a strided
    copy each way); the gradient goes back through the inverse shuffle."""

    @staticmethod
    def forward(ctx, x, groups):
        ctx.groups = groups
        return shuffle_channels(x, groups)

    @staticmethod
    def backward(ctx, grad):
        return shuffle_channels(grad, ctx.groups, inverse=True)


def shuffle_channels(x: np.ndarray, groups: int, inverse: bool = False) -> np.ndarray:
    """x's channels shuffled in ``groups`` (or shuffled back, ``inverse``) as a new C-contiguous array: channel
    j*groups + g of the result is x's channel g*(C/groups) + j (:func:`channel_shuffle`)."""
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    return _channel_kernels.shuffle_columns(rows, groups, inverse, np.empty_like(rows)).reshape(x.shape)
