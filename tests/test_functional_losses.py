"""Losses (functional/losses.py): cross-entropy with label smoothing, soft targets, stability, errors."""

import numpy as np
import pytest

import numbnn.functional as F
from gradcheck import check_gradients
from numbnn.errors import InputError


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_values_and_gradients(smoothing):
    z, labels = _randn(6, 5), np.array([0, 4, 2, 2, 1, 3])
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    target = np.full((6, 5), smoothing / 5)
    target[np.arange(6), labels] += 1 - smoothing
    np.testing.assert_allclose(F.cross_entropy(z, labels, smoothing).item(), -(target * logp).sum() / 6, rtol=1e-12)
    check_gradients(lambda t: F.cross_entropy(t, labels, smoothing), z)


def test_losses_are_stable_and_consistent():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], dtype=np.float32)
    loss = F.cross_entropy(z, np.array([1, 2]))
    assert np.isfinite(loss.item()) and loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), (1e4 + np.log(3)) / 2, rtol=1e-6)
    zz = _randn(4, 6)
    onehot = np.eye(6)[[1, 0, 5, 2]]
    np.testing.assert_allclose(F.soft_cross_entropy(zz, onehot).item(), F.cross_entropy(zz, np.array([1, 0, 5, 2])).item())
    p = F.softmax(zz).data
    assert abs(F.kl_div(zz, p).item()) < 1e-12
    q = F.softmax(_randn(4, 6, seed=3)).data
    np.testing.assert_allclose(F.kl_div(zz, q).item(), (q * (np.log(q) - np.log(p))).sum() / 4, rtol=1e-10)
    check_gradients(lambda t: F.soft_cross_entropy(t, q), zz)
    check_gradients(lambda t: F.kl_div(t, q), zz)


def test_softmax_and_log_softmax():
    z = _randn(3, 4, 5)
    for axis in (-1, 1, 0):
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        s = e / e.sum(axis=axis, keepdims=True)
        np.testing.assert_allclose(F.softmax(z, axis).data, s, rtol=1e-12)
        np.testing.assert_allclose(F.log_softmax(z, axis).data, np.log(s), rtol=1e-10)
        check_gradients(lambda t: F.softmax(t, axis), z)
        check_gradients(lambda t: F.log_softmax(t, axis), z)


def test_loss_argument_errors():
    z = _randn(3, 4)
    with pytest.raises(InputError, match="labels"):
        F.cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(InputError, match="labels"):
        F.cross_entropy(z, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="logits"):
        F.cross_entropy(_randn(3), np.array([0, 1, 1]))
    with pytest.raises(InputError, match="target_probs"):
        F.soft_cross_entropy(z, np.ones((3, 5)))
