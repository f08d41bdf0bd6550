"""Activations (functional/activations.py): values and gradients, DPReLU, dropout."""

import numpy as np

import numbnn.functional as F
from gradcheck import check_gradients
from numbnn.autograd import Tensor


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_activation_values():
    x = np.array([-4.0, -3.0, -1.0, 0.0, 0.5, 3.0, 5.0])
    np.testing.assert_array_equal(F.relu(x).data, np.maximum(x, 0))
    np.testing.assert_allclose(F.hard_sigmoid(x).data, np.clip(x + 3, 0, 6) / 6)
    np.testing.assert_allclose(F.prelu(x, 0.25).data, np.where(x >= 0, x, 0.25 * x))
    y = F.dprelu(x, 2.0, 0.5, 1.0, 0.25).data
    u = x - 1.0
    np.testing.assert_allclose(y, np.where(u >= 0, 2.0 * u, 0.5 * u) - 0.25)


def test_activation_gradients():
    x = _randn(2, 3, 4)
    c = [_randn(4, seed=s) for s in range(4)]
    check_gradients(F.relu, x)
    check_gradients(F.hard_sigmoid, 3 * x)
    check_gradients(F.prelu, x, c[0])
    check_gradients(F.dprelu, x, c[0], c[1], c[2], c[3])


def test_dprelu_reduces_to_rprelu():
    """RPReLU(x) = PReLU_beta(x - gamma) + zeta (ReActNet) is DPReLU(1, beta, gamma, -zeta)."""
    x, beta, gamma, zeta = _randn(3, 4), _randn(4, seed=1), _randn(4, seed=2), _randn(4, seed=3)
    rprelu = np.where(x - gamma >= 0, x - gamma, beta * (x - gamma)) + zeta
    np.testing.assert_allclose(F.dprelu(x, np.ones(4), beta, gamma, -zeta).data, rprelu)


def test_dropout():
    x = Tensor(np.ones((200, 50)), requires_grad=True)
    y = F.dropout(x, 0.3, rng=np.random.default_rng(0))
    values = np.unique(y.data)
    np.testing.assert_allclose(values, [0.0, 1 / 0.7])
    assert 0.25 < (y.data == 0).mean() < 0.35
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)
    assert F.dropout(x, 0.3, training=False).data is x.data
