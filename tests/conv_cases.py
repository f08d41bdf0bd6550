"""Hypothesis strategy and check shared by the tests of the convolution kernels (im2col and the input gradients)."""

import numba
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


@st.composite
def sign_input_grad_case(draw, outputs_per_group, max_images):
    """(grad, w, input_shape, args) for an input-gradient kernel on scale * sign(W): a :func:`conv_geometry`, 1-3
    groups of 16, 32 or 48 input channels and one of ``outputs_per_group`` outputs, 1 to ``max_images`` images,
    float32 or float64 weights with some zeros (sign(0) = +1), a random scale or none."""
    h, w, ho, wo, args = draw(conv_geometry())
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.sampled_from([16, 32, 48])), draw(st.sampled_from(outputs_per_group))
    n = draw(st.integers(1, max_images))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    o = groups * og
    weights = rng.standard_normal((o, *args["kernel_size"], cg)).astype(draw(st.sampled_from([np.float32, np.float64])))
    weights[rng.random(weights.shape) < 0.1] = 0.0
    scale = rng.random(o).astype(np.float32) if draw(st.booleans()) else None
    grad = rng.standard_normal((n * ho * wo, o)).astype(np.float32)
    return grad, weights, (n, h, w, groups * cg), dict(args, groups=groups, scale=scale)


def assert_input_grad_matches(kernel, twin, grad, w, input_shape, args):
    """``kernel`` fills a given float32 ``out`` of ``input_shape``, returns it, and agrees with the float64 ``twin``
    to float32 rounding of the sums."""
    out = np.full(input_shape, np.nan, dtype=np.float32)
    assert kernel(grad, w, input_shape, **args, out=out) is out
    want = twin(grad, w, input_shape, **args)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))


def assert_same_bits_on_1_and_2_threads(kernel, *args, **kwargs):
    """``kernel(*args, **kwargs)`` gives the same bits on 1 and on 2 Numba threads (its sums do not depend on the
    split of the work)."""
    before = numba.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(kernel(*args, **kwargs))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
