"""Batch normalization over every axis but the last (channels), with one fused backward."""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.errors import InputError


class BatchNorm(Function):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta, per channel.

    Training: mu and var (biased) are the statistics of the M = x.size / C values of each channel in
    this batch, and the running statistics move by PyTorch's rule
    ``running = (1 - momentum) * running + momentum * batch`` using the *unbiased* variance
    var * M / (M - 1). Evaluation: mu and var are the running statistics (constants).

    Backward in training mode, with xhat = (x - mu) / sigma (Ioffe & Szegedy 2015, sec. 3)::

        dbeta = sum(g)      dgamma = sum(g * xhat)
        dx = gamma / sigma * (g - dbeta / M - xhat * dgamma / M)

    and in evaluation mode simply dx = g * gamma / sigma.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        c = x.shape[-1]
        x2 = x.reshape(-1, c)
        if training:
            m = x2.shape[0]
            if m < 2:
                raise InputError(f"batch_norm in training mode needs more than 1 value per channel, got x {x.shape}")
            mean = x2.mean(axis=0)
            xhat = x2 - mean
            var = np.einsum("ij,ij->j", xhat, xhat) / m
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * m / (m - 1)) * var
        else:
            mean, var = running_mean.astype(x.dtype, copy=False), running_var.astype(x.dtype, copy=False)
            xhat = x2 - mean
        inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
        xhat *= inv_std
        out = xhat * gamma if gamma is not None else xhat.copy()
        if beta is not None:
            out += beta
        ctx.training = training
        ctx.save_for_backward(xhat, inv_std, gamma)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, inv_std, gamma = ctx.saved
        need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
        g = grad.reshape(xhat.shape)
        dbeta = g.sum(axis=0)
        dgamma = np.einsum("ij,ij->j", g, xhat)
        dx = None
        if need_x:
            scale = inv_std if gamma is None else gamma * inv_std
            if ctx.training:
                m = g.shape[0]
                dx = xhat * (-dgamma / m)
                dx += g
                dx -= dbeta / m
                dx *= scale
            else:
                dx = g * scale
            dx = dx.reshape(grad.shape)
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
    return BatchNorm.apply(
        x, gamma, beta, running_mean, running_var,
        training=bool(training), momentum=float(momentum), eps=float(eps),
    )
