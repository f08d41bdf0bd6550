"""Average pooling and its adjoint (numbnn.kernels.pooling) against their naive twins."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.kernels.pooling import avg_pool2d, avg_pool2d_adjoint, mean, spread_last_axis


@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pt, pl = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    # output sizes from 1 up to the last window that still starts inside the image
    ho = draw(st.integers(1, max(1, (h - 1 + pt) // sh + 1)))
    wo = draw(st.integers(1, max(1, (w - 1 + pl) // sw + 1)))
    n, c = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3, 17]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    grad = rng.standard_normal((n, ho, wo, c)).astype(dtype)
    return x, grad, ((kh, kw), (sh, sw), (pt, pl)), (ho, wo)


@settings(max_examples=60)
@given(pool_case())
def test_avg_pool_and_adjoint_match_naive(case):
    x, grad, geometry, out_hw = case
    tol = dict(rtol=1e-5, atol=1e-6) if x.dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    out = avg_pool2d(x, *geometry, out_hw)
    assert out.dtype == x.dtype
    np.testing.assert_allclose(out, naive.avg_pool2d(x, *geometry, out_hw), **tol)
    dx = avg_pool2d_adjoint(grad, x.shape[1:3], *geometry)
    assert dx.dtype == grad.dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, naive.avg_pool2d_adjoint(grad, x.shape[1:3], *geometry), **tol)
    pending = np.ascontiguousarray(x[::-1])  # another op's gradient of x: added row by row, bit for bit dx + pending
    np.testing.assert_array_equal(avg_pool2d_adjoint(grad, x.shape[1:3], *geometry, pending=pending), dx + pending)


def test_pending_must_have_the_gradients_shape():
    grad = np.ones((1, 2, 2, 3), np.float32)
    with pytest.raises(InputError, match="pending must be"):
        avg_pool2d_adjoint(grad, (4, 4), (2, 2), (2, 2), (0, 0), pending=np.ones((1, 4, 3, 3), np.float32))


def test_windows_without_a_real_pixel_are_refused():
    x = np.zeros((1, 4, 4, 2))
    with pytest.raises(InputError, match="no real pixel"):
        avg_pool2d(x, (2, 2), (2, 2), (0, 0), (3, 2))  # window 2 starts at row 4
    with pytest.raises(InputError, match="x"):
        avg_pool2d(np.zeros((4, 4, 2)), (2, 2), (2, 2), (0, 0), (2, 2))


@settings(max_examples=40)
@given(st.integers(1, 20), st.integers(1, 9), st.integers(1, 9), st.one_of(st.integers(2, 140), st.just(256)),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_spatial_mean_matches_naive_and_numpy(batch, h, w, channels, keepdims, seed):
    """The one mean of the float model and the packed runtime: numpy's result bit for bit, batch 1 included."""
    x = np.random.default_rng(seed).standard_normal((batch, h, w, channels)).astype(np.float32)
    got = mean(x, (1, 2), keepdims)
    np.testing.assert_array_equal(got.reshape(batch, channels), naive.spatial_mean(x))
    np.testing.assert_array_equal(got, x.mean(axis=(1, 2), keepdims=keepdims))
    np.testing.assert_array_equal(mean(x, [-1], keepdims), x.mean(axis=-1, keepdims=keepdims))  # other axes: numpy


@settings(max_examples=30)
@given(st.integers(2, 9), st.integers(1, 40), st.booleans(), st.integers(0, 2**32 - 1))
def test_mean_over_a_short_last_axis_is_numpys_bit_for_bit(k, rows, keepdims, seed):
    """PokeBNN's channel shrink: the fast path for 2-7 values keeps numpy's order, signed zeros included."""
    x = np.random.default_rng(seed).standard_normal((rows, 3, k)).astype(np.float32)
    x[0, 0] = -0.0  # a row of negative zeros: numpy's sum starts at +0.0
    x[0, 1, : k // 2] = np.float32(3e38)  # overflow to inf, as numpy does
    with np.errstate(over="ignore"):
        got, expected = mean(x, -1, keepdims), x.mean(axis=-1, keepdims=keepdims)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@settings(max_examples=20)
@given(st.integers(1, 9), st.integers(1, 5000), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_spread_last_axis(k, rows, dtype, seed):
    """The mean's gradient over a short last axis: each value k times, C-contiguous (blocks of rows, a tail)."""
    values = np.random.default_rng(seed).standard_normal((rows, 2)).astype(dtype)
    got = spread_last_axis(values, k)
    assert got.shape == (rows, 2, k) and got.flags.c_contiguous and got.dtype == dtype
    np.testing.assert_array_equal(got, naive.spread_last_axis(values, k))
