"""Array helpers of the autograd engine: parallel addition and per-channel sums with numpy's results.

Kept apart from the ops: the engine (:mod:`numbnn.autograd.tensor`) accumulates gradients with them and
must not import the ops (:mod:`numbnn.autograd.arithmetic`), which import the engine.
"""

import numpy as np

from numbnn.kernels import channels as _channel_kernels

# Below this many elements numpy's single-threaded loop beats waking the thread pool.
PARALLEL_MIN_ELEMENTS = 1 << 16


def add_arrays(a, b):
    """a + b; for large C-contiguous float arrays of one dtype, of equal shapes or one a per-channel
    vector (last axis), a parallel Numba loop with numpy's exact result. Residual connections, the
    learnable biases of BNN blocks and the engine's gradient accumulation all go through here."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and a.dtype.kind == "f"):
        return a + b
    if a.ndim == 1 and b.ndim > 1:
        a, b = b, a  # addition commutes exactly
    if a.shape == b.shape and a.ndim == 4 and a.size >= PARALLEL_MIN_ELEMENTS and not (a.flags.c_contiguous
                                                                                   and b.flags.c_contiguous):
        return _channel_kernels.add_maps(a, b, np.empty(a.shape, a.dtype))  # views: numpy's add is one thread
    if max(a.size, b.size) < PARALLEL_MIN_ELEMENTS or not a.flags.c_contiguous:
        return a + b
    if a.shape == b.shape and b.flags.c_contiguous:
        return _channel_kernels.add(a.reshape(-1), b.reshape(-1), np.empty(a.size, a.dtype)).reshape(a.shape)
    if b.ndim == 1 and a.ndim > 1 and a.shape[-1] == b.shape[0]:
        rows = a.reshape(-1, b.shape[0])
        return _channel_kernels.add_channels(rows, np.ascontiguousarray(b), np.empty_like(rows)).reshape(a.shape)
    return a + b


def channel_sums(grad: np.ndarray) -> np.ndarray:
    """Sum over every axis but the last (a per-channel bias's gradient); large C-contiguous float
    arrays in parallel, each channel accumulated in float64 by fixed row chunks (thread-count
    independent) and rounded once."""
    if not sums_by_chunks(grad):
        return grad.sum(axis=tuple(range(grad.ndim - 1)))
    rows = grad.reshape(-1, grad.shape[-1])
    partial = _channel_kernels.chunk_sums(rows, np.zeros(rows.shape[1]), False, _channel_kernels.n_chunks(rows.shape[0]))
    return partial.sum(axis=0).astype(grad.dtype)


def sums_by_chunks(grad: np.ndarray) -> bool:
    """Whether :func:`channel_sums` sums ``grad`` by fixed row chunks (``chunk_sums``, then the partials
    summed over the chunks and rounded to grad's dtype), the order a fused kernel must keep to give its result."""
    return grad.dtype.kind == "f" and grad.size >= PARALLEL_MIN_ELEMENTS and grad.flags.c_contiguous
