"""A small tape-based autograd on numpy arrays (micrograd / early-tinygrad style).

``Tensor`` wraps an ndarray; each op is a :class:`Function` with ``forward`` and ``backward`` side by
side; ``Tensor.backward()`` runs the graph in reverse and frees it. ``no_grad()`` turns recording off.
"""

# tensor first: it defines Tensor, then pulls in basic_ops -> function, which both need Tensor.
from numbnn.autograd.tensor import Tensor  # isort: skip
from numbnn.autograd.function import Context, Function, is_grad_enabled, no_grad

__all__ = ["Tensor", "Function", "Context", "no_grad", "is_grad_enabled"]
