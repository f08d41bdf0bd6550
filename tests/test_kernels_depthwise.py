"""numbnn.kernels.depthwise against its naive twins: the forward in the same operation order (bit for bit),
the gradients to rounding (their sums run in another order)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.kernels import steps
from numbnn.kernels.depthwise import (
    WIDE_MULTIPLIER, depthwise_conv2d, depthwise_conv2d_grads, repeat_channels, stem_conv2d_steps,
)

# batch, channels, multiplier, kernel, stride, padding, dilation, dtype, seed
# multipliers from WIDE_MULTIPLIER on take the per-pixel kernels (a 1-channel stem is channels 1, multiplier O)
CASES = (st.integers(1, 3), st.integers(1, 9), st.sampled_from([1, 2, 3, WIDE_MULTIPLIER, 17, 33]), st.integers(1, 3),
         st.sampled_from([1, 2]), st.integers(0, 2), st.sampled_from([1, 2]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))


def inputs(batch, channels, mult, kernel, dilation, dtype, seed):
    """rng, x [batch, size, size + 1, channels] and w [channels * mult, kernel, kernel, 1] of ``dtype``."""
    rng = np.random.default_rng(seed)
    size = dilation * (kernel - 1) + 1 + int(rng.integers(0, 5))
    x = rng.standard_normal((batch, size, size + 1, channels)).astype(dtype)
    return rng, x, rng.standard_normal((channels * mult, kernel, kernel, 1)).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(*CASES)
def test_depthwise_conv2d_matches_naive(batch, channels, mult, kernel, stride, padding, dilation, dtype, seed):
    _, x, w = inputs(batch, channels, mult, kernel, dilation, dtype, seed)
    got = depthwise_conv2d(x, w, stride, padding, dilation)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, naive.depthwise_conv2d(x, w, stride, padding, dilation))


@settings(max_examples=40, deadline=None)
@given(*CASES)
def test_depthwise_conv2d_grads_match_naive(batch, channels, mult, kernel, stride, padding, dilation, dtype, seed):
    rng, x, w = inputs(batch, channels, mult, kernel, dilation, dtype, seed)
    grad = rng.standard_normal(depthwise_conv2d(x, w, stride, padding, dilation).shape).astype(dtype)
    dx, dw = depthwise_conv2d_grads(x, w, grad, stride, padding, dilation)
    want_dx, want_dw = naive.depthwise_conv2d_grads(x, w, grad, stride, padding, dilation)
    assert dx.dtype == dw.dtype == dtype and dx.shape == x.shape and dw.shape == w.shape
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx, want_dx, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dw, want_dw, rtol=tolerance, atol=tolerance)


@settings(max_examples=20, deadline=None)
@given(*CASES)
def test_depthwise_conv2d_grads_without_dx(batch, channels, mult, kernel, stride, padding, dilation, dtype, seed):
    """need_x=False returns no dx and the same dw (a stem's input needs no gradient)."""
    rng, x, w = inputs(batch, channels, mult, kernel, dilation, dtype, seed)
    grad = rng.standard_normal(depthwise_conv2d(x, w, stride, padding, dilation).shape).astype(dtype)
    dx, dw = depthwise_conv2d_grads(x, w, grad, stride, padding, dilation, need_x=False)
    assert dx is None
    np.testing.assert_array_equal(dw, depthwise_conv2d_grads(x, w, grad, stride, padding, dilation)[1])


STEM_CASES = (st.integers(1, 3), st.sampled_from([WIDE_MULTIPLIER, 17, 32, 33]), st.sampled_from([1, 2]),
              st.integers(0, 2), st.sampled_from([1, 2]), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))


@settings(max_examples=30, deadline=None)
@given(*STEM_CASES)
def test_stem_kernels_match_naive(batch, outputs, stride, padding, dilation, dtype, seed):
    """A 1-channel image under 3x3 taps (every zoo stem) takes kernels of its own: the forward equals the
    naive twin bit for bit, the weight gradient equals it to rounding and the general kernel's exactly."""
    rng, x, w = inputs(batch, 1, outputs, 3, dilation, dtype, seed)
    out = depthwise_conv2d(x, w, stride, padding, dilation)
    np.testing.assert_array_equal(out, naive.depthwise_conv2d(x, w, stride, padding, dilation))
    grad = rng.standard_normal(out.shape).astype(dtype)
    _, dw = depthwise_conv2d_grads(x, w, grad, stride, padding, dilation, need_x=False)
    _, want_dw = naive.depthwise_conv2d_grads(x, w, grad, stride, padding, dilation)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dw, want_dw, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(dw, depthwise_conv2d_grads(x, w, grad, stride, padding, dilation)[1])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 9), st.integers(1, 4),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_repeat_channels_matches_naive(batch, h, w, channels, mult, dtype, seed):
    """Each channel repeated ``mult`` times (m = 2 takes its own loop), any strides of the input."""
    x = np.random.default_rng(seed).standard_normal((batch, h, w + 1, channels)).astype(dtype)[:, :, 1:]
    got = repeat_channels(x, mult)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, naive.repeat_channels(x, mult))


STEM_PROGRAMS = {  # codes, first rows, parameter rows: every zoo stem's batch norm, and longer chains
    "affine": ([steps.AFFINE], [0], 2),
    "affine_dprelu_quant": ([steps.AFFINE, steps.DPRELU, steps.FAKE_QUANT], [0, 2, 6], 9),
    "mul_add_relu": ([steps.MUL, steps.ADD, steps.RELU, steps.HARD_SIGMOID], [0, 1, 2, 2], 2),
}


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.sampled_from([WIDE_MULTIPLIER, 17, 32, 33]), st.sampled_from([1, 2]), st.integers(0, 2),
       st.sampled_from([1, 2]), st.sampled_from(sorted(STEM_PROGRAMS)), st.integers(0, 2**32 - 1))
def test_stem_conv2d_steps_match_naive(batch, outputs, stride, padding, dilation, program, seed):
    """The stem convolution with its steps applied row by row in the kernel equals the convolution, then the
    steps as numpy passes, bit for bit (as packed inference's fused stem must equal the float model)."""
    rng, x, w = inputs(batch, 1, outputs, 3, dilation, np.float32, seed)
    codes, first_rows, rows = STEM_PROGRAMS[program]
    params = rng.standard_normal((rows, outputs)).astype(np.float32)
    if program == "affine_dprelu_quant":  # fake_quant's lo <= hi and step > 0
        params[6], params[7] = -np.abs(params[6]) - 1, np.abs(params[7]) + 1
        params[8] = np.abs(params[8]) / 4 + np.float32(0.05)
    codes, first_rows = np.array(codes, np.int64), np.array(first_rows, np.int64)
    want = naive.stem_conv2d_steps(x, w, stride, padding, dilation, codes, first_rows, params)
    wo = want.shape[2]
    got = stem_conv2d_steps(x, w, stride, padding, dilation, codes, first_rows, np.ascontiguousarray(np.tile(params, (1, wo))))
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


def test_stem_conv2d_steps_refuses_what_it_cannot_do():
    """A weight that is not a wide 3x3 stem, or steps reading a second input (the kernel has none to give),
    end in one InputError."""
    x = np.zeros((1, 5, 5, 1), np.float32)
    w = np.zeros((WIDE_MULTIPLIER, 3, 3, 1), np.float32)
    codes, first_rows = np.array([steps.AFFINE], np.int64), np.array([0], np.int64)
    params = np.zeros((2, 5 * WIDE_MULTIPLIER), np.float32)
    with pytest.raises(InputError, match="needs a 1-channel x"):
        stem_conv2d_steps(x, w[:, :2, :2], 1, 1, 1, codes, first_rows, params)
    with pytest.raises(InputError, match="second input"):
        stem_conv2d_steps(x, w, 1, 1, 1, np.array([steps.ADD_INPUT], np.int64), first_rows, params)
    assert stem_conv2d_steps(x, w, 1, 1, 1, codes, first_rows, params).shape == (1, 5, 5, WIDE_MULTIPLIER)
