"""conv2d: forward vs a naive loop reference, backward vs finite differences (float64), all paths
(im2col GEMM, 1x1 reshape/strided, grouped, depthwise shift-and-add with channel multiplier)."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbnn.functional as F
import numbnn.functional.conv as conv_module
from gradcheck import check_gradients
from numbnn.autograd import Tensor
from numbnn.errors import InputError


def naive_conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, pad_value=0.0):
    """Direct definition: out[n,y,x,o] = sum_{i,k,c} xpad[n, y*s+i*d, x*s+k*d, group(o)*Cg + c] * w[o,i,k,c]."""
    n, h, wd, c = x.shape
    o_ch, kh, kw, cg = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=pad_value)
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    og = o_ch // groups
    out = np.zeros((n, ho, wo, o_ch), dtype=np.float64)
    for b in range(n):
        for y in range(ho):
            for xx in range(wo):
                for o in range(o_ch):
                    grp = o // og
                    for i in range(kh):
                        for k in range(kw):
                            pix = xp[b, y * stride + i * dilation, xx * stride + k * dilation, grp * cg : (grp + 1) * cg]
                            out[b, y, xx, o] += pix @ w[o, i, k]
    return out if bias is None else out + bias


@st.composite
def conv_case(draw, max_side=6):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 2, 3]))
    stride = draw(st.integers(1, 2))
    padding = draw(st.integers(0, k // 2 + 1)) if k > 1 else draw(st.sampled_from([0, 0, 1]))
    dilation = draw(st.integers(1, 2))
    span = dilation * (k - 1) + 1
    h = draw(st.integers(max(1, span - 2 * padding), max_side))
    w = draw(st.integers(max(1, span - 2 * padding), max_side))
    n = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, h, w, cg * groups))
    wt = rng.standard_normal((og * groups, k, k, cg))
    bias = rng.standard_normal(og * groups) if draw(st.booleans()) else None
    return x, wt, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@settings(max_examples=30)
@given(conv_case())
def test_conv2d_forward_matches_naive(case):
    x, w, bias, kw = case
    np.testing.assert_allclose(F.conv2d(x, w, bias, **kw).data, naive_conv2d(x, w, bias, **kw), rtol=1e-10, atol=1e-10)


@settings(max_examples=20)
@given(conv_case(max_side=5))
def test_conv2d_gradients_match_finite_differences(case):
    x, w, bias, kw = case
    if bias is None:
        check_gradients(lambda a, b: F.conv2d(a, b, **kw), x, w)
    else:
        check_gradients(lambda a, b, c: F.conv2d(a, b, c, **kw), x, w, bias)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.sampled_from([1, 3, 5]), st.integers(1, 3), st.sampled_from([1, 3]), st.integers(1, 2),
       st.integers(0, 1), st.integers(1, 2), st.booleans(), st.integers(0, 2**16))
def test_grouped_conv2d_equals_each_group_run_alone(groups, cg, og, k, stride, padding, n, one_image_blocks, seed):
    """Output and gradients of a grouped conv (group-major columns, one product per group on strided
    views) equal its groups run as separate ungrouped convs on their channel slices, concatenated."""
    rng = np.random.default_rng(seed)
    side = max(1, k - 2 * padding) + int(rng.integers(0, 4))
    x, w = rng.standard_normal((n, side, side + 1, groups * cg)), rng.standard_normal((groups * og, k, k, cg))
    kw = dict(stride=stride, padding=padding)
    with mock.patch.object(conv_module, "BLOCK_ROWS", 1 if one_image_blocks else 10**9):
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        out = F.conv2d(xt, wt, groups=groups, **kw)
        upstream = rng.standard_normal(out.shape)
        out.backward(upstream)
        want = []
        for i in range(groups):
            xi = Tensor(x[..., i * cg : (i + 1) * cg], requires_grad=True)
            wi = Tensor(w[i * og : (i + 1) * og], requires_grad=True)
            oi = F.conv2d(xi, wi, **kw)
            oi.backward(upstream[..., i * og : (i + 1) * og])
            want.append((oi.data, xi.grad, wi.grad))
    outs, dxs, dws = zip(*want)
    expected = (np.concatenate(outs, -1), np.concatenate(dxs, -1), np.concatenate(dws))
    for got, want_ in zip((out.data, xt.grad, wt.grad), expected):
        np.testing.assert_allclose(got, want_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mult", [1, 2])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 0, 2), (2, 2, 2)])
def test_depthwise_path(mult, stride, padding, dilation):
    rng = np.random.default_rng(mult + 10 * stride)
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((3 * mult, 3, 3, 1))
    b = rng.standard_normal(3 * mult)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=3)
    np.testing.assert_allclose(F.conv2d(x, w, b, **kw).data, naive_conv2d(x, w, b, **kw), rtol=1e-10, atol=1e-10)
    check_gradients(lambda a, c, d: F.conv2d(a, c, d, **kw), x, w, b)


def test_only_requested_gradients_are_computed():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((1, 4, 4, 2)))
    w = Tensor(rng.standard_normal((3, 3, 3, 2)), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None and w.grad.shape == w.shape


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_float32_in_float32_out(groups):
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((2, 5, 5, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 4 // groups)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(4, dtype=np.float32), requires_grad=True)
    y = F.conv2d(x, w, b, stride=2, padding=1, groups=groups)
    assert y.dtype == np.float32
    (y * 0.5).sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_bad_arguments_raise_input_error():
    x = np.zeros((1, 4, 4, 3))
    with pytest.raises(InputError, match="channels"):
        F.conv2d(x, np.zeros((2, 3, 3, 2)))
    with pytest.raises(InputError, match="groups"):
        F.conv2d(np.zeros((1, 4, 4, 4)), np.zeros((3, 3, 3, 2)), groups=2)
    with pytest.raises(InputError, match="too small"):
        F.conv2d(x, np.zeros((2, 5, 5, 3)))
    with pytest.raises(InputError, match="NHWC"):
        F.conv2d(np.zeros((4, 4, 3)), np.zeros((2, 3, 3, 3)))
    with pytest.raises(InputError, match="stride"):
        F.conv2d(x, np.zeros((2, 3, 3, 3)), stride=0)


@pytest.mark.parametrize("op", [F.conv2d, F.binary_conv2d])
@pytest.mark.parametrize("kernel,stride,groups", [(3, 1, 1), (3, 2, 2), (2, 1, 1), (1, 2, 1)])
def test_image_blocking_does_not_change_results(monkeypatch, op, kernel, stride, groups):
    """Blocks of one image (BLOCK_ROWS=1), or of two with a shorter last block, give the same values and
    gradients as one whole-batch block."""
    rng = np.random.default_rng(kernel + stride)
    x = rng.standard_normal((3, 5, 6, 4))
    w = rng.standard_normal((6, kernel, kernel, 4 // groups))
    pixels = np.prod(F.conv2d(x[:1], w, stride=stride, padding=1, groups=groups).shape[1:3])
    results = []
    for block_rows in (10**9, 1, 2 * pixels):
        monkeypatch.setattr(conv_module, "BLOCK_ROWS", block_rows)
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        out = op(xt, wt, stride=stride, padding=1, groups=groups)
        out.backward(np.random.default_rng(0).standard_normal(out.shape))
        results.append((out.data, xt.grad, wt.grad))
    for blocked_results in results[1:]:
        for whole, blocked in zip(results[0], blocked_results):
            np.testing.assert_allclose(whole, blocked, rtol=1e-12, atol=1e-12)


def test_an_empty_batch_gives_an_empty_output_and_zero_gradients():
    x = Tensor(np.zeros((0, 6, 6, 4), np.float32), requires_grad=True)
    w = Tensor(np.ones((8, 3, 3, 4), np.float32), requires_grad=True)
    y = F.conv2d(x, w, stride=2, padding=1)
    assert y.shape == (0, 3, 3, 8)
    y.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and not w.grad.any()
