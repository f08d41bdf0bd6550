"""F.batch_norm (functional/norm.py): training statistics and running-stat updates vs PyTorch's documented rule,
evaluation, gradients vs finite differences, and PyTorch itself where installed. The fused block op
F.batch_norm_add_dprelu: bit for bit the chain batch_norm -> + residual (-> concat) -> dprelu it replaces,
forward, running statistics and every gradient, and float64 finite differences."""

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


# ---- the fused block op: DPReLU(concat_k(BN_k(x_k) + r)) ------------------------------------------------


def _block_case(shape, parts, dtype, learn_pos, seed=0, copies=1):
    """Arrays of one fused-op call: x per part, the residual, BN parameters and running statistics per part,
    the activation's (pos, neg, shift_x, shift_y) over all parts' channels (pos the constant 1 unless learnt);
    with ``copies`` R, x has R times the residual's channels."""
    rng = np.random.default_rng(seed)
    c = shape[-1] * copies
    xs = [(1.5 + 2 * rng.standard_normal(shape[:-1] + (c,))).astype(dtype) for _ in range(parts)]
    residual = rng.standard_normal(shape).astype(dtype)
    norms = [[rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype),
              rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)] for _ in range(parts)]
    act = [rng.uniform(0.5, 1.5, parts * c).astype(dtype) if learn_pos else 1.0,
           rng.uniform(-0.5, 0.5, parts * c).astype(dtype), 0.3 * rng.standard_normal(parts * c).astype(dtype),
           0.3 * rng.standard_normal(parts * c).astype(dtype)]
    return xs, residual, norms, act


def _run_block(fused, xs, residual, norms, act, training, upstream, add_after=False, copies=1):
    """(y, running statistics, gradients of x_k, r, gamma_k, beta_k and the activation's tensors); with
    ``add_after`` (one part) the residual is added after the activation; ``copies``: the residual's
    channels repeated (one part)."""
    xs = [Tensor(x.copy(), requires_grad=True) for x in xs]
    r = Tensor(residual.copy(), requires_grad=True)
    gammas, betas = ([Tensor(n[i].copy(), requires_grad=True) for n in norms] for i in (0, 1))
    stats = [[n[2].copy(), n[3].copy()] for n in norms]
    act = [Tensor(a.copy(), requires_grad=True) if isinstance(a, np.ndarray) else a for a in act]
    pos, neg, shift_x, shift_y = act
    if fused:
        if len(xs) == 1:
            y = F.batch_norm_add_dprelu(xs[0], r, gammas[0], betas[0], *stats[0], training, pos, neg, shift_x, shift_y,
                                        add_after=add_after, residual_copies=copies)
        else:
            y = F.batch_norm_add_dprelu(xs, r, gammas, betas, [m for m, _ in stats], [v for _, v in stats], training,
                                        pos, neg, shift_x, shift_y)
    elif add_after:
        y = F.dprelu(F.batch_norm(xs[0], gammas[0], betas[0], *stats[0], training=training), pos, neg, shift_x,
                     shift_y) + r
    else:
        shortcut = r if copies == 1 else F.concat([r] * copies, axis=-1)
        branches = [F.batch_norm(x, g, b, m, v, training=training) + shortcut
                    for x, g, b, (m, v) in zip(xs, gammas, betas, stats)]
        y = F.dprelu(branches[0] if len(branches) == 1 else F.concat(branches, axis=-1), pos, neg, shift_x, shift_y)
    y.backward(upstream)
    grads = [t.grad for t in [*xs, r, *gammas, *betas] + [a for a in act if isinstance(a, Tensor)]]
    return y.data, [a for pair in stats for a in pair], grads


@settings(max_examples=30)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.sampled_from([1, 2, 3, 7, 16, 33]),
       st.integers(1, 2), st.booleans(), st.booleans(), st.sampled_from([np.float32, np.float64]), st.integers(0, 99),
       st.booleans())
def test_fused_block_op_equals_the_chain_bit_for_bit(n, h, w, c, parts, training, learn_pos, dtype, seed, add_after):
    """Odd channel counts, batch 1, one or two parts, RPReLU (pos = 1) or a learnt pos, the residual added
    before or after the activation (one part): y, the running statistics and every gradient are the
    unfused chain's to the last bit."""
    add_after = add_after and parts == 1
    if training and n * h * w < 2:
        with pytest.raises(InputError, match="more than 1"):
            _run_block(True, *_block_case((n, h, w, c), parts, dtype, learn_pos), True, np.ones((n, h, w, c)))
        return
    case = _block_case((n, h, w, c), parts, dtype, learn_pos, seed)
    upstream = np.random.default_rng(seed + 1).standard_normal((n, h, w, parts * c)).astype(dtype)
    (y, stats, grads), (y_ref, stats_ref, grads_ref) = (_run_block(f, *case, training, upstream, add_after)
                                                         for f in (True, False))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    for got, expected in zip(stats + grads, stats_ref + grads_ref):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=20)
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 3, 16, 33]), st.integers(2, 4), st.booleans(),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 99))
def test_fused_block_op_with_residual_copies_equals_the_chain(n, h, c, copies, learn_pos, dtype, seed):
    """A residual of C channels repeated R times (bnn-small's growing blocks): y, the running statistics and
    every gradient, the residual's included, are those of BN -> + concat([r] * R) -> DPReLU to the last bit."""
    case = _block_case((n, h, 2, c), 1, dtype, learn_pos, seed, copies)
    upstream = np.random.default_rng(seed + 1).standard_normal((n, h, 2, copies * c)).astype(dtype)
    (y, stats, grads), (y_ref, stats_ref, grads_ref) = (_run_block(f, *case, True, upstream, copies=copies)
                                                         for f in (True, False))
    np.testing.assert_array_equal(y, y_ref)
    for got, expected in zip(stats + grads, stats_ref + grads_ref):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("parts,add_after,copies", [(1, False, 1), (2, False, 1), (1, True, 1), (1, False, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_fused_block_op_gradients(parts, add_after, copies, training):
    xs, residual, norms, (pos, neg, shift_x, shift_y) = _block_case((2, 3, 2, 3), parts, np.float64, learn_pos=True,
                                                                    copies=copies)
    stats = [(m, v) for _, _, m, v in norms]

    def fused(r, pos, neg, shift_x, shift_y, *tensors):
        xs, gammas, betas = tensors[:parts], tensors[parts:2 * parts], tensors[2 * parts:]
        means, variances = ([s[i].copy() for s in stats] for i in (0, 1))
        if parts == 1:
            return F.batch_norm_add_dprelu(xs[0], r, gammas[0], betas[0], means[0], variances[0], training,
                                           pos, neg, shift_x, shift_y, add_after=add_after, residual_copies=copies)
        return F.batch_norm_add_dprelu(list(xs), r, list(gammas), list(betas), means, variances, training,
                                       pos, neg, shift_x, shift_y)

    check_gradients(fused, residual, pos, neg, shift_x, shift_y, *xs, *[n[0] for n in norms], *[n[1] for n in norms])


def test_fused_block_op_errors():
    x, r = np.ones((4, 3)), np.zeros((4, 3))
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(InputError, match="residual must have"):
        F.batch_norm_add_dprelu(x, np.zeros((4, 2)), None, None, rm, rv, True, 1.0, 0.25, 0.0, 0.0)
    with pytest.raises(InputError, match="residual must have"):
        F.batch_norm_add_dprelu(x, r.astype(np.float32), None, None, rm, rv, True, 1.0, 0.25, 0.0, 0.0)
    with pytest.raises(InputError, match="neg_slope"):
        F.batch_norm_add_dprelu(x, r, None, None, rm, rv, True, 1.0, np.ones(2), 0.0, 0.0)
    with pytest.raises(InputError, match="shape \\(6,\\)"):  # two parts: the activation spans 6 channels
        F.batch_norm_add_dprelu([x, x], r, [None] * 2, [None] * 2, [rm, rm], [rv, rv], True, 1.0, np.ones(3), 0.0, 0.0)
    with pytest.raises(InputError, match="as many entries"):
        F.batch_norm_add_dprelu([x, x], r, [None], [None] * 2, [rm, rm], [rv, rv], True, 1.0, 0.25, 0.0, 0.0)
    with pytest.raises(InputError, match="running"):
        F.batch_norm_add_dprelu(x, r, None, None, None, None, False, 1.0, 0.25, 0.0, 0.0)
    with pytest.raises(InputError, match="one part"):
        F.batch_norm_add_dprelu([x, x], r, [None] * 2, [None] * 2, [rm, rm], [rv, rv], True, 1.0, 0.25, 0.0, 0.0,
                                add_after=True)
    with pytest.raises(InputError, match="1/2 of its channels"):
        F.batch_norm_add_dprelu(x, r, None, None, rm, rv, True, 1.0, 0.25, 0.0, 0.0, residual_copies=2)
    with pytest.raises(InputError, match="residual_copies takes one part"):
        F.batch_norm_add_dprelu(np.ones((4, 6)), r, None, None, np.zeros(6), np.ones(6), True, 1.0, 0.25, 0.0, 0.0,
                                add_after=True, residual_copies=2)
    with pytest.raises(InputError, match="float32 or float64"):
        F.batch_norm_add_dprelu(x.astype(np.float16), r.astype(np.float16), None, None, rm, rv, True, 1.0, 0.25, 0.0, 0.0)


@pytest.mark.parametrize("fused_op", [False, True])
@pytest.mark.parametrize("scale", [None, "alpha"])
def test_batch_norm_takes_a_binary_convs_moments_bit_for_bit(fused_op, scale):
    """A binary conv's scaling pass sums the moments of its output (Context.output_moments); a training batch
    norm reading that output (alone or in the fused block op) takes them instead of reading the map: the
    output, every gradient and the running statistics equal those of the statistics read from the map. Moments
    describe their own array only: not a copy, a cast or another shape."""
    from unittest import mock

    from numbnn.autograd.function import OutputMoments

    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (3, 9, 9, 16)).astype(np.float32)
    w = rng.standard_normal((24, 3, 3, 16)).astype(np.float32)
    alpha = (rng.random(24) + 0.5).astype(np.float32) if scale else None
    r = rng.standard_normal((3, 9, 9, 24)).astype(np.float32)
    upstream = rng.standard_normal((3, 9, 9, 24)).astype(np.float32)
    taken, describe = [], OutputMoments.describe

    def watched(moments, values):
        taken.append(describe(moments, values))
        return taken[-1]

    results = []
    for use in (watched, lambda moments, values: False):
        xt, wt, gamma, beta = (Tensor(a.copy(), requires_grad=True) for a in (x, w, np.ones(24, np.float32), np.zeros(24, np.float32)))
        running = [np.zeros(24, np.float32), np.ones(24, np.float32)]
        with mock.patch.object(OutputMoments, "describe", use):
            conv = F.binary_conv2d(xt, wt, padding=1, act_quantizer="approx", scale=alpha)
            if fused_op:
                y = F.batch_norm_add_dprelu(conv, Tensor(r), gamma, beta, *running, True, 1.0, 0.25, 0.0, 0.0)
            else:
                y = F.batch_norm(conv, gamma, beta, *running, training=True)
            y.backward(upstream)
        results.append([y.data, xt.grad, wt.grad, gamma.grad, beta.grad, *running])
    assert taken == [True]
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
    values = results[0][0].reshape(-1, 24)
    moments = OutputMoments(values, np.zeros((2, 1, 24)))
    assert moments.describe(values.reshape(-1, 24))  # a view of the same memory
    assert not any(moments.describe(v) for v in (values.copy(), values.astype(np.float64), values.reshape(-1, 12)))
