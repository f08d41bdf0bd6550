"""Average / max pooling over NHWC windows, and global average pooling.

Average pooling runs as Numba kernels (one parallel pass each way); max pooling loops over the KH*KW
window taps (not over pixels): each tap is one strided view of the padded input covering every output
pixel at once.
"""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError
from numbnn.kernels import pooling as pool_kernels
from numbnn.kernels._checks import as_pair


class _Window:
    """Pooling geometry: kernel, stride, per-side padding (top, bottom, left, right) and output size."""

    def __init__(self, shape, kernel_size, stride, padding):
        if len(shape) != 4:
            raise InputError(f"x must be NHWC (rank 4), got shape {tuple(shape)}")
        self.kh, self.kw = as_pair(kernel_size, "kernel_size", 1)
        self.sh, self.sw = as_pair((self.kh, self.kw) if stride is None else stride, "stride", 1)
        h, w = shape[1], shape[2]
        if isinstance(padding, str):
            if padding.lower() != "same":
                raise InputError(f"padding must be an int, an (h, w) pair or 'same', got {padding!r}")
            # TensorFlow's SAME: output ceil(size / stride), the extra padding row/column at the end
            self.ho, self.wo = -(-h // self.sh), -(-w // self.sw)
            total_h = max((self.ho - 1) * self.sh + self.kh - h, 0)
            total_w = max((self.wo - 1) * self.sw + self.kw - w, 0)
            self.pad = (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
        else:
            ph, pw = as_pair(padding, "padding", 0)
            if ph * 2 > self.kh or pw * 2 > self.kw:
                raise InputError(f"padding {padding!r} must be at most half the kernel size {kernel_size!r}")
            self.pad = (ph, ph, pw, pw)
            self.ho = (h + 2 * ph - self.kh) // self.sh + 1
            self.wo = (w + 2 * pw - self.kw) // self.sw + 1
        if self.ho < 1 or self.wo < 1:
            raise InputError(f"x of spatial size {h}x{w} is too small for a {self.kh}x{self.kw} pooling window")

    def padded(self, x, value):
        pt, pb, pl, pr = self.pad
        if pt == pb == pl == pr == 0:
            return x
        return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)

    def unpad(self, xp, h, w):
        return xp[:, self.pad[0] : self.pad[0] + h, self.pad[2] : self.pad[2] + w]

    def taps(self):
        return [(i, k) for i in range(self.kh) for k in range(self.kw)]

    def view(self, xp, i, k):
        """Input pixel read by tap (i, k) for every output pixel: a strided [N, Ho, Wo, C] view."""
        return xp[:, i : i + self.sh * (self.ho - 1) + 1 : self.sh, k : k + self.sw * (self.wo - 1) + 1 : self.sw]


class AvgPool2d(Function):
    """Mean over each window of real pixels (padding excluded: PyTorch's count_include_pad=False), both
    directions one parallel kernel pass (:mod:`numbnn.kernels.pooling`)."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding):
        win = _Window(x.shape, kernel_size, stride, padding)
        ctx.geometry = ((win.kh, win.kw), (win.sh, win.sw), (win.pad[0], win.pad[2]))
        ctx.input_hw = x.shape[1:3]
        return pool_kernels.avg_pool2d(x, *ctx.geometry, (win.ho, win.wo))

    @staticmethod
    def backward(ctx, grad):
        shape = (grad.shape[0], *ctx.input_hw, grad.shape[3])
        pending = ctx.take_pending_grad(0, shape, grad.dtype)  # a shortcut's pool: the conv's gradient of x, added here
        return pool_kernels.avg_pool2d_adjoint(grad, ctx.input_hw, *ctx.geometry, pending=pending)


class MaxPool2d(Function):
    """Maximum over each window (padding never wins); the gradient goes to the first maximal tap."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding):
        win = _Window(x.shape, kernel_size, stride, padding)
        xp = win.padded(x, -np.inf)
        out = None
        for i, k in win.taps():
            v = win.view(xp, i, k)
            out = v.copy() if out is None else np.maximum(out, v, out=out)
        ctx.win, ctx.shape = win, x.shape
        ctx.save_for_backward(xp, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        win, (_, h, w, _) = ctx.win, ctx.shape
        xp, out = ctx.saved
        dxp = np.zeros(xp.shape, dtype=grad.dtype)
        unclaimed = np.ones(out.shape, dtype=bool)
        for i, k in win.taps():
            winner = unclaimed & (win.view(xp, i, k) == out)
            unclaimed &= ~winner
            window = win.view(dxp, i, k)
            window += grad * winner
        return win.unpad(dxp, h, w)


def avg_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Average pooling of NHWC ``x``; ``stride`` defaults to ``kernel_size``.

    ``padding`` is an int, an (h, w) pair, or ``"same"`` (TensorFlow's rule: output ceil(H/stride),
    odd padding goes after). Padded positions are not counted: each output is the mean of the real
    pixels in its window (PyTorch's ``count_include_pad=False``, TensorFlow's SAME average pooling).
    """
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling of NHWC ``x`` (padding as in :func:`avg_pool2d`; padded positions never win)."""
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def global_avg_pool(x) -> Tensor:
    """Mean over the spatial axes: NHWC [N, H, W, C] -> [N, C]."""
    if len(x.shape) != 4:
        raise InputError(f"x must be NHWC (rank 4), got shape {tuple(x.shape)}")
    x = x if isinstance(x, Tensor) else Tensor(x)
    return x.mean(axis=(1, 2))
