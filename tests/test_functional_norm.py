"""F.batch_norm (functional/norm.py): training statistics and running-stat updates vs PyTorch's documented rule,
evaluation, gradients vs finite differences, and PyTorch itself where installed."""

import numpy as np
import pytest

import numbnn.functional as F
from gradcheck import check_gradients
from numbnn.autograd import Tensor
from numbnn.errors import InputError


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def numpy_batch_norm_train(x, gamma, beta, running_mean, running_var, momentum, eps):
    """PyTorch's documented rule: normalise by the biased batch variance, track the unbiased one."""
    x2 = x.reshape(-1, x.shape[-1])
    m = x2.shape[0]
    mean, var = x2.mean(axis=0), x2.var(axis=0)
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    return y, new_mean, new_var


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3, 5), (3, 1, 1, 2)])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batch_norm_training_values_and_running_stats(shape, momentum):
    c = shape[-1]
    gamma, beta = _randn(c, seed=1), _randn(c, seed=2)
    rm, rv = _randn(c, seed=3), np.abs(_randn(c, seed=4)) + 0.5
    ref_mean, ref_var = rm.copy(), rv.copy()
    for step in range(3):
        x = 2 + 3 * _randn(*shape, seed=10 + step)
        y = F.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=momentum, eps=1e-5)
        y_ref, ref_mean, ref_var = numpy_batch_norm_train(x, gamma, beta, ref_mean, ref_var, momentum, 1e-5)
        np.testing.assert_allclose(y.data, y_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(rm, ref_mean, rtol=1e-12)
        np.testing.assert_allclose(rv, ref_var, rtol=1e-12)


def test_batch_norm_eval_uses_running_stats_and_leaves_them():
    x = _randn(3, 2, 2, 4)
    gamma, beta, rm, rv = _randn(4, seed=1), _randn(4, seed=2), _randn(4, seed=3), np.abs(_randn(4, seed=4)) + 0.1
    before = (rm.copy(), rv.copy())
    y = F.batch_norm(x, gamma, beta, rm, rv, training=False, eps=1e-3)
    np.testing.assert_allclose(y.data, (x - rm) / np.sqrt(rv + 1e-3) * gamma + beta, rtol=1e-12)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_gradients(training, affine):
    x = _randn(3, 2, 3, 4)
    rm, rv = 0.1 * _randn(4, seed=5), np.abs(_randn(4, seed=6)) + 0.5
    if affine:
        check_gradients(
            lambda t, g, b: F.batch_norm(t, g, b, rm.copy(), rv.copy(), training), x, _randn(4, seed=1), _randn(4, seed=2)
        )
    else:
        check_gradients(lambda t: F.batch_norm(t, None, None, rm.copy(), rv.copy(), training), x)


def test_batch_norm_float32_and_errors():
    x = Tensor(_randn(8, 3).astype(np.float32), requires_grad=True)
    g = Tensor(np.ones(3, np.float32), requires_grad=True)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = F.batch_norm(x, g, None, rm, rv, training=True)
    assert y.dtype == np.float32 and rm.dtype == rv.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == g.grad.dtype == np.float32
    with pytest.raises(InputError, match="more than 1"):
        F.batch_norm(np.ones((1, 3)), None, None, rm, rv, training=True)
    with pytest.raises(InputError, match="gamma"):
        F.batch_norm(np.ones((4, 3)), np.ones(2), None, rm, rv, training=True)
    with pytest.raises(InputError, match="running"):
        F.batch_norm(np.ones((4, 3)), None, None, None, None, training=False)


def test_batch_norm_matches_torch():
    torch = pytest.importorskip("torch")
    x = _randn(4, 3, 3, 5)
    gamma, beta = _randn(5, seed=1), _randn(5, seed=2)
    rm, rv = np.zeros(5), np.ones(5)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    rmt, rvt = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    yt = torch.nn.functional.batch_norm(xt, rmt, rvt, torch.tensor(gamma), torch.tensor(beta), True, 0.1, 1e-5)
    xn = Tensor(x, requires_grad=True)
    y = F.batch_norm(xn, gamma, beta, rm, rv, training=True)
    np.testing.assert_allclose(y.data, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10)
    np.testing.assert_allclose(rm, rmt.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, rvt.numpy(), rtol=1e-12)
    upstream = _randn(*y.shape, seed=9)
    y.backward(upstream)
    yt.backward(torch.tensor(upstream.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(xn.grad, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-8, atol=1e-10)
