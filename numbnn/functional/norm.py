"""Batch normalization over every axis but the last (channels), with one fused backward; and the block op
DPReLU(BN(x) + r) (batch norm, residual add and RPReLU/PReLU/DPReLU, also over concatenated parts) fused."""

import numpy as np

from numbnn.autograd import Function, Tensor
from numbnn.autograd.function import output_moments
from numbnn.autograd.arrays import add_arrays
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.functional.activations import _channel_vector
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
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps, moments=None):
        x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        mean, var = _statistics(x2, x.shape, running_mean, running_var, training, momentum, moments)
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
        dgamma = dbeta = dx = None
        if need_gamma or need_beta or (need_x and ctx.training):
            partial = _norm_kernels.grad_sums(g2, x2, mean, _channel_kernels.n_chunks(x2.shape[0]))
            sum_g, sum_g_centered = _channel_kernels.chunk_total(partial)
            dbeta, dgamma = sum_g, sum_g_centered * inv_std
        if need_x:
            dx = _input_grad(g2, x2, mean, inv_std, gamma, dbeta, dgamma, ctx.training).reshape(grad.shape)
        return dx, (dgamma if need_gamma else None), (dbeta if need_beta else None), None, None


def _statistics(x2, shape, running_mean, running_var, training: bool, momentum: float, moments=None):
    """(mean, var) in float64 that normalise x2 [M, C]: the batch's (biased var), moving the running
    statistics in place by PyTorch's rule, in training; the running statistics in evaluation. ``moments``:
    the :class:`~numbnn.autograd.function.OutputMoments` the op that made x left, used if they are x2's (the
    same sums: the map is then not read)."""
    if not training:
        return running_mean.astype(np.float64), running_var.astype(np.float64)
    m = x2.shape[0]
    if m < 2:
        raise InputError(f"batch_norm in training mode needs more than 1 value per channel, got x {shape}")
    center = x2[0].astype(np.float64)  # one sample per channel: sums of (x - center) cancel little
    if moments is not None and moments.describe(x2):
        partial = moments.partial
    else:
        partial = _norm_kernels.chunk_moments(x2, center, _channel_kernels.n_chunks(m))
    first, second = _channel_kernels.chunk_total(partial) / m
    mean = center + first
    var = np.maximum(second - first * first, 0.0)
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += (momentum * m / (m - 1)) * var
    return mean, var


def _input_grad(g2, x2, mean, inv_std, gamma, dbeta, dgamma, training: bool):
    """BN's dx [M, C] from g2 (the gradient of its output) and the sums dbeta = sum g, dgamma = sum g xhat:
    one fused pass dx = a*g + b*x + shift (see :class:`BatchNorm`)."""
    return _norm_kernels.affine2(g2, x2, *_input_grad_coefficients(x2, mean, inv_std, gamma, dbeta, dgamma, training))


def _input_grad_coefficients(x2, mean, inv_std, gamma, dbeta, dgamma, training: bool):
    """(a, b, shift) in x2's dtype with BN's dx = a*g + b*x + shift."""
    m, dtype = x2.shape[0], x2.dtype
    scale = inv_std if gamma is None else gamma * inv_std
    if training:  # dx = scale*g + b*(x - mean) - scale*dbeta/M, b = -scale*inv_std*dgamma/M
        b = -scale * inv_std * dgamma / m
        shift = -scale * dbeta / m - b * mean
    else:
        b = shift = np.zeros_like(scale)
    return scale.astype(dtype), b.astype(dtype), shift.astype(dtype)


def batch_norm(x, gamma, beta, running_mean, running_var, training: bool, momentum=0.1, eps=1e-5) -> Tensor:
    """Normalize ``x`` per channel (last axis); see :class:`BatchNorm` for the math and update rule.

    ``gamma``/``beta`` (Tensors or arrays of shape [C], or None for no affine part) are learnable;
    ``running_mean``/``running_var`` are numpy arrays updated in place when ``training``
    (either may be None in training mode: batch statistics only).
    """
    _check_batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    return BatchNorm.apply(
        x, gamma, beta, running_mean, running_var,
        training=bool(training), momentum=float(momentum), eps=float(eps), moments=output_moments(x),
    )


def _check_batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps) -> None:
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


class BatchNormAddDPRelu(Function):
    """y = DPReLU(BN(x) + r): a BNN block's batch norm, residual add and (R/D)PReLU as one op; with K parts,
    y = DPReLU(concat_k(BN_k(x_k) + r)) (ReActNet's channel duplication: K = 2 binary 1x1 convs, each with
    its own BN, both plus the block's r, then one RPReLU over the K*C channels).

    Per channel, with BN exactly as :class:`BatchNorm` (training: the batch's mu and biased var, the
    running statistics moved by the same rule; evaluation: the running statistics), its float32
    scale = gamma / sigma and shift = beta - mu * scale, and p(u) = pos if u >= 0 else neg::

        b = scale * x + shift      s = b + r      u = s - shift_x      y = p(u) * u - shift_y

    RPReLU is pos = 1, neg = beta_c, shift_x = gamma_c, shift_y = -zeta_c; PReLU has no shifts.
    Backward from g = dL/dy, with h = g * p(u) = dL/ds and xhat = (x - mu) / sigma::

        d pos = sum g u [u >= 0]     d neg = sum g u [u < 0]     d shift_x = -sum h     d shift_y = -sum g
        d beta = sum h               d gamma = sum h xhat        dr = sum over the parts of h
        dx = gamma / sigma * (h - d beta / M - xhat * d gamma / M)   (training; M values per channel)
        dx = gamma / sigma * h                                       (evaluation)

    Passes over the maps, per part: forward one for the statistics (training) and one writing its
    channels of y (no concatenation); backward one reading g, x and r (u is recomputed, not stored) that
    writes h and every per-channel sum, and one writing dx. Each float operation is the unfused chain's
    (:class:`BatchNorm`, ``Add``, ``Concat``, :class:`~numbnn.functional.activations.DPRelu`) in the same
    order and the sums run over the same row chunks in the same order, so y, dx, each part's h and every
    parameter gradient equal the chain's bit for bit.

    Inputs: x, gamma, beta, running_mean, running_var per part, then r, pos, neg, shift_x, shift_y. In
    that order the backward pass meets the inputs' graphs in the order it meets them in the chain's, so
    tensors with several readers (a block's input) also sum their gradients in the chain's order.

    ``add_after`` (one part only): y = DPReLU(BN(x)) + r, the FPReLU before the shortcut's add of FTBNN's
    unit (:mod:`numbnn.models.ftbnn`); then u = b - shift_x, r is added to the activation's output, h is
    the gradient of BN(x) alone and dr = g.

    ``residual_copies`` R (one part, r added before the activation): x has R times r's C channels and
    y = DPReLU(BN(x) + concat(r, ..., r)), a parameter-free shortcut that repeats its channels
    (:mod:`numbnn.models.bnn_small`'s width growth) without the concatenation's copy forward and its
    split backward: each kernel call takes one copy's C columns of x, and dr = the sum of h's R column
    blocks, added in the order the chain's gradient accumulation adds them.
    """

    @staticmethod
    def forward(ctx, *inputs, training, momentum, eps, add_after=False, residual_copies=1, moments=()):
        *parts, r, pos, neg, shift_x, shift_y = inputs
        dtype, c, count = r.dtype, r.shape[-1], len(parts) // 5
        width = c * residual_copies  # a part's channels
        r2 = _kernel_array(r, dtype).reshape(-1, c)
        params = [_kernel_array(_channel_vector(p, count * width, dtype), dtype) for p in (pos, neg, shift_x, shift_y)]
        out = np.empty((r2.shape[0], count * width), dtype)
        saved = []
        for k in range(count):
            x, gamma, beta, running_mean, running_var = parts[5 * k: 5 * k + 5]
            x2 = _kernel_array(x, dtype).reshape(-1, width)
            mean, var = _statistics(x2, x.shape, running_mean, running_var, training, momentum,
                                    moments[k] if moments else None)
            scale, shift, inv_std = normalizing_affine(gamma, beta, mean, var, eps)
            scale, shift = scale.astype(dtype), shift.astype(dtype)
            for copy in range(residual_copies):
                first, columns = k * width + copy * c, slice(copy * c, (copy + 1) * c)  # in y; in x
                _norm_kernels.bn_add_dprelu(x2, r2, scale[columns], shift[columns], *(p[first:first + c] for p in params),
                                            out, first, copy * c, add_after)
            saved.append((x2, mean, inv_std, gamma, scale, shift))
        ctx.training, ctx.add_after, ctx.copies = training, add_after, residual_copies
        ctx.save_for_backward(r2, params[:3], saved)
        return out.reshape(r.shape[:-1] + (count * width,))

    @staticmethod
    def backward(ctx, grad):
        r2, (pos, neg, shift_x), saved = ctx.saved
        rows, c = r2.shape
        width = c * ctx.copies
        g2 = _kernel_array(grad, r2.dtype).reshape(rows, -1)
        needs = ctx.needs_input_grad
        with_pos = bool(needs[-4])
        sums = np.empty((5, g2.shape[1]))
        part_grads, dr = [], None
        for k, (x2, mean, inv_std, gamma, scale, shift) in enumerate(saved):
            # with add_after only BN's dx pass reads h, and it recomputes h (bn_activation_input_grad): no map
            # is stored (no rows); otherwise h is r's gradient as well
            h = np.empty((0, x2.shape[1]), x2.dtype) if ctx.add_after else np.empty_like(x2)
            for copy in range(ctx.copies):
                first, columns = k * width + copy * c, slice(copy * c, (copy + 1) * c)  # in g; in x and h
                partial = _norm_kernels.bn_add_dprelu_grad_sums(
                    g2, first, x2, copy * c, r2, scale[columns], shift[columns], pos[first:first + c],
                    neg[first:first + c], shift_x[first:first + c], mean[columns], h, with_pos,
                    _channel_kernels.n_chunks(rows), ctx.add_after)
                sums[:, first:first + c] = _channel_kernels.chunk_total(partial)
            if ctx.add_after:  # r was added after the activation: its gradient is g itself
                dr = g2
            else:  # r feeds every part and copy
                h_r = h if ctx.copies == 1 else _channel_kernels.sum_column_blocks(h, np.empty_like(r2), r2, False)
                dr = h_r if dr is None else add_arrays(dr, h_r)
            part = slice(k * width, (k + 1) * width)
            dbeta, dgamma = sums[2, part].copy(), sums[4, part] * inv_std
            dx = None
            if needs[5 * k] and ctx.add_after:  # one part
                a, b, dshift = _input_grad_coefficients(x2, mean, inv_std, gamma, dbeta, dgamma, ctx.training)
                dx = _norm_kernels.bn_activation_input_grad(g2, x2, scale, shift, pos, neg, shift_x, a, b, dshift)
                dx = dx.reshape(grad.shape[:-1] + (width,))
            elif needs[5 * k]:
                dx = _input_grad(h, x2, mean, inv_std, gamma, dbeta, dgamma, ctx.training).reshape(grad.shape[:-1] + (width,))
            part_grads += [dx, dgamma, dbeta, None, None]
        d_pos, d_neg, sum_h, sum_g, _ = sums
        return (*part_grads, dr.reshape(grad.shape[:-1] + (c,)), d_pos if with_pos else None, d_neg, -sum_h, -sum_g)


def _kernel_array(a, dtype) -> np.ndarray:
    """``a`` as the fused kernels' explicit signatures take it: C-contiguous, writable, of ``dtype`` (a copy
    only when it is not already)."""
    return np.require(a, dtype, ["C", "W"])


def batch_norm_add_dprelu(x, residual, gamma, beta, running_mean, running_var, training: bool,
                          pos_slope, neg_slope, shift_x, shift_y, momentum=0.1, eps=1e-5, add_after=False,
                          residual_copies: int = 1) -> Tensor:
    """``dprelu(batch_norm(x, ...) + residual, pos_slope, neg_slope, shift_x, shift_y)`` as one fused op
    (:class:`BatchNormAddDPRelu` has the math), equal to that chain bit for bit, running statistics
    included. The batch-norm arguments are :func:`batch_norm`'s, the activation's those of
    :func:`~numbnn.functional.dprelu` (scalars or one value per channel of y); ``residual`` has x's shape
    and dtype (float32 or float64).

    Parts: ``x`` and the four batch-norm arguments may instead be lists with one entry per part, each part
    with the residual's shape; then y = dprelu(concat(batch_norm(x_k, ...) + residual, axis=-1), ...),
    without the concatenation's copies (ReActNet's duplicated 1x1 branches).

    ``add_after``: ``dprelu(batch_norm(x, ...), ...) + residual`` instead (the residual added to the
    activation's output; one part only).

    ``residual_copies`` R: y = dprelu(batch_norm(x, ...) + concat([residual] * R, axis=-1), ...), x having R
    times the residual's channels (one part, not ``add_after``), without the concatenation's copies."""
    if isinstance(x, (list, tuple)):
        stats = (gamma, beta, running_mean, running_var)
        if not x or any(not isinstance(a, (list, tuple)) or len(a) != len(x) for a in stats):
            raise InputError("with x a list of parts, gamma, beta, running_mean and running_var must be lists of "
                             f"as many entries ({len(x)})")
        parts = list(zip(x, *stats))
    else:
        parts = [(x, gamma, beta, running_mean, running_var)]
    if add_after and len(parts) > 1:
        raise InputError("add_after takes one part: the residual is added to the activation's output")
    copies = check_int(residual_copies, "residual_copies")
    if copies > 1 and (add_after or len(parts) > 1):
        raise InputError("residual_copies takes one part, with the residual added before the activation")
    for part in parts:
        _check_batch_norm(*part, training, momentum, eps)
        x_shape = tuple(part[0].shape)
        expected = x_shape[:-1] + (x_shape[-1] // copies,) if x_shape and x_shape[-1] % copies == 0 else None
        if tuple(residual.shape) != expected or residual.dtype != part[0].dtype:
            wanted = "x's shape" if copies == 1 else f"x's shape with 1/{copies} of its channels"
            raise InputError(f"residual must have {wanted} {expected or x_shape} and dtype {part[0].dtype}, "
                             f"got {tuple(residual.shape)} {residual.dtype}")
    if np.dtype(residual.dtype) not in (np.float32, np.float64):
        raise InputError(f"batch_norm_add_dprelu takes float32 or float64 maps, got {residual.dtype}")
    channels = len(parts) * residual.shape[-1] * copies
    for name, p in (("pos_slope", pos_slope), ("neg_slope", neg_slope), ("shift_x", shift_x), ("shift_y", shift_y)):
        shape = tuple(np.shape(p.data if isinstance(p, Tensor) else p))
        if shape not in ((), (1,), (channels,)):
            raise InputError(f"{name} must be a scalar or have shape ({channels},) (one per channel), got {shape}")
    return BatchNormAddDPRelu.apply(
        *(a for part in parts for a in part), residual, pos_slope, neg_slope, shift_x, shift_y,
        training=bool(training), momentum=float(momentum), eps=float(eps), add_after=bool(add_after),
        residual_copies=copies, moments=tuple(output_moments(part[0]) for part in parts),
    )
