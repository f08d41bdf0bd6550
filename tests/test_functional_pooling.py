"""Pooling (functional/pooling.py) vs a loop over windows, with gradients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbnn.functional as F
from gradcheck import check_gradients
from numbnn.autograd import Tensor
from numbnn.errors import InputError


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def naive_pool(x, k, s, pad, op):
    """Loop over windows; pad = (top, bottom, left, right); padding excluded from max and mean."""
    n, h, w, c = x.shape
    pt, pb, pl, pr = pad
    ho, wo = (h + pt + pb - k) // s + 1, (w + pl + pr - k) // s + 1
    out = np.zeros((n, ho, wo, c))
    for y in range(ho):
        for xx in range(wo):
            y0, x0 = y * s - pt, xx * s - pl
            window = x[:, max(y0, 0) : min(y0 + k, h), max(x0, 0) : min(x0 + k, w)]
            out[:, y, xx] = window.max(axis=(1, 2)) if op == "max" else window.mean(axis=(1, 2))
    return out


@settings(max_examples=20)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 1), st.integers(3, 7), st.integers(3, 7), st.integers(0, 999))
def test_pooling_vs_naive_and_gradients(k, s, p, h, w, seed):
    p = min(p, k // 2)
    x = _randn(2, h, w, 3, seed=seed)
    for fn, op in ((F.avg_pool2d, "avg"), (F.max_pool2d, "max")):
        np.testing.assert_allclose(fn(x, k, s, p).data, naive_pool(x, k, s, (p, p, p, p), op), rtol=1e-12)
        check_gradients(lambda t: fn(t, k, s, p), x)


@pytest.mark.parametrize("h,k,s", [(7, 3, 2), (14, 3, 2), (5, 2, 2), (6, 3, 1)])
def test_same_padding_matches_tensorflow_rule(h, k, s):
    x = _randn(1, h, h, 2)
    ho = -(-h // s)
    total = max((ho - 1) * s + k - h, 0)
    pad = (total // 2, total - total // 2) * 2
    for fn, op in ((F.avg_pool2d, "avg"), (F.max_pool2d, "max")):
        out = fn(x, k, s, "same")
        assert out.shape == (1, ho, ho, 2)
        np.testing.assert_allclose(out.data, naive_pool(x, k, s, pad, op), rtol=1e-12)
        check_gradients(lambda t: fn(t, k, s, "same"), x)


def test_tiled_avg_pool_path_and_stride_default():
    x = _randn(2, 4, 6, 3)
    np.testing.assert_allclose(F.avg_pool2d(x, 2).data, naive_pool(x, 2, 2, (0, 0, 0, 0), "avg"), rtol=1e-12)
    check_gradients(lambda t: F.avg_pool2d(t, 2), x)
    assert F.avg_pool2d(x.astype(np.float32), 2).dtype == np.float32


def test_max_pool_gradient_goes_to_one_of_tied_maxima():
    x = Tensor(np.ones((1, 2, 2, 1)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert x.grad.sum() == 1.0 and x.grad[0, 0, 0, 0] == 1.0


def test_global_avg_pool_and_pool_errors():
    x = _randn(2, 3, 4, 5)
    np.testing.assert_allclose(F.global_avg_pool(x).data, x.mean(axis=(1, 2)))
    check_gradients(F.global_avg_pool, x)
    with pytest.raises(InputError):
        F.avg_pool2d(x, 3, padding=2)
    with pytest.raises(InputError):
        F.max_pool2d(x, 5)
    with pytest.raises(InputError):
        F.avg_pool2d(x, 2, padding="valid-ish")
