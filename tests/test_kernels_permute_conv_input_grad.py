"""The input gradient by a permute of per-pixel sign tables against col2im of a float64 product, its gate on
AVX-512F, and the binary conv backward that takes it."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings

import naive
from conv_cases import assert_input_grad_matches, assert_same_bits_on_1_and_2_threads, sign_input_grad_case
from numbnn.errors import InputError
from numbnn.functional import binary as binary_module
from numbnn.kernels.permute_conv_input_grad import available, permute_conv_input_grad

needs_avx512 = pytest.mark.skipif(not available(), reason="the permute kernel needs AVX-512F")


# 16 outputs per group (chunks of 4 quads for 4 pixels), 32 and 64 (chunks of 8 quads for 2 pixels), 48 (4 quads
# at a time again); pixel counts that leave a last group of fewer pixels
GRAD_CASES = sign_input_grad_case([16, 32, 48, 64], 5)


@needs_avx512
@settings(max_examples=80, deadline=None)
@given(GRAD_CASES)
def test_permute_conv_input_grad_matches_naive(case):
    grad, w, shape, args = case
    assert_input_grad_matches(permute_conv_input_grad, naive.sign_conv_input_grad, grad, w, shape, args)


@needs_avx512
@pytest.mark.parametrize("groups, per_group, stride", [(1, 32, 1), (4, 16, 1), (2, 64, 2), (4, 16, 2)])
def test_integer_gradients_give_exact_sums(groups, per_group, stride):
    """Integer gradients, no scale: every partial sum is exact, so any order gives the naive bits (49 pixels
    per image: 12 groups of 4 pixels and one left over, or 24 pairs and one)."""
    rng = np.random.default_rng(3)
    shape, o = (5, 7 * stride, 7 * stride, 16 * groups), per_group * groups
    w = rng.standard_normal((o, 3, 3, 16)).astype(np.float32)
    grad = rng.integers(-4, 5, (5 * 49, o)).astype(np.float32)
    got = permute_conv_input_grad(grad, w, shape, 3, stride, padding=1, groups=groups)
    np.testing.assert_array_equal(got, naive.sign_conv_input_grad(grad, w, shape, 3, stride, padding=1, groups=groups))


@needs_avx512
@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_the_sums_do_not_depend_on_the_thread_count():
    """A task owns whole images and walks them in one order: the same bits on 1 and 2 threads."""
    rng = np.random.default_rng(4)
    shape, o = (6, 7, 7, 32), 32
    w = rng.standard_normal((o, 3, 3, 32)).astype(np.float32)
    grad = rng.standard_normal((6 * 49, o)).astype(np.float32)
    assert_same_bits_on_1_and_2_threads(permute_conv_input_grad, grad, w, shape, 3, padding=1)


def test_the_gate_reads_the_features_numba_compiles_for(monkeypatch):
    """NUMBA_CPU_FEATURES, when set, decides (LLVM stops the process on a 16-lane permute without AVX-512F)."""
    for features, has in (("+avx2,+fma,-avx512f", False), ("", False), ("+avx2,+avx512f,+avx512bw", True)):
        monkeypatch.setattr(numba.config, "CPU_FEATURES", features)
        available.cache_clear()
        assert available() is has
    monkeypatch.undo()
    available.cache_clear()


@needs_avx512
def test_bad_arguments_raise():
    grad = np.zeros((2 * 16, 16), np.float32)
    w = np.zeros((16, 3, 3, 16), np.float32)
    with pytest.raises(InputError, match="multiples of 16"):
        permute_conv_input_grad(grad, np.zeros((16, 3, 3, 8), np.float32), (2, 4, 4, 8), 3, padding=1)
    with pytest.raises(InputError, match="multiples of 16"):
        permute_conv_input_grad(np.zeros((32, 24), np.float32), np.zeros((24, 3, 3, 16), np.float32), (2, 4, 4, 16), 3,
                                padding=1)
    with pytest.raises(InputError, match="grad must have shape"):
        permute_conv_input_grad(grad[:5], w, (2, 4, 4, 16), 3, padding=1)
    with pytest.raises(InputError, match="scale must have shape"):
        permute_conv_input_grad(grad, w, (2, 4, 4, 16), 3, padding=1, scale=np.ones(7, np.float32))
    with pytest.raises(InputError):
        permute_conv_input_grad(grad.astype(np.float64), w, (2, 4, 4, 16), 3, padding=1)


@needs_avx512
def test_binary_conv_backward_takes_the_permute_for_convs_it_wins_on(monkeypatch):
    """Binary convs on whole vectors of input and output channels per group take the permute: 3x3 ones with 16 to
    PERMUTE_INPUT_GRAD_MAX_OUTPUTS outputs per group (FTBNN's 16 included), 1x1 ones from
    PERMUTE_INPUT_GRAD_MIN_POINTWISE_INPUTS inputs per group up to PERMUTE_INPUT_GRAD_MAX_OUTPUTS_POINTWISE
    outputs; wider, narrower, ragged or small ones do not; the result is the float64 definition's."""
    def takes(n, c, o, groups=1, size=7, k=3):
        x = np.zeros((n, size, size, c), np.float32)
        s = binary_module.conv_shape(x.shape, (o, k, k, c // groups), 1, k // 2, 1, groups)
        return binary_module._permute_input_grad(np.zeros((s.rows, o), np.float32), s)

    assert takes(128, 64, 64, groups=4) and takes(128, 32, 32) and takes(128, 256, 256, size=4)
    assert not takes(128, 512, 512, size=4) and not takes(128, 40, 40)
    assert takes(128, 64, 64, k=1) and takes(128, 256, 512, k=1)
    assert not takes(128, 32, 128, k=1) and not takes(128, 256, 1024, k=1)
    assert not takes(1, 32, 32, size=4)  # below the multiply-adds that pay for the thread pool
    calls = []
    kernel = binary_module.kernels.permute_conv_input_grad
    monkeypatch.setattr(binary_module.kernels, "permute_conv_input_grad",
                        lambda *a, **k: calls.append(a[2]) or kernel(*a, **k))
    monkeypatch.setattr(binary_module, "LOOKUP_INPUT_GRAD_MIN_MACS", 0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7, 7, 32)).astype(np.float32)
    w = rng.standard_normal((64, 3, 3, 16)).astype(np.float32)
    scale = rng.random(64).astype(np.float32)
    s = binary_module.conv_shape(x.shape, w.shape, 2, 1, 1, 2)
    assert binary_module._lookup_input_grad(x, np.zeros((s.rows, 64), np.float32), s)
    grad2 = rng.standard_normal((s.rows, 64)).astype(np.float32)
    got = binary_module._sign_input_grad(grad2, w, scale, s)
    assert calls == [(3, 7, 7, 32)]
    want = naive.sign_conv_input_grad(grad2, w, x.shape, 3, 2, 1, groups=2, scale=scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@needs_avx512
@pytest.mark.parametrize("model_name", ["reactnet-a", "ftbnn"])
def test_a_model_gets_the_same_gradients_with_and_without_the_permute(monkeypatch, model_name):
    """A zoo model's parameter gradients on a batch with the permute input gradient on and off (the lookup, tiled
    and BLAS paths instead) agree to float32 rounding: every 3x3 and 1x1 binary conv shape of the model passes
    through it (multiply-add thresholds off)."""
    from numbnn.autograd.tensor import Tensor
    from numbnn.bench.train import synthetic_batches
    from numbnn.functional import cross_entropy
    from numbnn.models import build_model

    monkeypatch.setattr(binary_module, "LOOKUP_INPUT_GRAD_MIN_MACS", 0)
    model = build_model(model_name)
    model.train()
    x, y = synthetic_batches(4, 1)[0]

    def gradients():
        for p in model.parameters():
            p.grad = None
        cross_entropy(model(Tensor(x)), y).backward()
        return [np.array(p.grad, dtype=np.float64) for p in model.parameters()]

    calls = []
    kernel = binary_module.kernels.permute_conv_input_grad
    monkeypatch.setattr(binary_module.kernels, "permute_conv_input_grad", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    with_permute = gradients()
    assert calls
    monkeypatch.setattr(binary_module, "PERMUTE_INPUT_GRAD_MAX_OUTPUTS", 0)
    monkeypatch.setattr(binary_module, "PERMUTE_INPUT_GRAD_MAX_OUTPUTS_POINTWISE", 0)
    without = gradients()
    for got, want in zip(with_permute, without):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(np.abs(want).max(), 1e-12))
