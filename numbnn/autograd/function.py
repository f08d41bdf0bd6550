"""The op base class and the grad-mode switch.

Every differentiable op is a subclass of :class:`Function` with two static methods side by side:
``forward(ctx, *arrays, **kwargs) -> ndarray`` computes the value from plain numpy arrays, and
``backward(ctx, grad) -> tuple`` returns one gradient (or ``None``) per positional input, each of the
shape of the op's *broadcast* computation; the engine sums it back to the input's own shape.
``Function.apply`` runs ``forward`` and records the op in the graph only when grad mode is on and some
input requires a gradient, so inference under :class:`no_grad` builds no graph and keeps nothing alive.
Inside :func:`trace` every op call is also reported to a hook: ``numbnn.inference`` compiles models from
that stream, ``numbnn.models.cost`` counts their MACs on it.
"""

import contextlib
import numbers
from typing import NamedTuple

import numpy as np

from numbnn.autograd.tensor import Tensor

_grad_enabled = True
_trace_hook = None  # set by trace(): called after every op


@contextlib.contextmanager
def trace(hook):
    """Inside the block, call ``hook(fn, input_arrays, kwargs, output)`` after every op (``fn`` is the
    Function subclass, ``input_arrays`` the unwrapped inputs, ``output`` the forward's array)."""
    global _trace_hook
    previous, _trace_hook = _trace_hook, hook
    try:
        yield
    finally:
        _trace_hook = previous


def is_grad_enabled() -> bool:
    """True when ops record the graph for backward (the default)."""
    return _grad_enabled


class no_grad:
    """Context manager (and decorator) that turns graph recording off inside its block."""

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        wrapper.__name__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        return wrapper


class Context:
    """Scratch space one op call shares between its forward and backward.

    ``needs_input_grad[i]`` tells backward whether input i wants a gradient (skip the work if not);
    ``saved`` holds what ``save_for_backward`` stored; ops may also set plain attributes.
    """

    def __init__(self, fn, needs_input_grad):
        self.fn = fn
        self.needs_input_grad = needs_input_grad
        self.parents = ()
        self.saved = ()
        self.pending = None  # during backward: the engine's gradient sums so far, by id of tensor
        self.taken = set()
        self.output_moments = None  # an OutputMoments the forward computed in passing, for a batch norm reading the output

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def take_pending_grad(self, i: int, shape: tuple, dtype):
        """During backward: the gradient the ops that ran before have already sent to input i, handed over
        so the op adds it in its own last pass (one pass over the map instead of that pass and the engine's
        addition); None if there is none yet or it is not a C-contiguous array of that shape and dtype.
        Once it is taken, the op's returned gradient for input i must include it (with input i's shape and
        dtype) and the engine stores that as the new sum instead of adding it."""
        parent = self.parents[i]
        if self.pending is None or not isinstance(parent, Tensor):
            return None
        pending = self.pending.get(id(parent))
        if not (isinstance(pending, np.ndarray) and pending.shape == tuple(shape) and pending.dtype == dtype
                and pending.flags.c_contiguous):
            return None
        self.taken.add(i)
        return pending


class OutputMoments(NamedTuple):
    """Per-channel statistics an op computed in its last pass over its output ``values`` [rows, C] (a binary
    conv's scaling pass): ``partial``, :func:`numbnn.kernels.norm.chunk_moments`' [2, chunks, C] sums around
    the first row. A batch norm reading that output in training takes them (:func:`output_moments`) instead
    of reading the map again."""

    values: np.ndarray
    partial: np.ndarray

    def describe(self, values: np.ndarray) -> bool:
        """Whether these are the moments of ``values``: the same memory, shape and dtype (no cast or copy between)."""
        return (values.shape == self.values.shape and values.dtype == self.values.dtype and values.flags.c_contiguous
                and values.__array_interface__["data"][0] == self.values.__array_interface__["data"][0])


def output_moments(t) -> OutputMoments | None:
    """The moments the op that made Tensor ``t`` left in its context, or None (also under no_grad, where no
    context is kept)."""
    ctx = t._ctx if isinstance(t, Tensor) else None
    return None if ctx is None else ctx.output_moments


class Function:
    """Base class of differentiable ops (see the module docstring for the contract)."""

    @staticmethod
    def forward(ctx, *arrays, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs) -> Tensor:
        """Run the op on Tensors / arrays / scalars and return a Tensor wired into the graph."""
        arrays = _input_arrays(inputs)
        needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        track = _grad_enabled and any(needs)
        ctx = Context(cls, needs if track else (False,) * len(inputs))
        out = cls.forward(ctx, *arrays, **kwargs)
        if _trace_hook is not None:
            _trace_hook(cls, arrays, kwargs, out)
        result = Tensor(out, requires_grad=track)
        if track:
            ctx.parents = inputs
            result._ctx = ctx
            result._is_leaf = False
        return result


def _input_arrays(inputs) -> list:
    """Unwrap Tensors; turn Python/numpy scalars into 0-d arrays of the first float input's dtype.

    ``None`` passes through (an absent optional input, e.g. a bias).

    Casting scalars to the Tensors' float dtype keeps float32 graphs float32 (a float64 0-d array
    would upcast every result under numpy's promotion rules).
    """
    arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
    float_dtype = next((a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"), None)
    for i, a in enumerate(arrays):
        if isinstance(a, (numbers.Number, np.generic)):
            arrays[i] = np.asarray(a, dtype=float_dtype)
        elif a is not None and not isinstance(a, np.ndarray):
            arrays[i] = Tensor(a).data
    return arrays
