"""The fused Numba loops behind the activations, STEs, channel ops, batch norm and Adam, each against its
naive twin in tests/naive.py."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.kernels import activations as _activation_kernels
from numbnn.kernels import channels as _channel_kernels
from numbnn.kernels import norm as _norm_kernels
from numbnn.kernels import optim as _optim_kernels

DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def rows_channels(draw):
    rows = draw(st.sampled_from([1, 2, 5, 63, 64, 65, 300]))
    channels = draw(st.sampled_from([1, 3, 16, 33]))
    dtype = draw(DTYPES)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = (2 * rng.standard_normal((rows, channels))).astype(dtype)
    x.flat[:: max(1, x.size // 4)] = 0.0  # exact zeros exercise the u >= 0 / x >= 0 boundaries
    vectors = [rng.standard_normal(channels).astype(dtype) for _ in range(4)]
    return x, vectors, rng.standard_normal((rows, channels)).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-10)


@settings(max_examples=25)
@given(rows_channels())
def test_elementwise_kernels(case):
    x, (clip, *_), g = case
    xf, gf = x.reshape(-1), g.reshape(-1)
    clip = float(abs(clip[0])) + 0.1
    sign = _activation_kernels.sign(xf)
    assert sign.dtype == x.dtype
    np.testing.assert_array_equal(sign, naive.sign(xf))
    np.testing.assert_array_equal(_activation_kernels.ste_grad(gf, xf, clip, np.empty_like(xf)), naive.ste_grad(gf, xf, clip))
    np.testing.assert_array_equal(_activation_kernels.approx_sign_grad(gf, xf, np.empty_like(xf)), naive.approx_sign_grad(gf, xf))
    inplace = gf.copy()
    _activation_kernels.ste_grad(inplace, xf, clip, inplace)
    np.testing.assert_array_equal(inplace, naive.ste_grad(gf, xf, clip))
    np.testing.assert_array_equal(_channel_kernels.add(xf, gf, np.empty_like(xf)), naive.add(xf, gf))


@settings(max_examples=25)
@given(rows_channels())
def test_per_channel_kernels(case):
    x, (a, b, c, d), g = case
    tol = _tol(x.dtype)
    chunks = _channel_kernels.n_chunks(x.shape[0])
    mean = _channel_kernels.chunk_sums(x, np.zeros(x.shape[1]), False, chunks).sum(axis=0) / x.shape[0]
    var = _channel_kernels.chunk_sums(x, mean, True, chunks).sum(axis=0) / x.shape[0]
    np.testing.assert_allclose(mean, naive.chunk_sums(x, 0.0, False) / x.shape[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, naive.chunk_sums(x, mean, True) / x.shape[0], rtol=1e-10, atol=1e-12)
    center = x[-1].astype(np.float64)
    moments = _norm_kernels.chunk_moments(x, center, chunks).sum(axis=1)
    np.testing.assert_allclose(moments, naive.chunk_moments(x, center), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(_norm_kernels.affine(x, a, b), naive.affine(x, a, b), **tol)
    np.testing.assert_allclose(_norm_kernels.affine2(g, x, a, b, c), naive.affine2(g, x, a, b, c), **tol)
    sums = _norm_kernels.grad_sums(g, x, mean, chunks).sum(axis=1)
    np.testing.assert_allclose(sums, naive.grad_sums(g, x, mean), rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(_channel_kernels.add_channels(x, a, np.empty_like(x)), naive.add_channels(x, a))
    target = g.copy()
    _channel_kernels.copy_columns(x[:, 1:], target, 1)
    np.testing.assert_array_equal(target, naive.copy_columns(x[:, 1:], g, 1))
    width = x.shape[1] // 2
    taken = _channel_kernels.take_columns(x, x.shape[1] - width, np.empty((x.shape[0], width), x.dtype))
    np.testing.assert_array_equal(taken, naive.take_columns(x, x.shape[1] - width, width))

    np.testing.assert_allclose(_activation_kernels.dprelu_forward(x, a, b, c, d), naive.dprelu_forward(x, a, b, c, d), **tol)
    dx = np.empty_like(x)
    sums = _activation_kernels.dprelu_backward(g, x, a, b, c, dx, chunks).sum(axis=1)
    expected_dx, expected_sums = naive.dprelu_backward(g, x, a, b, c)
    np.testing.assert_allclose(dx, expected_dx, **tol)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-5 if x.dtype == np.float32 else 1e-10, atol=1e-6)


@settings(max_examples=15)
@given(rows_channels())
def test_scale_columns_equals_numpy_cast_then_multiply(case):
    x, (scale, *_), _ = case
    acc = np.round(1000 * x).astype(np.int32)
    acc.flat[:2] = [2**24 - 1, -(2**24) + 3]  # integer sums up to 2^24 are exact in float32
    out = np.full(acc.shape, np.nan, dtype=x.dtype)
    assert _channel_kernels.scale_columns(acc, scale, out) is out
    np.testing.assert_array_equal(out, naive.scale_columns(acc, scale, x.dtype))


def test_reductions_do_not_depend_on_the_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 Numba threads")
    x = np.random.default_rng(0).standard_normal((5000, 7)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(_channel_kernels.chunk_sums(x, np.zeros(7), True, _channel_kernels.n_chunks(5000)).sum(axis=0))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])


@settings(max_examples=25)
@given(rows_channels(), st.booleans())
def test_adam_step_matches_numpy(case, decoupled):
    x, (m, v, *_), g = case
    data, grad = x.reshape(-1).copy(), g.reshape(-1)
    exp_avg, exp_avg_sq = np.resize(m, data.size), np.abs(np.resize(v, data.size))
    shrink, l2 = (1 - 0.01 * 0.1, 0.0) if decoupled else (1.0, 0.1)
    beta1, beta2, step_size, bias2_root, eps = 0.9, 0.999, 0.01 / (1 - 0.9**3), np.sqrt(1 - 0.999**3), 1e-8
    expected, m2, v2 = naive.adam_step(data, grad, exp_avg, exp_avg_sq, shrink, l2, beta1, beta2, step_size, bias2_root, eps)
    _optim_kernels.adam_step(data, grad, exp_avg, exp_avg_sq, shrink, l2, beta1, beta2, step_size, bias2_root, eps)
    tol = _tol(x.dtype)
    np.testing.assert_allclose(exp_avg, m2, **tol)
    np.testing.assert_allclose(exp_avg_sq, v2, **tol)
    np.testing.assert_allclose(data, expected, **tol)
