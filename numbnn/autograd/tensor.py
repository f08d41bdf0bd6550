"""``Tensor``: a numpy array that remembers the op that made it, and reverse-mode backward.

A Tensor made by an op holds a ``_ctx`` (see :mod:`numbnn.autograd.function`) naming the op, its
inputs and what the op saved. ``backward`` walks that graph once in reverse topological order, sums
each op's input gradients (reduced back over broadcast axes), stores the totals in the ``.grad`` of
leaf tensors that require grad (accumulating with ``+=`` across calls, as PyTorch does), and drops
every ``_ctx`` it passed so the saved activations are freed right after the step.
"""

import numpy as np

from numbnn.autograd.arrays import add_arrays, channel_sums
from numbnn.errors import InputError


class Tensor:
    """An n-d array with an optional gradient.

    Python floats (and lists of them) become float32; numpy arrays keep their dtype, so float64
    inputs give float64 graphs (used by the finite-difference gradient checks). Arithmetic (+, -, *,
    /, @, **, indexing) and ``sum``/``mean``/``max``/``reshape``/``transpose``/``exp``/``log``/``sqrt``
    are ops, defined beside their Functions in :mod:`numbnn.autograd.arithmetic` and
    :mod:`numbnn.autograd.shape_ops`.
    """

    __array_priority__ = 100  # make ndarray <op> Tensor defer to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data, dtype=dtype)
        if dtype is None and array.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
            array = array.astype(np.float32)  # Python floats and lists of them
        if requires_grad and array.dtype.kind != "f":
            raise InputError(f"requires_grad needs a floating dtype, got {array.dtype}")
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._is_leaf = True

    # ---- array-like attributes -------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    T = property(lambda self: self.transpose())

    def __len__(self):
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def detach(self) -> "Tensor":
        """A new leaf Tensor sharing this one's data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def __repr__(self):
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{flag})"

    # ---- backward --------------------------------------------------------------------------------
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; then free the graph.

        ``grad`` is the upstream gradient, required unless self has one element.
        """
        if not self.requires_grad:
            raise InputError("backward() called on a tensor that does not require grad")
        if not self._is_leaf and self._ctx is None:
            raise InputError("backward() through a graph that was already freed by an earlier backward()")
        if grad is None:
            if self.size != 1:
                raise InputError(f"backward() needs grad for a non-scalar tensor of shape {self.shape}")
            grad = np.ones(self.shape, dtype=self.dtype)
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise InputError(f"grad has shape {grad.shape}, expected {self.shape}")

        grads = {id(self): grad}
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)
            if node._ctx is None:
                if not node._is_leaf:
                    raise InputError("backward() reached a tensor whose graph an earlier backward() freed")
                if g is not None:
                    node.grad = np.array(g, dtype=node.dtype) if node.grad is None else node.grad + g
                continue
            ctx, node._ctx = node._ctx, None
            if g is None:
                continue
            ctx.pending = grads
            input_grads = ctx.fn.backward(ctx, g)
            ctx.pending = None
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for i, (parent, needs, pg) in enumerate(zip(ctx.parents, ctx.needs_input_grad, input_grads)):
                if not needs or pg is None:
                    continue
                key = id(parent)
                if i in ctx.taken:  # the op added the sum so far itself (Context.take_pending_grad)
                    if pg.shape != parent.shape or pg.dtype != parent.dtype:  # a bug in that op
                        raise RuntimeError(f"{ctx.fn.__name__}.backward took input {i}'s pending gradient but returned "
                                           f"{pg.dtype} {pg.shape}, not {parent.dtype} {parent.shape}")
                    grads[key] = pg
                    continue
                pg = _unbroadcast(pg, parent.shape)
                if pg.dtype != parent.dtype:
                    pg = pg.astype(parent.dtype)
                grads[key] = pg if key not in grads else add_arrays(grads[key], pg)

    # comparisons give plain boolean arrays: they have no gradient
    def __lt__(self, other):
        return self.data < _data(other)

    def __le__(self, other):
        return self.data <= _data(other)

    def __gt__(self, other):
        return self.data > _data(other)

    def __ge__(self, other):
        return self.data >= _data(other)

    def __eq__(self, other):
        return self.data == _data(other)

    def __ne__(self, other):
        return self.data != _data(other)

    __hash__ = object.__hash__


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _topological_order(root: Tensor) -> list:
    """Tensors of root's graph that require grad, every node after all of its inputs (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent, needs in zip(node._ctx.parents, node._ctx.needs_input_grad):
                if needs and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes numpy broadcasting added or stretched to reach it from ``shape``."""
    if grad.shape == shape:
        return grad
    if len(shape) == 1 and grad.ndim > 1 and grad.shape[-1] == shape[0]:
        return channel_sums(grad)  # a per-channel vector broadcast over NHWC / [N, C] data
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad

