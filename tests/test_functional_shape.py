"""Shape ops (functional/shape.py): concat, add, reshape, pad, roll, space/depth, channel shuffle."""

import numpy as np
import pytest

import numbnn.functional as F
from gradcheck import check_gradients
from numbnn.autograd import Tensor
from numbnn.errors import InputError


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_concat_add_reshape_pad():
    a, b, c = _randn(2, 3, 1), _randn(2, 3, 4, seed=1), _randn(2, 3, 2, seed=2)
    np.testing.assert_array_equal(F.concat([a, b, c]).data, np.concatenate([a, b, c], axis=-1))
    check_gradients(lambda *t: F.concat(t, axis=-1), a, b, c)
    check_gradients(lambda *t: F.concat(t, axis=0), b, _randn(1, 3, 4, seed=3))
    check_gradients(F.add, b, _randn(4, seed=4))
    check_gradients(lambda t: F.reshape(t, (4, -1)), b)
    padded = F.pad(b, ((0, 0), (1, 2), (0, 1)), value=-1.0)
    np.testing.assert_array_equal(padded.data, np.pad(b, ((0, 0), (1, 2), (0, 1)), constant_values=-1.0))
    check_gradients(lambda t: F.pad(t, ((1, 0), (1, 2), (0, 1))), b)


@pytest.mark.parametrize("shift, axis", [(1, 1), (-1, 2), (3, 1), (-5, -1), (0, 2), (4, 1)])
def test_roll_equals_numpy_and_rolls_its_gradient_back(shift, axis):
    x = _randn(2, 4, 3, 5)
    np.testing.assert_array_equal(F.roll(x, shift, axis).data, np.roll(x, shift, axis=axis))
    check_gradients(lambda t: F.roll(t, shift, axis), x)


@pytest.mark.parametrize("shift, axis, message", [(1.5, 1, "shift must be an integer"), (True, 1, "shift must be an integer"),
                                                  (1, 4, "axis 4 is out of range"), (1, "1", "axis must be an integer")])
def test_roll_refuses_bad_arguments(shift, axis, message):
    with pytest.raises(InputError, match=message):
        F.roll(_randn(2, 4, 3, 5), shift, axis)

def test_concat_along_channels_of_large_arrays_copies_in_parallel_and_splits_contiguous():
    """Above the parallel threshold concat and its gradient run as Numba row copies: same values as numpy,
    and each gradient part C-contiguous."""
    rng = np.random.default_rng(5)
    a, b = (Tensor(rng.standard_normal((4, 16, 32, c)).astype(np.float32), requires_grad=True) for c in (24, 40))
    out = F.concat([a, b])
    np.testing.assert_array_equal(out.data, np.concatenate([a.data, b.data], axis=-1))
    grad = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(grad[:, ::-1])  # a non-contiguous upstream gradient
    np.testing.assert_array_equal(a.grad, grad[:, ::-1, :, :24])
    np.testing.assert_array_equal(b.grad, grad[:, ::-1, :, 24:])
    assert a.grad.flags.c_contiguous and b.grad.flags.c_contiguous


def test_space_depth_orderings():
    x = np.arange(1 * 4 * 6 * 3, dtype=np.float64).reshape(1, 4, 6, 3)
    y = F.space_to_depth(x, 2).data
    assert y.shape == (1, 2, 3, 12)
    for dy in range(2):
        for dx in range(2):
            np.testing.assert_array_equal(y[0, 1, 2, (dy * 2 + dx) * 3 : (dy * 2 + dx + 1) * 3], x[0, 2 + dy, 4 + dx])
    np.testing.assert_array_equal(F.depth_to_space(y, 2).data, x)
    check_gradients(lambda t: F.space_to_depth(t, 2), _randn(2, 4, 2, 3))
    check_gradients(lambda t: F.depth_to_space(t, 2), _randn(2, 2, 3, 8))
    with pytest.raises(InputError):
        F.space_to_depth(x, 4)
    with pytest.raises(InputError):
        F.depth_to_space(x, 2)


def test_channel_gate():
    x, gate = _randn(2, 3, 2, 5), _randn(2, 5)
    np.testing.assert_array_equal(F.channel_gate(x, gate).data, x * gate[:, None, None, :])
    check_gradients(F.channel_gate, x, gate)
    check_gradients(lambda t, g: F.channel_gate(t, g), _randn(1, 7, 3), _randn(1, 3))  # batch 1, [N, pixels, C]
    with pytest.raises(InputError, match="gate must be"):
        F.channel_gate(x, gate.reshape(2, 1, 1, 5))
    with pytest.raises(InputError, match="gate must be"):
        F.channel_gate(x, gate.astype(np.float32))
    with pytest.raises(InputError, match="batch and a channel axis"):
        F.channel_gate(x[0, 0, 0], gate[0])


@pytest.mark.parametrize("copies", [2, 4])
@pytest.mark.parametrize("reader", ["none", "later", "earlier"])
def test_concat_of_one_tensor_repeated_sums_its_gradient_in_one_pass_bit_for_bit(copies, reader):
    """concat([x] * R) along channels (a shortcut tiled to a wider block) hands x one summed gradient, taking
    the gradient x's other reader sent first: the engine's slice-by-slice sum (the fallback, forced here) to
    the last bit, whether that reader's gradient arrives before the concat's backward, after it, or there is none."""
    from unittest import mock

    from numbnn.functional import shape as shape_module

    rng = np.random.default_rng(copies)
    x0 = rng.standard_normal((4, 32, 32, 24)).astype(np.float32)  # above the parallel threshold
    upstream = rng.standard_normal((4, 32, 32, 24 * (copies + 1))).astype(np.float32)
    results, summed, original = [], [], shape_module._repeated_input_grad

    def recorded(*args):
        result = original(*args)
        summed.append(result is not None)
        return result

    for fused in (True, False):
        x = Tensor(x0.copy(), requires_grad=True)
        parts = [F.concat([x] * copies)]
        if reader == "later":  # x's other reader computed after the concat
            parts.append(x * x)
        elif reader == "earlier":  # ... or before it (its gradient then reaches x first: the concat takes it)
            parts.insert(0, x * x)
        else:
            parts.append(Tensor(x0 * x0))
        with mock.patch.object(shape_module, "_repeated_input_grad", recorded if fused else lambda *args: None):
            F.concat(parts).backward(upstream)
        results.append(x.grad)
    assert summed == [True]
    np.testing.assert_array_equal(results[0], results[1])


def test_channel_shuffle():
    x = np.arange(6.0).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(F.channel_shuffle(x, 2).data.ravel(), [0, 3, 1, 4, 2, 5])
    check_gradients(lambda t: F.channel_shuffle(t, 3), _randn(2, 2, 2, 6))
    with pytest.raises(InputError):
        F.channel_shuffle(x, 4)
