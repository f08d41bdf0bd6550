"""Convolution geometry shared by the float and binary kernels (and by every layer above them).

The pixel walk: output pixels are numbered p = (n*Ho + oy)*Wo + ox over the whole batch; a kernel
that takes a block of consecutive pixels finds the first one's (n, oy, ox) with divisions
(:func:`pixel_coordinates`) and steps to the next without any (:func:`next_pixel`).
"""

from typing import NamedTuple

import numba as nb

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, as_pair


def conv_output_size(size: int, k: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    A dilated kernel spans ``dilation*(k-1) + 1`` input positions; it fits
    ``(size + 2*pad - span) // stride + 1`` times. May be < 1 when the kernel does not fit.
    """
    size, k, stride = as_int(size, "size", 0), as_int(k, "k", 1), as_int(stride, "stride", 1)
    pad, dilation = as_int(pad, "pad", 0), as_int(dilation, "dilation", 1)
    span = dilation * (k - 1) + 1
    return (size + 2 * pad - span) // stride + 1


class ConvGeometry(NamedTuple):
    """Validated (h, w) pairs of a 2-D convolution and its output size."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    ho: int
    wo: int


def conv_geometry(height, width, kernel_size, stride, padding, dilation, input_name: str = "x") -> ConvGeometry:
    """Check the convolution arguments and compute the output size; raise InputError if it is < 1."""
    kh, kw = as_pair(kernel_size, "kernel_size", 1)
    sh, sw = as_pair(stride, "stride", 1)
    ph, pw = as_pair(padding, "padding", 0)
    dh, dw = as_pair(dilation, "dilation", 1)
    ho = conv_output_size(height, kh, sh, ph, dh)
    wo = conv_output_size(width, kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        raise InputError(
            f"{input_name}: spatial size {height}x{width} is too small for kernel {kh}x{kw} with "
            f"padding {(ph, pw)} and dilation {(dh, dw)} (output would be {ho}x{wo})"
        )
    return ConvGeometry(kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)


@nb.njit(inline="always")
def pixel_coordinates(pixel, ho, wo):
    """(n, oy, ox) of output pixel number ``pixel`` = (n*Ho + oy)*Wo + ox."""
    return pixel // (ho * wo), (pixel // wo) % ho, pixel % wo


@nb.njit(inline="always")
def next_pixel(n, oy, ox, ho, wo):
    """(n, oy, ox) of the next output pixel, without a division."""
    ox += 1
    if ox == wo:
        ox = 0
        oy += 1
        if oy == ho:
            oy = 0
            n += 1
    return n, oy, ox
