"""A small tape-based autograd on numpy arrays (micrograd / early-tinygrad style).

``Tensor`` wraps an ndarray; each op is a :class:`Function` with ``forward`` and ``backward`` side by
side; ``Tensor.backward()`` runs the graph in reverse and frees it. ``no_grad()`` turns recording off.
Modules import one way: ``arrays`` <- ``tensor`` (the array and backward) <- ``function`` (the op base
class) <- ``arithmetic`` and ``shape_ops`` (the ops, which also give Tensor its operators: +, @, sum,
reshape, ...).
"""

from numbnn.autograd import arithmetic  # noqa: F401  (sets Tensor's arithmetic operators)
from numbnn.autograd import shape_ops  # noqa: F401  (sets Tensor's reductions, reshape, transpose, indexing)
from numbnn.autograd.function import Context, Function, is_grad_enabled, no_grad
from numbnn.autograd.tensor import Tensor

__all__ = ["Tensor", "Function", "Context", "no_grad", "is_grad_enabled"]
