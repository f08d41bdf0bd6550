"""im2col / col2im (also grouped) against naive loops, the adjoint identity, and argument errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from conv_cases import conv_geometry
from numbnn.errors import InputError
from numbnn.kernels import col2im, conv_output_size, im2col


@st.composite
def conv_case(draw):
    """A float NHWC input and conv arguments whose output is at least 1x1."""
    h, w, _, _, args = draw(conv_geometry(max_kernel=4, max_stride=3, max_size=8))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 7))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    return x, args, rng


@settings(max_examples=60)
@given(conv_case())
def test_im2col_matches_naive(case):
    x, args, _ = case
    got = im2col(x, **args)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, naive.im2col(x, **args))


def test_im2col_fills_a_given_out_buffer():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    out = np.full((2 * 5 * 6, 27), np.nan, dtype=np.float32)
    assert im2col(x, 3, padding=1, out=out) is out
    np.testing.assert_array_equal(out, naive.im2col(x, 3, padding=1))


@settings(max_examples=40)
@given(conv_case(), st.sampled_from([0, 1, -1]))
def test_sign_im2col_matches_naive_columns_of_the_padded_signs(case, pad_value):
    x, args, _ = case
    x.flat[:: 5] = 0.0  # sign(0) = +1
    x.flat[1:: 7] = -0.0  # sign(-0.0) = +1 too
    (ph, pw) = args["padding"]
    signs = np.pad(np.where(x < 0, -1.0, 1.0).astype(x.dtype), ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=pad_value)
    expected = naive.im2col(signs, **(args | {"padding": 0}))
    out = np.full(expected.shape, np.nan, dtype=x.dtype)
    assert im2col(x, **args, signs=True, pad_value=pad_value, out=out) is out
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=60)
@given(conv_case())
def test_col2im_matches_naive_and_is_adjoint(case):
    x, args, rng = case
    cols = rng.standard_normal(im2col(x, **args).shape).astype(x.dtype)
    got = col2im(cols, x.shape, **args)
    assert got.dtype == x.dtype and got.shape == x.shape
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, naive.col2im(cols, x.shape, **args), rtol=tol, atol=tol)
    lhs = np.dot(im2col(x, **args).astype(np.float64).ravel(), cols.astype(np.float64).ravel())
    rhs = np.dot(x.astype(np.float64).ravel(), got.astype(np.float64).ravel())
    assert lhs == pytest.approx(rhs, rel=tol * 10, abs=tol * 10)


def test_col2im_overwrites_a_given_out_slice():
    rng = np.random.default_rng(4)
    cols = rng.standard_normal((2 * 3 * 3, 3 * 3 * 2)).astype(np.float32)
    batch = np.full((5, 6, 6, 2), np.nan, dtype=np.float32)  # images 1:3 receive the result
    assert col2im(cols, (2, 6, 6, 2), 3, stride=2, padding=1, out=batch[1:3]) is not None
    np.testing.assert_allclose(batch[1:3], naive.col2im(cols, (2, 6, 6, 2), 3, stride=2, padding=1), rtol=1e-6, atol=1e-6)
    assert np.isnan(batch[0]).all() and np.isnan(batch[3:]).all()


@st.composite
def grouped_case(draw):
    """conv_case with C = groups * C_g channels: 2-4 groups, odd C_g included."""
    x, args, rng = draw(conv_case())
    groups, per_group = draw(st.integers(2, 4)), draw(st.sampled_from([1, 2, 3, 5]))
    x = rng.standard_normal(x.shape[:3] + (groups * per_group,)).astype(x.dtype)
    x.flat[::5] = 0.0  # sign(0) = +1
    return x, args, rng, groups


@settings(max_examples=60)
@given(grouped_case(), st.sampled_from([None, 0, 1, -1]))
def test_grouped_columns_are_each_groups_columns_side_by_side(case, pad_value):
    """Group g's block of columns is the im2col of its channel slice (float columns, or signs with
    padding taps = pad_value), and col2im with groups scatters each block back onto its slice."""
    x, args, rng, groups = case
    signs = {} if pad_value is None else dict(signs=True, pad_value=pad_value)
    got = im2col(x, **args, groups=groups, **signs)
    if pad_value is None:
        expected = naive.im2col(x, **args, groups=groups)
    else:
        (ph, pw) = args["padding"]
        padded = np.pad(naive.signs(x).astype(x.dtype), ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=pad_value)
        expected = naive.im2col(padded, **(args | {"padding": 0}), groups=groups)
    np.testing.assert_array_equal(got, expected)
    cols = rng.standard_normal(got.shape).astype(x.dtype)
    back = col2im(cols, x.shape, **args, groups=groups)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back, naive.col2im(cols, x.shape, **args, groups=groups), rtol=tol, atol=tol)
    lhs = np.dot(im2col(x, **args, groups=groups).astype(np.float64).ravel(), cols.astype(np.float64).ravel())
    assert lhs == pytest.approx(np.dot(x.astype(np.float64).ravel(), back.astype(np.float64).ravel()), rel=tol * 10, abs=tol * 10)


def test_im2col_matmul_is_a_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((4, 3, 2, 3))  # OHWI
    out = im2col(x, (3, 2), stride=(2, 1), padding=(1, 0)) @ w.reshape(4, -1).T
    ho, wo = conv_output_size(6, 3, 2, 1, 1), conv_output_size(5, 2, 1, 0, 1)
    xp = np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)))
    expected = np.zeros((2, ho, wo, 4))
    for oy in range(ho):
        for ox in range(wo):
            patch = xp[:, 2 * oy : 2 * oy + 3, ox : ox + 2, :]
            expected[:, oy, ox, :] = np.einsum("nhwc,ohwc->no", patch, w)
    np.testing.assert_allclose(out.reshape(2, ho, wo, 4), expected, rtol=1e-12)


def test_conv_output_size():
    assert conv_output_size(14, 3, 1, 1, 1) == 14
    assert conv_output_size(14, 3, 2, 1, 1) == 7
    assert conv_output_size(7, 3, 1, 0, 2) == 3
    assert conv_output_size(2, 3, 1, 0, 1) == 0


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: im2col(np.zeros((1, 4, 4, 2), np.int32), 3), "x"),
        (lambda: im2col(np.zeros((4, 4, 2), np.float32), 3), "x"),
        (lambda: im2col([[1.0]], 3), "x"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 0), "kernel_size"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), (3, 3, 3)), "kernel_size"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, stride=0), "stride"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, padding=-1), "padding"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, dilation=0), "dilation"),
        (lambda: im2col(np.zeros((1, 2, 2, 2)), 3), "x"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, out=np.zeros((4, 18), np.float32)), "out"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, out=np.zeros((4, 17))), "out"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, out=np.zeros((18, 4)).T), "out"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, signs=True, pad_value=2), "pad_value"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, pad_value=1), "pad_value"),
        (lambda: im2col(np.zeros((1, 4, 4, 2)), 3, signs=1), "signs"),
        (lambda: col2im(np.zeros((4, 18)), (1, 4, 4, 2), 3, out=np.zeros((1, 4, 4, 2), np.float32)), "out"),
        (lambda: col2im(np.zeros((5, 18)), (1, 4, 4, 2), 3), "cols"),
        (lambda: col2im(np.zeros((4, 18), np.int64), (1, 4, 4, 2), 3), "cols"),
        (lambda: col2im(np.zeros((4, 18)), (1, 4, 4), 3), "input_shape"),
        (lambda: col2im(np.zeros((4, 18)), (1, 4, -4, 2), 3), "input_shape"),
        (lambda: im2col(np.zeros((1, 4, 4, 6)), 3, groups=4), "groups"),
        (lambda: im2col(np.zeros((1, 4, 4, 6)), 3, groups=0), "groups"),
        (lambda: col2im(np.zeros((4, 54)), (1, 4, 4, 6), 3, groups=4), "groups"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(InputError, match=name):
        call()
