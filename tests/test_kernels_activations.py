"""numbnn/kernels/activations.py: sign, the clipped STE, ApproxSign's gradient and DPReLU, each against its
naive twin in tests/naive.py."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from channel_cases import rows_channels, tolerance
from numbnn.kernels import activations as _activation_kernels
from numbnn.kernels import channels as _channel_kernels
from numbnn.kernels.channels import n_chunks


@settings(max_examples=25)
@given(rows_channels())
def test_sign_and_its_straight_through_gradients(case):
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


@settings(max_examples=25)
@given(rows_channels())
def test_approx_sign_gradient_at_a_shifted_input(case):
    """ApproxSign's gradient at x + shift (per channel), the sum never written: the naive twin at x + shift,
    whose sum numpy rounds to x's dtype; in place too."""
    x, (shift, *_), g = case
    got = np.empty_like(x)
    _activation_kernels.approx_sign_grad_shifted_sums(g, x, shift, g, False, got, n_chunks(len(x)))
    np.testing.assert_array_equal(got, naive.approx_sign_grad(g, x + shift))
    inplace = g.copy()
    _activation_kernels.approx_sign_grad_shifted_sums(inplace, x, shift, g, False, inplace, n_chunks(len(x)))
    np.testing.assert_array_equal(inplace, got)


@settings(max_examples=25)
@given(rows_channels())
def test_approx_sign_gradient_with_threshold_sums_and_pending_gradient(case):
    """The fused pass (t = ApproxSign's gradient at x + shift; out = t + pending; per-chunk sums of t) against the
    twin: out exactly, the sums in chunk_sums' chunks and order exactly, their total to float64 rounding; in place."""
    x, (shift, *_), g = case
    pending = np.ascontiguousarray(g[::-1])
    chunks = n_chunks(len(x))
    for with_pending in (True, False):
        out = g.copy()
        partial = _activation_kernels.approx_sign_grad_shifted_sums(out, x, shift, pending, with_pending, out, chunks)
        want, total = naive.approx_sign_grad_shifted_sums(g, x, shift, pending if with_pending else None)
        np.testing.assert_array_equal(out, want)
        t = naive.approx_sign_grad(g, x + shift)
        np.testing.assert_array_equal(partial, _channel_kernels.chunk_sums(t, np.zeros(x.shape[1]), False, chunks))
        np.testing.assert_allclose(partial.sum(axis=0), total, rtol=1e-12, atol=1e-12)


@settings(max_examples=30)
@given(rows_channels(), st.sampled_from([1, 2, 3, 4, 8]))
def test_approx_sign_gradient_under_a_channel_shuffle(case, groups):
    """The fused pass (ApproxSign's gradient at the shuffled values, shuffled back, plus the pending gradient)
    against the twin exactly, with and without pending, in place too; G = 4 (written out) and the general loop."""
    x, _, g = case
    # C = groups * the case's channels, each copy scaled apart (and its exact zeros kept)
    x, g = (np.concatenate([a * np.asarray(k + 1, a.dtype) for k in range(groups)], axis=1) for a in (x, g[:, ::-1]))
    x[:, -1] = 0.5  # ApproxSign's gradient is 1 there: catches a shuffle that drops the last channel
    pending = np.ascontiguousarray(g[::-1])
    kernel = _activation_kernels.approx_sign_grad_unshuffled
    for with_pending in (True, False):
        want = naive.approx_sign_grad_unshuffled(g, x, groups, pending if with_pending else None)
        got = np.empty_like(g)
        assert kernel(g, x, groups, pending, with_pending, got, n_chunks(len(x))) is got
        np.testing.assert_array_equal(got, want)
        inplace = g.copy()
        kernel(inplace, x, groups, pending, with_pending, inplace, n_chunks(len(x)))
        np.testing.assert_array_equal(inplace, want)


@settings(max_examples=25)
@given(rows_channels())
def test_negative_counts(case):
    """Counts per channel, -0.0 and 0.0 not negative, over more rows than one task holds."""
    x = case[0].copy()
    x[::3, ::2] = -0.0
    np.testing.assert_array_equal(_activation_kernels.negative_counts(x), naive.negative_counts(x))
    tall = np.repeat(x, 1 + _activation_kernels.NEGATIVE_COUNT_ROWS // max(len(x), 1), axis=0)
    np.testing.assert_array_equal(_activation_kernels.negative_counts(tall), naive.negative_counts(tall))

@settings(max_examples=25)
@given(rows_channels())
def test_scaled_sign_rows_and_their_straight_through_gradient(case):
    """Weight rows [O, K] (the case's channels as rows), one scale per row, exact against the twins."""
    x, (scale, clip, *_), g = case
    w, grad = np.ascontiguousarray(x.T), np.ascontiguousarray(g.T)
    clip = float(abs(clip[0])) + 0.1
    out = _activation_kernels.scaled_sign_rows(w, scale, np.empty_like(w))
    np.testing.assert_array_equal(out, naive.scaled_sign_rows(w, scale))
    expected = naive.scaled_ste_grad_rows(grad, w, scale, clip)
    np.testing.assert_array_equal(_activation_kernels.scaled_ste_grad_rows(grad, w, scale, clip, np.empty_like(grad)),
                                  expected)
    inplace = grad.copy()
    _activation_kernels.scaled_ste_grad_rows(inplace, w, scale, clip, inplace)
    np.testing.assert_array_equal(inplace, expected)


@settings(max_examples=25)
@given(rows_channels())
def test_dprelu_forward_and_backward(case):
    x, (a, b, c, d), g = case
    np.testing.assert_allclose(_activation_kernels.dprelu_forward(x, a, b, c, d), naive.dprelu_forward(x, a, b, c, d),
                               **tolerance(x.dtype))
    dx = np.empty_like(x)
    sums = _activation_kernels.dprelu_backward(g, x, a, b, c, dx, n_chunks(x.shape[0])).sum(axis=1)
    expected_dx, expected_sums = naive.dprelu_backward(g, x, a, b, c)
    np.testing.assert_allclose(dx, expected_dx, **tolerance(x.dtype))
    # float32 sums of ~300 products of size ~4 in another order differ by a few 1e-6 (hypothesis found a
    # cancelling channel at 2.9e-6 absolute): the same bound as the element-wise results
    np.testing.assert_allclose(sums, expected_sums, **tolerance(x.dtype))
