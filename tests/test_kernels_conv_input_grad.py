"""The register-tiled input gradient of a grouped convolution against col2im of per-group products."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from conv_cases import assert_input_grad_matches, conv_geometry
from numbnn.errors import InputError
from numbnn.functional import conv as conv_module
from numbnn.kernels.conv_input_grad import ROWS, conv_input_grad


@st.composite
def grad_case(draw):
    """Grouped (or not) float32 convs with K_g a multiple of 16: odd kernels, stride 2, padding, dilation,
    batch 1, odd output channel counts, output pixel counts that leave a partial tile of ROWS."""
    h, w, ho, wo, args = draw(conv_geometry())
    taps = args["kernel_size"][0] * args["kernel_size"][1]
    cg = draw(st.sampled_from([c for c in (1, 2, 4, 8, 16, 32) if taps * c % 16 == 0]))
    groups, og = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3, 16, 17]))
    n = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    o = groups * og
    grad = rng.standard_normal((n * ho * wo, o)).astype(np.float32)
    weights = rng.standard_normal((o, *args["kernel_size"], cg)).astype(np.float32)
    return grad, weights, (n, h, w, groups * cg), dict(args, groups=groups)


@settings(max_examples=80, deadline=None)
@given(grad_case())
def test_conv_input_grad_matches_naive(case):
    grad, w, shape, args = case
    assert_input_grad_matches(conv_input_grad, naive.conv_input_grad, grad, w, shape, args)


def test_integer_gradients_and_signs_give_exact_sums():
    """Integer gradients times +-1 weights: every partial sum is exact, so any order gives the naive bits."""
    rng = np.random.default_rng(5)
    shape, o = (2, 7, 7, 64), 64
    w = np.where(rng.random((o, 3, 3, 16)) < 0.5, -1.0, 1.0).astype(np.float32)
    grad = rng.integers(-3, 4, (2 * 4 * 4, o)).astype(np.float32)
    args = dict(kernel_size=3, stride=2, padding=1, groups=4)
    assert 16 % ROWS  # the 16 pixels of an image end in a partial tile
    np.testing.assert_array_equal(conv_input_grad(grad, w, shape, **args), naive.conv_input_grad(grad, w, shape, **args))


def test_backward_takes_the_kernel_for_few_outputs_per_group(monkeypatch):
    calls = []
    kernel = conv_module.conv_input_grad
    monkeypatch.setattr(conv_module, "conv_input_grad", lambda *a, **k: calls.append(a[1].shape) or kernel(*a, **k))
    rng = np.random.default_rng(0)
    columns = lambda n0, n1, block, out: conv_module.columns(np.zeros((n1 - n0, 6, 6, 32), np.float32), block, out)  # noqa: E731
    widest = conv_module.TILED_INPUT_GRAD_MAX_OUTPUTS
    for o, groups, dtype in ((8, 2, np.float32), (8, 2, np.float64), (widest, 1, np.float32), (2 * widest, 2, np.float32),
                             (2 * widest, 1, np.float32)):
        shape = conv_module.conv_shape((2, 6, 6, 32), (o, 3, 3, 32 // groups), 1, 1, 1, groups)
        grad2 = rng.standard_normal((shape.rows, o)).astype(dtype)
        w = rng.standard_normal((o, 3, 3, 32 // groups)).astype(dtype)
        conv_module.blocked_backward(grad2, columns, w, shape, True, False)
    # float32 with at most TILED_INPUT_GRAD_MAX_OUTPUTS outputs per group only
    assert calls == [(8, 3, 3, 16), (widest, 3, 3, 32), (2 * widest, 3, 3, 16)]


def test_bad_arguments_raise_input_error():
    grad, w = np.zeros((2 * 16, 8), np.float32), np.zeros((8, 3, 3, 16), np.float32)
    with pytest.raises(InputError, match="multiple of 16"):
        conv_input_grad(np.zeros((2 * 16, 8), np.float32), np.zeros((8, 3, 3, 3), np.float32), (2, 4, 4, 6), 3,
                        padding=1, groups=2)
    with pytest.raises(InputError, match="grad must have shape"):
        conv_input_grad(grad[:5], w, (2, 4, 4, 32), 3, padding=1, groups=2)
    with pytest.raises(InputError, match="w must have shape"):
        conv_input_grad(grad, w[:, :2], (2, 4, 4, 32), 3, padding=1, groups=2)
    with pytest.raises(InputError, match="grad"):
        conv_input_grad(grad.astype(np.float64), w, (2, 4, 4, 32), 3, padding=1, groups=2)
    with pytest.raises(InputError, match="out must be"):
        conv_input_grad(grad, w, (2, 4, 4, 32), 3, padding=1, groups=2, out=np.zeros((2, 4, 4, 32)))
