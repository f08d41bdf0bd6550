"""Batch normalization over every axis but the last (channels), with one fused backward."""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError
from numbnn.kernels import channels as _channel_kernels
from numbnn.kernels import norm as _norm_kernels


def normalizing_affine(gamma, beta, mean, var, eps: float):
    """(scale, shift, 1/sigma) in float64 with gamma * (x - mu) / sigma + beta = scale * x + shift.

    In evaluation (mu, var = the running statistics) these are constants; the packed compiler folds
    them (:mod:`numbnn.inference.lower.layers`), so both compute them here, the same way.
    """
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    inv_std = 1.0 / np.sqrt(var + eps)
    scale = inv_std if gamma is None else gamma * inv_std
    shift = -mean * scale if beta is None else beta - mean * scale
    return scale, shift, inv_std


class BatchNorm(Function):
    """y = gamma * (x - mu) / sigma + beta per channel, sigma = sqrt(var + eps).

    Training: mu and var (biased) are the statistics of the M = x.size / C values of each channel in
    this batch, and the running statistics move by PyTorch's rule
    ``running = (1 - momentum) * running + momentum * batch`` using the *unbiased* variance
    var * M / (M - 1). Evaluation: mu and var are the running statistics (constants).

    Backward in training mode, with xhat = (x - mu) / sigma (Ioffe & Szegedy 2015, sec. 3)::

        dbeta = sum(g)      dgamma = sum(g * xhat)
        dx = gamma / sigma * (g - dbeta / M - xhat * dgamma / M)

    and in evaluation mode dx = g * gamma / sigma. Both directions are per-channel affine maps of
    x and g, so each runs as one fused pass (plus one reduction pass); xhat is never stored.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        c = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, c)
        m = x2.shape[0]
        if training:
            if m < 2:
                raise InputError(f"batch_norm in training mode needs more than 1 value per channel, got x {x.shape}")
            center = x2[0].astype(np.float64)  # one sample per channel: sums of (x - center) cancel little
            first, second = _norm_kernels.chunk_moments(x2, center, _channel_kernels.n_chunks(m)).sum(axis=1) / m
            mean = center + first
            var = np.maximum(second - first * first, 0.0)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * m / (m - 1)) * var
        else:
            mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
        scale, shift, inv_std = normalizing_affine(gamma, beta, mean, var, eps)
        ctx.training = training
        ctx.save_for_backward(x2, mean, inv_std, gamma)
        return _norm_kernels.affine(x2, scale.astype(x.dtype), shift.astype(x.dtype)).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x2, mean, inv_std, gamma = ctx.saved
        need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
        dtype = x2.dtype
        g2 = np.ascontiguousarray(grad, dtype=dtype).reshape(x2.shape)
        m = x2.shape[0]
        scale = inv_std if gamma is None else gamma * inv_std
        dgamma = dbeta = dx = None
        if need_gamma or need_beta or (need_x and ctx.training):
            sum_g, sum_g_centered = _norm_kernels.grad_sums(g2, x2, mean, _channel_kernels.n_chunks(m)).sum(axis=1)
            dbeta, dgamma = sum_g, sum_g_centered * inv_std
        if need_x:
            if ctx.training:  # dx = scale*g + b*(x - mean) - scale*dbeta/M, b = -scale*inv_std*dgamma/M
                b = -scale * inv_std * dgamma / m
                shift = -scale * dbeta / m - b * mean
            else:
                b = shift = np.zeros_like(scale)
            dx = _norm_kernels.affine2(g2, x2, scale.astype(dtype), b.astype(dtype), shift.astype(dtype)).reshape(grad.shape)
        return dx, (dgamma if need_gamma else None), (dbeta if need_beta else None), None, None


def batch_norm(x, gamma, beta, running_mean, running_var, training: bool, momentum=0.1, eps=1e-5) -> Tensor:
    """Normalize ``x`` per channel (last axis); see :class:`BatchNorm` for the math and update rule.

    ``gamma``/``beta`` (Tensors or arrays of shape [C], or None for no affine part) are learnable;
    ``running_mean``/``running_var`` are numpy arrays updated in place when ``training``
    (either may be None in training mode: batch statistics only).
    """
    channels = x.shape[-1]
    for name, value in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and tuple(value.shape) != (channels,):
            raise InputError(f"{name} must have shape ({channels},) for x of shape {tuple(x.shape)}, got {value.shape}")
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and not isinstance(value, np.ndarray):
            raise InputError(f"{name} must be a numpy array (it is updated in place), got {type(value).__name__}")
    if not training and (running_mean is None or running_var is None):
        raise InputError("batch_norm in evaluation mode needs running_mean and running_var")
    if not 0.0 <= momentum <= 1.0:
        raise InputError(f"momentum must be in [0, 1], got {momentum!r}")
    if not 0.0 < eps < float("inf"):  # eps <= 0 divides by zero on a constant channel
        raise InputError(f"eps must be a positive finite number, got {eps!r}")
    return BatchNorm.apply(
        x, gamma, beta, running_mean, running_var,
        training=bool(training), momentum=float(momentum), eps=float(eps),
    )
