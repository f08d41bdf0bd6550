"""The table-lookup input gradient of a binary conv against col2im of a float64 product, and the backward that takes it."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings

import naive
from conv_cases import assert_input_grad_matches, assert_same_bits_on_1_and_2_threads, sign_input_grad_case
from numbnn.errors import InputError
from numbnn.functional import binary as binary_module
from numbnn.kernels.sign_conv_input_grad import sign_conv_input_grad


# output channel counts per group off multiples of 4 (a partial table) and past 32 (more than one step of 8
# lookups); 16 and 32 input channels: whole 16x16 blocks of grad, transposed in registers; up to 9 images: pixel
# counts that leave partial 16-pixel blocks
GRAD_CASES = sign_input_grad_case([1, 3, 4, 7, 16, 32, 33, 70], 9)


@settings(max_examples=80, deadline=None)
@given(GRAD_CASES)
def test_sign_conv_input_grad_matches_naive(case):
    grad, w, shape, args = case
    assert_input_grad_matches(sign_conv_input_grad, naive.sign_conv_input_grad, grad, w, shape, args)


@pytest.mark.parametrize("groups", [1, 2])
def test_integer_gradients_give_exact_sums(groups):
    """Integer gradients, no scale: every partial sum is exact, so any order gives the naive bits; 49 pixels
    per image, so tasks of several images fill whole 16-pixel blocks."""
    rng = np.random.default_rng(3)
    shape, o = (20, 7, 7, 32 * groups), 130
    w = rng.standard_normal((o, 3, 3, 32)).astype(np.float32)
    grad = rng.integers(-4, 5, (20 * 49, o)).astype(np.float32)
    got = sign_conv_input_grad(grad, w, shape, 3, padding=1, groups=groups)
    np.testing.assert_array_equal(got, naive.sign_conv_input_grad(grad, w, shape, 3, padding=1, groups=groups))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_the_sums_do_not_depend_on_the_thread_count():
    """Tasks of fewer images with more threads: the 16-pixel blocks stay where they are (49 pixels per image,
    so tasks' edges fall inside blocks), and every element of dx sums in the same order: the same bits."""
    rng = np.random.default_rng(4)
    shape, o = (6, 7, 7, 32), 40
    w = rng.standard_normal((o, 3, 3, 32)).astype(np.float32)
    grad = rng.standard_normal((6 * 49, o)).astype(np.float32)
    assert_same_bits_on_1_and_2_threads(sign_conv_input_grad, grad, w, shape, 3, padding=1)


def test_bad_arguments_raise_input_error():
    grad, w = np.zeros((2 * 16, 8), np.float32), np.zeros((8, 3, 3, 16), np.float32)
    with pytest.raises(InputError, match="multiple of 16"):
        sign_conv_input_grad(grad, np.zeros((8, 3, 3, 8), np.float32), (2, 4, 4, 8), 3, padding=1)
    with pytest.raises(InputError, match="multiple of 16"):
        sign_conv_input_grad(grad, np.zeros((8, 3, 3, 8), np.float32), (2, 4, 4, 16), 3, padding=1, groups=2)
    with pytest.raises(InputError, match="w must have shape"):
        sign_conv_input_grad(grad, w, (2, 4, 4, 48), 3, padding=1, groups=3)  # 8 outputs, not divisible by 3
    with pytest.raises(InputError, match="grad must have shape"):
        sign_conv_input_grad(grad[:5], w, (2, 4, 4, 16), 3, padding=1)
    with pytest.raises(InputError, match="w must have shape"):
        sign_conv_input_grad(grad, w[:, :2], (2, 4, 4, 16), 3, padding=1)
    with pytest.raises(InputError, match="grad must have dtype"):
        sign_conv_input_grad(grad.astype(np.float64), w, (2, 4, 4, 16), 3, padding=1)
    with pytest.raises(InputError, match="scale must have shape"):
        sign_conv_input_grad(grad, w, (2, 4, 4, 16), 3, padding=1, scale=np.ones(7, np.float32))
    with pytest.raises(InputError, match="out must be"):
        sign_conv_input_grad(grad, w, (2, 4, 4, 16), 3, padding=1, out=np.zeros((2, 4, 4, 16)))


def test_binary_conv_backward_takes_the_lookup_for_wide_ungrouped_convs(monkeypatch):
    """A 3x3 binary conv with at least 32 outputs per group, on whole vectors of input channels per group and
    big enough gets its input gradient from the lookup kernel; narrower or smaller ones do not (the permute
    of sign tables, which takes some of them on AVX-512, switched off)."""
    rng = np.random.default_rng(1)
    monkeypatch.setattr(binary_module, "PERMUTE_INPUT_GRAD_MAX_OUTPUTS", 0)

    def takes(n, c, o, groups=1, size=7):
        x = np.zeros((n, size, size, c), np.float32)
        s = binary_module.conv_shape(x.shape, (o, 3, 3, c // groups), 1, 1, 1, groups)
        return binary_module._lookup_input_grad(x, np.zeros((s.rows, o), np.float32), s)

    assert takes(128, 128, 128) and takes(128, 32, 32) and not takes(128, 32, 16) and not takes(128, 120, 128)
    assert takes(128, 128, 128, groups=4) and not takes(128, 64, 64, groups=4)  # 32 and 16 outputs per group
    assert not takes(128, 96, 96, groups=4)  # 24 input channels per group
    assert not takes(1, 128, 128, size=4)  # 2.4M multiply-adds
    calls = []
    kernel = binary_module.kernels.sign_conv_input_grad
    monkeypatch.setattr(binary_module.kernels, "sign_conv_input_grad", lambda *a, **k: calls.append(a[2]) or kernel(*a, **k))
    monkeypatch.setattr(binary_module, "LOOKUP_INPUT_GRAD_MIN_MACS", 0)
    x = rng.standard_normal((3, 7, 7, 16)).astype(np.float32)
    w = rng.standard_normal((80, 3, 3, 16)).astype(np.float32)
    scale = rng.random(80).astype(np.float32)
    s = binary_module.conv_shape(x.shape, w.shape, 2, 1, 1, 1)
    grad2 = rng.standard_normal((s.rows, 80)).astype(np.float32)
    got = binary_module._sign_input_grad(grad2, w, scale, s)
    assert calls == [(3, 7, 7, 16)]
    want = naive.sign_conv_input_grad(grad2, w, x.shape, 3, 2, 1, scale=scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
