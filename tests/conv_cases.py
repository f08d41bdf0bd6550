"""Hypothesis strategy and check shared by the tests of the convolution kernels (im2col and the input gradients)."""

import numpy as np
from hypothesis import strategies as st

from numbnn.kernels import conv_output_size


@st.composite
def conv_geometry(draw, max_kernel=3, max_stride=2, max_size=9):
    """(h, w, ho, wo, args): kernels of 1..max_kernel per side, strides 1..max_stride, padding 0-2, dilation 1-2,
    an input of up to max_size per side that fits the dilated kernel; ``args`` the kernel_size/stride/padding/
    dilation keywords."""
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), max_size))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), max_size))
    ho, wo = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    return h, w, ho, wo, dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))


def assert_input_grad_matches(kernel, twin, grad, w, input_shape, args):
    """``kernel`` fills a given float32 ``out`` of ``input_shape``, returns it, and agrees with the float64 ``twin``
    to float32 rounding of the sums."""
    out = np.full(input_shape, np.nan, dtype=np.float32)
    assert kernel(grad, w, input_shape, **args, out=out) is out
    want = twin(grad, w, input_shape, **args)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))
