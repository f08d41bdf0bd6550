"""The table-lookup product G (scale * sign(W)) against its naive twin, and the binary conv backward that uses it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from numbnn.errors import InputError
from numbnn.functional import binary as binary_module
from numbnn.kernels.sign_weight_matmul import sign_weight_matmul


@st.composite
def product_case(draw):
    """Rows and columns on and off multiples of 16 (the transposed 16x16 store and its scalar tail), output
    channel counts off multiples of 4 (a partial table) and past 32 (more than one step of 8 lookups)."""
    m = draw(st.sampled_from([1, 5, 16, 17, 32, 47]))
    o = draw(st.sampled_from([1, 3, 4, 7, 33, 64, 130]))
    k = draw(st.sampled_from([1, 9, 16, 31, 48, 100]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.standard_normal((o, k)).astype(draw(st.sampled_from([np.float32, np.float64])))
    w[rng.random((o, k)) < 0.1] = 0.0  # sign(0) = +1
    scale = rng.random(o).astype(np.float32) if draw(st.booleans()) else None
    return rng.standard_normal((m, o)).astype(np.float32), w, scale


@settings(max_examples=80, deadline=None)
@given(product_case())
def test_sign_weight_matmul_matches_naive(case):
    g, w, scale = case
    out = np.full((g.shape[0], w.shape[1]), np.nan, dtype=np.float32)
    assert sign_weight_matmul(g, w, scale, out=out) is out
    want = naive.sign_weight_matmul(g, w, scale)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))


def test_integer_gradients_give_exact_sums():
    """Integer g with +-1 weights and no scale: every partial sum is exact, so any order gives the naive bits."""
    rng = np.random.default_rng(3)
    g = rng.integers(-4, 5, (48, 130)).astype(np.float32)
    w = rng.standard_normal((130, 64)).astype(np.float32)
    np.testing.assert_array_equal(sign_weight_matmul(g, w), naive.sign_weight_matmul(g, w))


def test_bad_arguments_raise_input_error():
    g, w = np.zeros((4, 8), np.float32), np.zeros((8, 5), np.float32)
    with pytest.raises(InputError, match="g must have dtype"):
        sign_weight_matmul(g.astype(np.float64), w)
    with pytest.raises(InputError, match="w must have 8 rows"):
        sign_weight_matmul(g, w[:7])
    with pytest.raises(InputError, match="scale must have shape"):
        sign_weight_matmul(g, w, np.ones(7, np.float32))
    with pytest.raises(InputError, match="out must be"):
        sign_weight_matmul(g, w, out=np.zeros((4, 5)))


@pytest.mark.parametrize("stride", [1, 2])
def test_binary_conv_backward_takes_the_lookup_for_wide_ungrouped_convs(monkeypatch, stride):
    """With the size threshold at 0, a 3x3 binary conv with more than 64 outputs gets its input gradient from
    the lookup product (several image blocks, scale folded in), equal to the BLAS path's to float32 rounding."""
    calls = []
    kernel = binary_module.kernels.sign_weight_matmul
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7, 7, 16)).astype(np.float32)
    w = rng.standard_normal((80, 3, 3, 16)).astype(np.float32)
    scale = rng.random(80).astype(np.float32)
    s = binary_module.conv_shape(x.shape, w.shape, stride, 1, 1, 1)
    grad2 = rng.standard_normal((s.rows, 80)).astype(np.float32)
    monkeypatch.setattr(binary_module, "image_blocks", lambda shape: [(0, 2), (2, 3)])
    monkeypatch.setattr(binary_module.kernels, "sign_weight_matmul", lambda *a, **k: calls.append(a[0].shape) or kernel(*a, **k))
    monkeypatch.setattr(binary_module, "LOOKUP_INPUT_GRAD_MIN_MACS", 0)
    assert binary_module._lookup_input_grad(x, w, grad2, s)
    got = binary_module._sign_input_grad(grad2, w, scale, s)
    pixels = s.geom.ho * s.geom.wo
    assert calls == [(2 * pixels, 80), (pixels, 80)]
    want = naive.conv_input_grad(grad2 * scale, np.where(w < 0, -1.0, 1.0), x.shape, 3, stride, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    monkeypatch.setattr(binary_module, "LOOKUP_INPUT_GRAD_MIN_MACS", 1 << 62)
    assert not binary_module._lookup_input_grad(x, w, grad2, s)
    assert not binary_module._lookup_input_grad(x, w[:64], grad2[:, :64], binary_module.conv_shape(x.shape, (64, 3, 3, 16), stride, 1, 1, 1))
