"""Autograd engine: every basic op's backward vs finite differences (float64), broadcasting,
accumulation, graph freeing, no_grad and dtype preservation."""

import gc
import weakref

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import check_gradients
from numbnn.autograd import Function, Tensor, arrays, is_grad_enabled, no_grad
from numbnn.errors import InputError

SETTINGS = settings(max_examples=15)


def _randn(shape, seed=0, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.abs(x) + 0.5 if positive else x


@st.composite
def broadcast_pair(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4))
    seed = draw(st.integers(0, 2**16))
    return _randn(shapes.input_shapes[0], seed), _randn(shapes.input_shapes[1], seed + 1)


@SETTINGS
@given(broadcast_pair(), st.sampled_from(["add", "sub", "mul", "div"]))
def test_binary_ops_match_finite_differences_with_broadcasting(pair, op):
    a, b = pair
    if op == "div":
        b = np.abs(b) + 0.5
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y}
    check_gradients(fn[op], a, b)


@pytest.mark.parametrize("scalar", [2.5, 3, np.float32(1.5)])
def test_reflected_operators_with_scalars(scalar):
    a = _randn((3, 2))
    for fn in (
        lambda x: scalar + x,
        lambda x: scalar - x,
        lambda x: scalar * x,
        lambda x: scalar / (x * x + 1.0),
        lambda x: -x,
        lambda x: x**2,
        lambda x: x**3.0,
    ):
        check_gradients(fn, a)


def test_ndarray_on_the_left_defers_to_tensor():
    a = Tensor(_randn((2, 3)), requires_grad=True)
    c = np.ones((2, 3))
    for out in (c + a, c - a, c * a, c / a, np.ones((4, 2)) @ a):
        assert isinstance(out, Tensor) and out.requires_grad


@pytest.mark.parametrize(
    "sa, sb",
    [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,))],
)
def test_matmul_shapes(sa, sb):
    check_gradients(lambda x, y: x @ y, _randn(sa, 1), _randn(sb, 2))


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), st.data())
def test_reductions(shape, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                               st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True).map(tuple)))
    keepdims = data.draw(st.booleans())
    x = _randn(shape, data.draw(st.integers(0, 999)))
    check_gradients(lambda t: t.sum(axis=axis, keepdims=keepdims), x)
    check_gradients(lambda t: t.mean(axis=axis, keepdims=keepdims), x)
    check_gradients(lambda t: t.max(axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("keepdims", [False, True])
def test_mean_over_a_short_last_axis_sends_back_each_value_k_times(keepdims):
    """float32, 2-7 values (PokeBNN's channel shrink): the gradient is g / k at every one, written out
    C-contiguous (the reshape after it is then a view), the values the broadcast view would hold."""
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32), requires_grad=True)
    y = x.mean(axis=-1, keepdims=keepdims)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    assert x.grad.flags.c_contiguous and x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, np.broadcast_to((g / 4).reshape(3, 5, 1), (3, 5, 4)))


def test_max_shares_gradient_between_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [1, 0, 0]])


def test_shape_ops():
    x = _randn((2, 3, 4))
    check_gradients(lambda t: t.reshape(4, 6) * np.arange(24.0).reshape(4, 6), x)
    check_gradients(lambda t: t.reshape((6, -1)), x)
    check_gradients(lambda t: t.transpose(2, 0, 1), x)
    check_gradients(lambda t: t.transpose(), x)
    check_gradients(lambda t: t.T, _randn((3, 5)))
    check_gradients(lambda t: t[1], x)
    check_gradients(lambda t: t[:, 1:3, ::2], x)
    check_gradients(lambda t: t[..., None, -1], x)
    check_gradients(lambda t: t[np.array([0, 1, 1, 0])], x)  # advanced index with repeats


def test_elementwise_math():
    check_gradients(lambda t: t.exp(), _randn((3, 4)))
    check_gradients(lambda t: t.log(), _randn((3, 4), positive=True))
    check_gradients(lambda t: t.sqrt(), _randn((3, 4), positive=True))


def test_gradients_accumulate_across_backward_calls():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (w * 3.0).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [3.0 + 2.0, 3.0 + 4.0])
    w.zero_grad()
    assert w.grad is None


def test_shared_subexpression_sums_both_paths():
    x = Tensor(np.array([2.0]), requires_grad=True)
    h = x * x
    (h * h + h).sum().backward()  # d/dx (x^4 + x^2) = 4x^3 + 2x
    np.testing.assert_allclose(x.grad, [4 * 8 + 4])


def test_leaf_grads_are_independent_arrays():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 5
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_graph_is_freed_after_backward():
    x = Tensor(_randn((4,)), requires_grad=True)
    h = x * 2.0
    alive = weakref.ref(h)
    y = (h * h).sum()
    del h
    gc.collect()
    assert alive() is not None  # kept by y's graph
    y.backward()
    gc.collect()
    assert alive() is None and y._ctx is None
    with pytest.raises(InputError, match="freed"):
        y.backward()


def test_deep_chain_does_not_hit_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])


def test_no_grad_builds_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        with no_grad():
            pass
        assert not is_grad_enabled()
        y = x * 2.0
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None

    @no_grad()
    def f(t):
        return t * 3.0

    assert not f(x).requires_grad and is_grad_enabled()


def test_no_graph_when_no_input_requires_grad():
    y = Tensor(np.ones(3)) * 2.0
    assert not y.requires_grad and y._ctx is None


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    y = ((2.5 * x + 1) / 3.0 - np.float64(0.5) * x) ** 2
    y = (y @ w).exp().log().sqrt().mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_construction_rules():
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([[1.0, 2.0]]).dtype == np.float32
    assert Tensor(np.zeros(2)).dtype == np.float64
    assert Tensor([1, 2]).dtype.kind == "i"
    with pytest.raises(InputError):
        Tensor([1, 2], requires_grad=True)
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert t.T.shape == (3, 2) and t.numpy() is t.data and Tensor(4.0).item() == 4.0
    assert not t.detach().requires_grad and t.detach().data is t.data
    assert "requires_grad=True" in repr(t)
    assert isinstance(t > 2, np.ndarray) and (t > 2).tolist() == [[False, False, False], [True, True, True]]
    assert (t == t).all() and isinstance(t <= 1.0, np.ndarray)


def test_backward_argument_checks():
    t = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(InputError, match="non-scalar"):
        (t * 2.0).backward()
    with pytest.raises(InputError, match="shape"):
        (t * 2.0).backward(np.ones(4))
    with pytest.raises(InputError, match="does not require grad"):
        Tensor(np.ones(1)).backward()
    (t * 2.0).backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(t.grad, [2.0, 4.0, 6.0])


def test_custom_function_skips_unneeded_gradients():
    calls = []

    class Scale(Function):
        @staticmethod
        def forward(ctx, x, s):
            ctx.save_for_backward(x, s)
            return x * s

        @staticmethod
        def backward(ctx, grad):
            calls.append(ctx.needs_input_grad)
            x, s = ctx.saved
            return grad * s, None

    x = Tensor(np.ones(2), requires_grad=True)
    Scale.apply(x, np.array([2.0, 3.0])).sum().backward()
    assert calls == [(True, False)]
    np.testing.assert_array_equal(x.grad, [2.0, 3.0])


def test_an_op_that_takes_the_pending_gradient_replaces_the_sum():
    """Context.take_pending_grad hands an op the gradient its input has so far; the engine then stores the op's
    result as the sum instead of adding it. Nothing is taken that the op could not add in place (a
    mismatched dtype), and the engine refuses a result that is not the input's shape."""
    seen = []

    class Twice(Function):
        @staticmethod
        def forward(ctx, x, dtype):
            return 2 * x

        @staticmethod
        def backward(ctx, grad):
            pending = ctx.take_pending_grad(0, grad.shape, ctx.dtype)
            seen.append(None if pending is None else pending.copy())
            return 2 * grad + (0 if pending is None else pending), None

    def twice(x, dtype):
        out = Twice.apply(x, None)
        out._ctx.dtype = dtype
        return out

    for dtype, taken in ((np.float64, [3.0, 3.0]), (np.float32, None)):
        seen.clear()
        x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
        (x * 3.0 + twice(x, dtype)).sum().backward()  # the product's backward runs first
        np.testing.assert_array_equal(seen[0], taken)
        np.testing.assert_array_equal(x.grad, [5.0, 5.0])  # taken and included, or left for the engine to add

    class Wrong(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad):
            ctx.take_pending_grad(0, grad.shape, grad.dtype)
            return grad[:1]

    z = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="took input 0's pending gradient"):
        (z * 3.0 + Wrong.apply(z)).sum().backward()


# ---- parallel addition paths (large arrays) ------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_additions_equal_numpy_and_bias_gradients_are_channel_sums(dtype):
    """Above PARALLEL_MIN_ELEMENTS, Add and gradient accumulation run as Numba loops: numpy's exact
    sums; a per-channel bias's gradient is the sum over every other axis."""

    rng = np.random.default_rng(1)
    shape = (8, 16, 16, 33)
    assert np.prod(shape) >= arrays.PARALLEL_MIN_ELEMENTS
    x, y, b = (rng.standard_normal(s).astype(dtype) for s in (shape, shape, shape[-1:]))
    np.testing.assert_array_equal(arrays.add_arrays(x, y), x + y)
    np.testing.assert_array_equal(arrays.add_arrays(x, b), x + b)
    np.testing.assert_array_equal(arrays.add_arrays(b, x), b + x)
    strided = x[:, ::2]
    np.testing.assert_array_equal(arrays.add_arrays(strided, y[:, ::2]), strided + y[:, ::2])
    spread = np.broadcast_to(y[:, :1, :1], shape)  # a spatial mean's gradient
    np.testing.assert_array_equal(arrays.add_arrays(x, spread), x + spread)
    np.testing.assert_array_equal(arrays.add_arrays(spread, strided.repeat(2, axis=1)), spread + strided.repeat(2, axis=1))
    assert arrays.add_arrays(x, y.astype(np.float16)).dtype == (x + y.astype(np.float16)).dtype

    xt, bt = Tensor(x, requires_grad=True), Tensor(b, requires_grad=True)
    out = (xt + bt) + xt  # x feeds two ops: its gradients are accumulated
    upstream = rng.standard_normal(shape).astype(dtype)
    out.backward(upstream)
    np.testing.assert_array_equal(xt.grad, upstream + upstream)
    assert bt.grad.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(bt.grad, upstream.astype(np.float64).sum(axis=(0, 1, 2)), rtol=tol, atol=tol)
