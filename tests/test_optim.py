"""Optimizers against hand-written numpy references, state round trips, weight-decay groups, clipping."""

import copy

import numpy as np
import pytest

from numbnn.errors import CheckpointError, InputError
from numbnn.optim import SGD, Adam, AdamW, clip_grad_norm, split_decay


class Param:
    """The optimizer only needs ``.data`` and ``.grad``; this keeps the tests independent of autograd."""

    def __init__(self, data):
        self.data = np.array(data)
        self.grad = None


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Param(rng.normal(size=shape).astype(dtype)) for shape in [(3, 2, 2, 4), (5,), (4, 3)]]


def grad_sequence(params, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=p.data.shape).astype(p.data.dtype) for p in params] for _ in range(steps)]


def run(optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        optimizer.step()


# -- plain-numpy references, written as the papers state the rules ---------------------------------

def sgd_reference(w, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    w, buf = w.copy(), None
    for g in grads:
        g = g + weight_decay * w
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        w = w - lr * g
    return w


def adam_reference(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    w, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            w = w - lr * weight_decay * w
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
     dict(lr=0.1, momentum=0.5, weight_decay=0.01)],
)
def test_sgd_matches_reference(kwargs):
    params = make_params()
    start = [p.data.copy() for p in params]
    grads = grad_sequence(params, 5)
    run(SGD(params, **kwargs), params, grads)
    for i, p in enumerate(params):
        expected = sgd_reference(start[i], [g[i] for g in grads], **kwargs)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_family_matches_reference(cls, weight_decay):
    params = make_params()
    start = [p.data.copy() for p in params]
    grads = grad_sequence(params, 6)
    run(cls(params, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay), params, grads)
    for i, p in enumerate(params):
        expected = adam_reference(start[i], [g[i] for g in grads], 0.01, 0.8, 0.95, 1e-6, weight_decay,
                                  decoupled=cls is AdamW)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-12)


def test_adam_bias_correction_makes_first_step_lr_times_sign():
    # With bias correction, m_hat / sqrt(v_hat) = g / |g| on step 1, whatever the gradient's scale.
    p = Param(np.zeros(4))
    p.grad = np.array([1e-3, -5.0, 200.0, -0.25])
    Adam([p], lr=0.1, eps=1e-12).step()
    np.testing.assert_allclose(p.data, -0.1 * np.sign(p.grad), rtol=1e-8)


def test_adamw_decay_is_decoupled_from_the_gradient_scale():
    w0 = np.array([2.0, -1.0, 0.5])
    # zero gradient: AdamW only shrinks the weights by (1 - lr * wd); Adam's L2 acts like a gradient
    # and moves every weight by about lr towards zero whatever its size.
    pw, pa = Param(w0), Param(w0)
    pw.grad, pa.grad = np.zeros(3), np.zeros(3)
    AdamW([pw], lr=0.1, weight_decay=0.2).step()
    Adam([pa], lr=0.1, weight_decay=0.2).step()
    np.testing.assert_allclose(pw.data, w0 * (1 - 0.1 * 0.2), rtol=1e-15)
    np.testing.assert_allclose(pa.data, w0 - 0.1 * np.sign(w0), rtol=1e-6)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_float32_is_updated_in_place_without_upcast(cls):
    params = make_params(np.float32)
    arrays = [p.data for p in params]
    opt = cls(params, lr=np.float64(0.01), weight_decay=np.float64(0.1))  # numpy scalars must not upcast
    run(opt, params, grad_sequence(params, 3))
    for p, a in zip(params, arrays):
        assert p.data is a and p.data.dtype == np.float32
    for state in opt.state_dict()["state"].values():
        for value in state.values():
            assert not isinstance(value, np.ndarray) or value.dtype == np.float32


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = Param(np.ones(3)), Param(np.ones(3))
    opt = SGD([a, b], lr=1.0, momentum=0.9)
    a.grad = np.ones(3)
    opt.step()
    np.testing.assert_array_equal(a.data, 0.0)
    np.testing.assert_array_equal(b.data, 1.0)
    assert set(opt.state_dict()["state"]) == {"0"}
    opt.zero_grad()
    assert a.grad is None and b.grad is None


# -- weight-decay groups ------------------------------------------------------------------------------

def named_model_params():
    rng = np.random.default_rng(3)
    shapes = {"conv.weight": (4, 3, 3, 2), "bconv.weight": (4, 1, 1, 4), "bn.gamma": (4,), "bn.beta": (4,),
              "act.slope": (4,), "fc.weight": (10, 4), "fc.bias": (10,)}
    return [(name, Param(rng.normal(size=shape))) for name, shape in shapes.items()]


@pytest.mark.parametrize(
    "rule, decayed",
    [("conv_only", {"conv.weight", "bconv.weight"}),
     ("ndim>1", {"conv.weight", "bconv.weight", "fc.weight"}),
     ("all", {"conv.weight", "bconv.weight", "bn.gamma", "bn.beta", "act.slope", "fc.weight", "fc.bias"}),
     (lambda name, p: not name.startswith("bn"), {"conv.weight", "bconv.weight", "act.slope", "fc.weight", "fc.bias"})],
)
def test_split_decay_rules_exclude_the_right_parameters(rule, decayed):
    named = named_model_params()
    groups = split_decay(named, 0.1, rule=rule)
    ids = {id(p): n for n, p in named}
    assert {ids[id(p)] for p in groups[0]["params"]} == decayed
    assert {ids[id(p)] for p in groups[1]["params"]} == set(ids.values()) - decayed
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0

    # With zero gradients, only the decayed group moves.
    start = {n: p.data.copy() for n, p in named}
    opt = SGD(groups, lr=0.5)
    for _, p in named:
        p.grad = np.zeros_like(p.data)
    opt.step()
    for n, p in named:
        expected = start[n] * (1 - 0.5 * 0.1) if n in decayed else start[n]
        np.testing.assert_allclose(p.data, expected, rtol=1e-15)


def test_group_options_override_defaults():
    a, b = Param(np.ones(2)), Param(np.ones(2))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = np.ones(2), np.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.5)
    opt.lr = 0.2
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]


# -- state_dict round trip ----------------------------------------------------------------------------

def as_if_from_hdf5(state):
    """What an HDF5 round trip hands back: numpy scalars and arrays instead of Python values and tuples."""
    if isinstance(state, dict):
        return {k: as_if_from_hdf5(v) for k, v in state.items()}
    if isinstance(state, bool | int | float):
        return np.asarray(state)[()]
    return np.array(state)


@pytest.mark.parametrize(
    "cls, kwargs",
    [(SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
     (Adam, dict(lr=0.01, weight_decay=1e-4)), (AdamW, dict(lr=0.01, betas=(0.8, 0.99)))],
)
def test_state_dict_round_trip_continues_bit_identically(cls, kwargs):
    params = make_params(np.float32)
    grads = grad_sequence(params, 8)
    opt = cls(split_decay([(str(i), p) for i, p in enumerate(params)], 0.01, "ndim>1"), **kwargs)
    run(opt, params, grads[:4])
    saved_weights = [p.data.copy() for p in params]
    saved_state = as_if_from_hdf5(copy.deepcopy(opt.state_dict()))
    run(opt, params, grads[4:])  # the uninterrupted run

    resumed = [Param(w) for w in saved_weights]
    opt2 = cls(split_decay([(str(i), p) for i, p in enumerate(resumed)], 0.01, "ndim>1"), **{**kwargs, "lr": 9.0})
    opt2.load_state_dict(saved_state)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"] and isinstance(opt2.param_groups[0]["lr"], float)
    run(opt2, resumed, grads[4:])
    for p, q in zip(params, resumed):
        assert q.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_copy():
    p = Param(np.ones(3))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    state["state"]["0"]["momentum_buffer"][:] = 100.0
    opt.step()
    np.testing.assert_allclose(p.data, 1 - 0.1 - 0.1 * 1.9)


def test_load_state_dict_rejects_a_different_layout():
    params = make_params()
    opt = Adam(params, lr=0.1)
    run(opt, params, grad_sequence(params, 1))
    state = opt.state_dict()
    with pytest.raises(CheckpointError, match="groups"):
        Adam([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(state)
    with pytest.raises(CheckpointError, match="parameters"):
        Adam(params[:2], lr=0.1).load_state_dict(state)
    other = [Param(np.zeros((2, 2))), params[1], params[2]]
    with pytest.raises(CheckpointError, match="shape"):
        Adam(other, lr=0.1).load_state_dict(state)
    with pytest.raises(CheckpointError, match="'groups'"):
        Adam(params, lr=0.1).load_state_dict({"state": {}})


# -- gradient clipping --------------------------------------------------------------------------------

def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before():
    a, b, c = Param(np.zeros(2, np.float32)), Param(np.zeros(1, np.float32)), Param(np.zeros(1))
    a.grad, b.grad = np.array([3.0, 0.0], np.float32), np.array([4.0], np.float32)
    shared = a.grad
    total = clip_grad_norm([a, b, c], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad, [0.8], rtol=1e-5)
    assert a.grad.dtype == np.float32 and c.grad is None
    np.testing.assert_array_equal(shared, [3.0, 0.0])  # not scaled in place

    assert clip_grad_norm([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(b.grad, [0.8], rtol=1e-5)  # below the bound: unchanged


def test_clip_grad_norm_leaves_non_finite_gradients_for_the_caller():
    a = Param(np.zeros(2))
    a.grad = np.array([np.inf, 1.0])
    assert clip_grad_norm([a], 1.0) == np.inf
    assert a.grad[1] == 1.0
    with pytest.raises(InputError, match="max_norm"):
        clip_grad_norm([a], 0.0)


# -- argument validation ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "build, match",
    [(lambda p: SGD(p, lr=-1.0), "lr"), (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov"),
     (lambda p: SGD(p, lr=0.1, momentum=-0.1), "momentum"), (lambda p: Adam(p, betas=(1.0, 0.9)), "betas"),
     (lambda p: Adam(p, eps=0.0), "eps"), (lambda p: Adam(p, betas=(0.9, 0.9, 0.9)), "pair"),
     (lambda p: Adam(p, betas=0.9), "pair"), (lambda p: SGD([{"params": p, "lr": "fast"}], lr=0.1), "wrong type"), (lambda p: AdamW(p, weight_decay=-1.0), "weight_decay"),
     (lambda p: SGD([], lr=0.1), "empty"), (lambda p: SGD([p[0], p[0]], lr=0.1), "more than one group"),
     (lambda p: SGD([{"params": p, "momentun": 0.9}], lr=0.1), "momentun"),
     (lambda p: SGD([np.ones(2)], lr=0.1), "Tensors")],
)
def test_bad_arguments_raise_input_error(build, match):
    with pytest.raises(InputError, match=match):
        build(make_params())


def test_against_torch_when_installed():
    torch = pytest.importorskip("torch")
    params = make_params()
    grads = grad_sequence(params, 5)
    cases = [(SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
             (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.01)),
             (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1))]
    for ours, theirs, kwargs in cases:
        mine = [Param(p.data) for p in params]
        tp = [torch.tensor(p.data, requires_grad=True) for p in params]
        opt_t = theirs(tp, **kwargs)
        run(ours(mine, **kwargs), mine, grads)
        for step_grads in grads:
            for t, g in zip(tp, step_grads):
                t.grad = torch.tensor(g)
            opt_t.step()
        for m, t in zip(mine, tp):
            np.testing.assert_allclose(m.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)
