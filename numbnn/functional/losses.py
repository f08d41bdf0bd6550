"""Softmax, log-softmax and the classification / distillation losses, each one fused Function.

All use the stable form log_softmax(z) = z - max(z) - log(sum(exp(z - max(z)))).
"""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError


def _log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


class LogSoftmax(Function):
    """y = z - logsumexp(z); dz = g - softmax(z) * sum(g)."""

    @staticmethod
    def forward(ctx, z, axis):
        out = _log_softmax(z, axis)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad - np.exp(out) * grad.sum(axis=ctx.axis, keepdims=True)


class Softmax(Function):
    """s = exp(z) / sum(exp(z)); dz = s * (g - sum(g * s))."""

    @staticmethod
    def forward(ctx, z, axis):
        out = np.exp(_log_softmax(z, axis))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved
        return s * (grad - (grad * s).sum(axis=ctx.axis, keepdims=True))


class SoftTargetCrossEntropy(Function):
    """L = -(1/N) sum_n sum_k q[n,k] log softmax(z[n])_k for target distributions q (constants).

    dL/dz[n] = (softmax(z[n]) * sum_k q[n,k] - q[n]) / N, which is (p - q) / N when rows of q sum to 1.
    """

    @staticmethod
    def forward(ctx, z, q):
        logp = _log_softmax(z, -1)
        ctx.save_for_backward(logp, q)
        return np.asarray(-np.einsum("nk,nk->", q, logp) / z.shape[0], dtype=z.dtype)

    @staticmethod
    def backward(ctx, grad):
        logp, q = ctx.saved
        dz = np.exp(logp)
        dz *= q.sum(axis=1, keepdims=True)
        dz -= q
        dz *= grad / logp.shape[0]
        return dz, None


def log_softmax(x, axis: int = -1) -> Tensor:
    """Numerically stable log(softmax(x)) along ``axis``."""
    return LogSoftmax.apply(x, axis=axis)


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis`` (computed stably)."""
    return Softmax.apply(x, axis=axis)


def cross_entropy(logits, labels, label_smoothing: float = 0.0) -> Tensor:
    """Mean over the batch of -log softmax(logits)[label], optionally label-smoothed.

    ``logits`` [N, K]; ``labels`` [N] ints in [0, K). With smoothing e the target is
    (1 - e) * onehot(label) + e / K (Szegedy et al. 2016, sec. 7; PyTorch's definition).
    """
    n, k = _check_logits(logits)
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise InputError(f"labels must be {n} integers, got shape {labels.shape} dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise InputError(f"labels must be in [0, {k}), got values in [{labels.min()}, {labels.max()}]")
    if not 0 <= label_smoothing < 1:
        raise InputError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    dtype = logits.dtype if logits.dtype.kind == "f" else np.float32
    target = np.full((n, k), label_smoothing / k, dtype=dtype)
    target[np.arange(n), labels] += 1 - label_smoothing
    return SoftTargetCrossEntropy.apply(logits, target)


def soft_cross_entropy(logits, target_probs) -> Tensor:
    """Mean over the batch of -sum_k p_k log softmax(logits)_k (ReActNet's DistributionLoss).

    ``target_probs`` [N, K] (e.g. a teacher's softmax) is a constant: it receives no gradient.
    """
    _check_logits(logits)
    q = target_probs.data if isinstance(target_probs, Tensor) else np.asarray(target_probs)
    if q.shape != tuple(logits.shape):
        raise InputError(f"target_probs must have the shape of logits {tuple(logits.shape)}, got {q.shape}")
    return SoftTargetCrossEntropy.apply(logits, q.astype(logits.dtype, copy=False))


def kl_div(logits, target_probs) -> Tensor:
    """Mean over the batch of KL(p || softmax(logits)) = soft_cross_entropy - entropy(p) (p constant)."""
    q = target_probs.data if isinstance(target_probs, Tensor) else np.asarray(target_probs)
    plogp = np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0)
    return soft_cross_entropy(logits, q) + plogp.sum() / q.shape[0]


def _check_logits(logits):
    if len(logits.shape) != 2:
        raise InputError(f"logits must be [N, classes], got shape {tuple(logits.shape)}")
    return logits.shape
