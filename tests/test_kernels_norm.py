"""numbnn/kernels/norm.py: batch norm's per-channel moments, backward sums and affine maps, and the fused
block op's two loops (BN + residual + DPReLU), each against its naive twin in tests/naive.py."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from channel_cases import rows_channels, tolerance
from numbnn.kernels import norm as _norm_kernels
from numbnn.kernels.channels import n_chunks


@settings(max_examples=25)
@given(rows_channels())
def test_batch_norm_kernels(case):
    x, (a, b, c, _), g = case
    chunks = n_chunks(x.shape[0])
    center = x[-1].astype(np.float64)
    moments = _norm_kernels.chunk_moments(x, center, chunks).sum(axis=1)
    np.testing.assert_allclose(moments, naive.chunk_moments(x, center), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(_norm_kernels.affine(x, a, b), naive.affine(x, a, b), **tolerance(x.dtype))
    np.testing.assert_allclose(_norm_kernels.affine2(g, x, a, b, c), naive.affine2(g, x, a, b, c), **tolerance(x.dtype))
    mean = x.mean(axis=0, dtype=np.float64)
    sums = _norm_kernels.grad_sums(g, x, mean, chunks).sum(axis=1)
    np.testing.assert_allclose(sums, naive.grad_sums(g, x, mean), rtol=1e-10, atol=1e-9)


@settings(max_examples=25)
@given(rows_channels(), st.integers(0, 3), st.integers(0, 2), st.booleans(), st.booleans())
def test_fused_bn_add_dprelu_kernels(case, first, x_first, with_pos, add_after):
    """The block op's two loops against the chain of naive steps (the residual added before or after the
    activation): the forward and h exactly (one part of a wider output / gradient, at column ``first``;
    x and h columns of wider arrays, at ``x_first``), the float64 sums to summation order."""
    x, (scale, shift, pos, neg), g = case
    rows, c = x.shape
    r = np.ascontiguousarray(g[::-1])
    shift_x, shift_y = (scale * neg).astype(x.dtype), (shift * pos).astype(x.dtype)
    mean = 0.5 * pos.astype(np.float64)
    x_wide = np.full((rows, x_first + c + 1), np.nan, x.dtype)  # columns outside x_first .. + c are never read
    x_wide[:, x_first:x_first + c] = x
    out = np.full((rows, first + c + 1), np.nan, x.dtype)
    _norm_kernels.bn_add_dprelu(x_wide, r, scale, shift, pos, neg, shift_x, shift_y, out, first, x_first, add_after)
    np.testing.assert_array_equal(out[:, first:first + c],
                                  naive.bn_add_dprelu(x, r, scale, shift, pos, neg, shift_x, shift_y, add_after))
    assert np.isnan(out[:, :first]).all() and np.isnan(out[:, first + c:]).all()

    wide = np.zeros((rows, first + c + 1), x.dtype)
    wide[:, first:first + c] = g
    h = np.full(x_wide.shape, np.nan, x.dtype)
    sums = _norm_kernels.bn_add_dprelu_grad_sums(wide, first, x_wide, x_first, r, scale, shift, pos, neg, shift_x, mean,
                                                 h, with_pos, n_chunks(rows), add_after).sum(axis=1)
    expected_h, expected_sums = naive.bn_add_dprelu_grad_sums(g, x, r, scale, shift, pos, neg, shift_x, mean, add_after)
    np.testing.assert_array_equal(h[:, x_first:x_first + c], expected_h)
    assert np.isnan(h[:, :x_first]).all() and np.isnan(h[:, x_first + c:]).all()
    if not with_pos:
        expected_sums[0] = np.zeros(c)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-10, atol=1e-9)
    unstored = _norm_kernels.bn_add_dprelu_grad_sums(wide, first, x_wide, x_first, r, scale, shift, pos, neg, shift_x,
                                                     mean, np.empty((0, x_wide.shape[1]), x.dtype), with_pos,
                                                     n_chunks(rows), add_after).sum(axis=1)
    np.testing.assert_array_equal(unstored, sums)  # h not stored: the same sums
    if add_after:  # BN's input gradient with h recomputed: h, then affine2's a*h + b*x + shift, to the last bit
        a, b, dshift = (v[::-1].copy() for v in (scale, shift, pos))
        got = _norm_kernels.bn_activation_input_grad(g, x, scale, shift, pos, neg, shift_x, a, b, dshift)
        np.testing.assert_array_equal(got, naive.affine2(expected_h, x, a, b, dshift))
