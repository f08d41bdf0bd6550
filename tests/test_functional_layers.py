"""linear, batch_norm, pooling, activations, losses and shape ops: forward vs plain-numpy references,
backward vs finite differences in float64."""

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


# ---- naive references ----------------------------------------------------------------------------


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


def numpy_batch_norm_train(x, gamma, beta, running_mean, running_var, momentum, eps):
    """PyTorch's documented rule: normalise by the biased batch variance, track the unbiased one."""
    x2 = x.reshape(-1, x.shape[-1])
    m = x2.shape[0]
    mean, var = x2.mean(axis=0), x2.var(axis=0)
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    return y, new_mean, new_var


# ---- linear ----------------------------------------------------------------------------------------


@settings(max_examples=10)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.integers(1, 5), st.integers(1, 4), st.booleans())
def test_linear(lead, n_in, n_out, with_bias):
    x, w, b = _randn(*lead, n_in, seed=1), _randn(n_out, n_in, seed=2), _randn(n_out, seed=3)
    expected = x @ w.T + (b if with_bias else 0)
    np.testing.assert_allclose(F.linear(x, w, b if with_bias else None).data, expected, rtol=1e-12)
    if with_bias:
        check_gradients(lambda a, c, d: F.linear(a, c, d), x, w, b)
    else:
        check_gradients(lambda a, c: F.linear(a, c), x, w)
    with pytest.raises(InputError):
        F.linear(x, _randn(n_out, n_in + 1))


# ---- batch norm ------------------------------------------------------------------------------------


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


# ---- pooling ---------------------------------------------------------------------------------------


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


# ---- activations -----------------------------------------------------------------------------------


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


# ---- losses ----------------------------------------------------------------------------------------


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


# ---- shape ops -------------------------------------------------------------------------------------


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


def test_channel_shuffle():
    x = np.arange(6.0).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(F.channel_shuffle(x, 2).data.ravel(), [0, 3, 1, 4, 2, 5])
    check_gradients(lambda t: F.channel_shuffle(t, 3), _randn(2, 2, 2, 6))
    with pytest.raises(InputError):
        F.channel_shuffle(x, 4)
