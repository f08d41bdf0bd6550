"""``Tensor``: a numpy array that remembers the op that made it, and reverse-mode backward.

A Tensor made by an op holds a ``_ctx`` (see :mod:`numbnn.autograd.function`) naming the op, its
inputs and what the op saved. ``backward`` walks that graph once in reverse topological order, sums
each op's input gradients (reduced back over broadcast axes), stores the totals in the ``.grad`` of
leaf tensors that require grad (accumulating with ``+=`` across calls, as PyTorch does), and drops
every ``_ctx`` it passed so the saved activations are freed right after the step.
"""

import numpy as np

from numbnn.errors import InputError


class Tensor:
    """An n-d array with an optional gradient.

    Python floats (and lists of them) become float32; numpy arrays keep their dtype, so float64
    inputs give float64 graphs (used by the finite-difference gradient checks).
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
            input_grads = ctx.fn.backward(ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, needs, pg in zip(ctx.parents, ctx.needs_input_grad, input_grads):
                if not needs or pg is None:
                    continue
                pg = _unbroadcast(pg, parent.shape)
                if pg.dtype != parent.dtype:
                    pg = pg.astype(parent.dtype)
                key = id(parent)
                grads[key] = pg if key not in grads else _ops.add_arrays(grads[key], pg)

    # ---- operators (each is one Function in basic_ops) -------------------------------------------
    def __add__(self, other):
        return _ops.Add.apply(self, other)

    def __radd__(self, other):
        return _ops.Add.apply(other, self)

    def __sub__(self, other):
        return _ops.Sub.apply(self, other)

    def __rsub__(self, other):
        return _ops.Sub.apply(other, self)

    def __mul__(self, other):
        return _ops.Mul.apply(self, other)

    def __rmul__(self, other):
        return _ops.Mul.apply(other, self)

    def __truediv__(self, other):
        return _ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        return _ops.Div.apply(other, self)

    def __matmul__(self, other):
        return _ops.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return _ops.MatMul.apply(other, self)

    def __neg__(self):
        return _ops.Neg.apply(self)

    def __pow__(self, exponent):
        return _ops.Pow.apply(self, exponent=exponent)

    def __getitem__(self, index):
        return _ops.GetItem.apply(self, index=index)

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

    # ---- reductions, shapes, elementwise math ----------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _ops.Reshape.apply(self, shape=shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.Transpose.apply(self, axes=axes or None)

    def exp(self):
        return _ops.Exp.apply(self)

    def log(self):
        return _ops.Log.apply(self)

    def sqrt(self):
        return _ops.Sqrt.apply(self)


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
        return _ops.channel_sums(grad)  # a per-channel vector broadcast over NHWC / [N, C] data
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


from numbnn.autograd import basic_ops as _ops  # noqa: E402  (ops need Tensor defined first)
