"""Binary convolution and linear layers: packed-bit forward, float straight-through backward.

Value: ``conv2d(sign(x), sign(w)) * scale`` (scale: optional per-output-channel alpha, e.g. XNOR-Net /
ReActNet's mean|W_o|). The forward never builds the float product: x and w are packed to one bit
per value and multiplied by :mod:`numbnn.kernels`' XNOR-popcount kernels, which return the exact
integer dot products of the +1/-1 values.

Backward, with g the incoming gradient times scale: the derivative wrt sign(x) and sign(w) is
that of an ordinary float convolution of the +1/-1 tensors, computed with BLAS as in
:mod:`numbnn.functional.conv`; each is then multiplied by its straight-through mask: for x,
``act_quantizer``'s (a 1-bit sign :class:`~numbnn.functional.quantizers.Quantizer`: ``ste_sign``'s
1{|x| <= act_clip}, act_clip a number or one bound per input channel, ``approx_sign``'s
max(0, 2 - 2|x|)), for w the clipped identity
1{|w| <= weight_clip} (ReActNet's weight STE). dscale = sum over pixels of g * conv.

``pad_value`` says what the padded border holds: 0 contributes nothing (a float convolution of
sign(x) with zero padding), +1 or -1 are constant taps of that value. Padding taps are constants,
so they never send gradient to x; they do enter dw.

``shift`` (a per-channel b, ReActNet's RSign threshold, arXiv 2003.03488 eq. 1): the conv of sign(x + b),
the activations' straight-through derivative taken at x + b and db = the sum of x's gradient over every
pixel: exactly ``binary_conv2d(x + b, ...)`` with the addition's own backward, bit for bit, but the map
x + b is never written. The packing kernels and ApproxSign's gradient add b as they read x; a path that
needs the real values (BLAS columns, another quantizer) computes x + b in its backward.

``shuffle_groups`` (G > 1: ShuffleNet's channel shuffle of x before the sign, arXiv 1707.01083 Sec. 3.1, FTBNN's
before each grouped conv): exactly ``binary_conv2d(channel_shuffle(x, G), ...)``, bit for bit, but x's gradient
leaves in x's own channel order from ApproxSign's gradient pass, which also adds the gradient x's other
consumers (a residual shortcut) have sent: one pass over the map instead of three (the gradient, the inverse
shuffle, the engine's addition). The forward still writes the shuffled map, which the backward reads.
"""

import numpy as np

from numbnn import kernels
from numbnn.autograd import Function, Tensor
from numbnn.autograd.function import OutputMoments
from numbnn.autograd.arrays import channel_sums, sums_by_chunks
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.functional.conv import blocked_backward, columns, conv_shape
from numbnn.functional.shape import shuffle_channels
from numbnn.functional.quantizers import (APPROX_SIGN, STE_SIGN, Quantizer, binary_quantizer, check_clip, sign_values,
                                          ste_backward)
from numbnn.kernels import activations as _activation_kernels
from numbnn.kernels import channels as _channel_kernels
from numbnn.kernels.permute_conv_input_grad import fits as fits_permute_conv_input_grad
from numbnn.kernels.sign_conv_input_grad import fits as fits_sign_conv_input_grad


def _shifted(x, shift):
    """x + shift (the map the conv binarizes), or x itself without a shift."""
    if shift is None:
        return x
    rows = x.reshape(-1, x.shape[-1])
    return _channel_kernels.add_channels(rows, shift, np.empty_like(rows)).reshape(x.shape)


def _sign_columns(x, s, pad_value, out=None):
    """im2col of sign(x) (group-major) whose padding taps hold pad_value, in one pass (into ``out`` if given)."""
    g = s.geom
    if g.kh == g.kw == 1 and g.ph == g.pw == 0:
        return columns(sign_values(x), s)
    return kernels.im2col(x, (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw), out=out, signs=True,
                          pad_value=pad_value, groups=s.groups)


# Weight gradients S^T g use the table-lookup product of kernels.sign_rows_matmul on packed sign columns
# when a group has at least this many columns K_g = KH*KW*C_in/groups; below it BLAS on float columns.
# A pointwise conv's float columns are sign(x) itself (no im2col), yet the lookup won there too on every
# 1x1 shape of the zoo from K = 32 (0.62-0.89x the conv's forward + backward at 2 threads on Zen 4,
# 2026-12-07; docs/performance.md, section "2026-12-07 (late evening ...)"); below 32 columns a 4-bit
# table serves too few rows. A spatial conv's BLAS path needs a float im2col, so the lookup wins from
# K_g = 144 (section "2026-12-06 (midday)").
LOOKUP_MIN_COLUMNS = 32
LOOKUP_MIN_COLUMNS_SPATIAL = 144


def _lookup_weight_grad(x, grad2, s) -> bool:
    k = s.geom.kh * s.geom.kw * s.c // s.groups
    spatial = s.geom.kh * s.geom.kw > 1
    return x.dtype == grad2.dtype == np.float32 and k >= (LOOKUP_MIN_COLUMNS_SPATIAL if spatial else LOOKUP_MIN_COLUMNS)


def _sign_weight_grad(x, grad2, s, pad_value, shift=None):
    """dL/d sign(w) = S^T g [O, KH, KW, C/G] by table lookup; S = im2col(sign(x)) with padding taps = pad_value.

    With G groups, group g's output channels take S_g^T g_g over their group's columns only (one call
    for all groups). The packed columns hold +1 in padding taps, so (1 - pad_value) * (sum of g over
    the output pixels whose tap is in the padding) comes off each of that tap's C/G rows.
    """
    g = s.geom
    geometry = ((g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw))
    bits = kernels.pack_sign_columns(x, *geometry, groups=s.groups, shift=shift)
    dw = kernels.sign_rows_matmul(bits, grad2, s.groups).T  # [O, K/G], C-contiguous
    if pad_value != 1 and (g.ph or g.pw):
        padded = kernels.padding_tap_sums(grad2, (s.h, s.w), *geometry)  # [taps, O]
        per_tap = dw.reshape(s.o, g.kh * g.kw, s.c // s.groups)  # a view: the correction runs in place
        per_tap -= ((1 - pad_value) * padded.T).astype(dw.dtype)[:, :, None]
    return dw.reshape(s.o, g.kh, g.kw, s.c // s.groups)


# The input gradient of a spatial binary conv comes from the table-lookup kernel
# kernels.sign_conv_input_grad (G (scale * sign(W)) added straight onto dx) for convs on whole vectors of
# input channels per group with at least LOOKUP_INPUT_GRAD_MIN_OUTPUTS output channels per group and
# LOOKUP_INPUT_GRAD_MIN_MACS multiply-adds (below, BLAS's one call costs less than waking the thread
# pool); otherwise from the register-tiled kernel (up to 64 outputs per group) or BLAS + col2im. From
# `python3 benchmarks/conv_input_grad.py --threads 2` (Intel Xeon, 2026-12-06/07; docs/performance.md):
# on the zoo's 3x3 shapes with 32-256 outputs per group the lookup took 0.39-0.65x the time of BLAS +
# col2im, less than the tiled kernel (0.45 against 0.72 on FTBNN's stage 3, 64 per group; 0.39 against
# 0.44 at 32); with 4-16 outputs per group the tiled kernel was faster (0.28 against 0.35 on FTBNN's stage 1).
# A pointwise conv's BLAS path needs no col2im, so there the lookup pays only from wide inputs: with at
# least LOOKUP_INPUT_GRAD_MIN_POINTWISE_INPUTS input channels per group it took 0.78-0.98x the conv's
# forward + backward on the zoo's 1x1 shapes with 128-256 inputs (Zen 4, 2 threads, 2026-12-07; 0.99 at
# 64 inputs, 1.09-1.10 at 32; docs/performance.md, section "2026-12-07 (late evening ...)").
# On a target with AVX-512F, convs with whole vectors of input and output channels per group take the
# permute of per-pixel sign tables (kernels.permute_conv_input_grad) instead, spatial ones up to
# PERMUTE_INPUT_GRAD_MAX_OUTPUTS outputs per group, pointwise ones from PERMUTE_INPUT_GRAD_MIN_POINTWISE_INPUTS
# inputs per group (below, building a pixel's tables costs more than its few lookups) up to
# PERMUTE_INPUT_GRAD_MAX_OUTPUTS_POINTWISE outputs. Zen 4, 2 threads, batch 128, 2026-12-07
# (docs/performance.md): on the zoo's 3x3 shapes with 16-256 outputs per group 0.45-0.90x the time of the
# better of the tiled and lookup kernels (`python3 benchmarks/conv_input_grad.py --threads 2`); on 1x1 shapes
# with 64-512 inputs and 32-512 outputs 0.55-0.84x the better of BLAS and the lookup, with 32 inputs
# 0.56-1.33x (the same with `--pointwise`; BLAS's time on the narrow shapes moves from run to run).
LOOKUP_INPUT_GRAD_MIN_OUTPUTS = 32
LOOKUP_INPUT_GRAD_MIN_MACS = 1 << 22
LOOKUP_INPUT_GRAD_MIN_POINTWISE_INPUTS = 128
PERMUTE_INPUT_GRAD_MAX_OUTPUTS = 256
PERMUTE_INPUT_GRAD_MIN_POINTWISE_INPUTS = 64
PERMUTE_INPUT_GRAD_MAX_OUTPUTS_POINTWISE = 512


def _conv_macs(s) -> int:
    g = s.geom
    return s.rows * s.o * g.kh * g.kw * s.c // s.groups


def _permute_input_grad(grad2, s) -> bool:
    g = s.geom
    per_group = s.o // s.groups
    if g.kh * g.kw > 1:
        shape_fits = per_group <= PERMUTE_INPUT_GRAD_MAX_OUTPUTS
    else:
        shape_fits = (s.c // s.groups >= PERMUTE_INPUT_GRAD_MIN_POINTWISE_INPUTS
                      and per_group <= PERMUTE_INPUT_GRAD_MAX_OUTPUTS_POINTWISE)
    return (grad2.dtype == np.float32 and shape_fits and _conv_macs(s) >= LOOKUP_INPUT_GRAD_MIN_MACS
            and fits_permute_conv_input_grad(s.c, s.o, s.groups))


def _lookup_input_grad(x, grad2, s) -> bool:
    """Whether dL/d sign(x) comes from :func:`_sign_input_grad` (a lookup or a permute of sign tables)."""
    if x.dtype == np.float32 and _permute_input_grad(grad2, s):
        return True
    g = s.geom
    wide_enough = g.kh * g.kw > 1 or s.c // s.groups >= LOOKUP_INPUT_GRAD_MIN_POINTWISE_INPUTS
    return (x.dtype == grad2.dtype == np.float32 and wide_enough and fits_sign_conv_input_grad(s.c, s.groups)
            and s.o // s.groups >= LOOKUP_INPUT_GRAD_MIN_OUTPUTS and _conv_macs(s) >= LOOKUP_INPUT_GRAD_MIN_MACS)


def _sign_input_grad(grad2, w, scale_rows, s):
    """dL/d sign(x) = col2im(g (scale * sign(W))) [N, H, W, C] by a permute of sign tables or a table lookup."""
    g = s.geom
    kernel = kernels.permute_conv_input_grad if _permute_input_grad(grad2, s) else kernels.sign_conv_input_grad
    return kernel(grad2, w, (s.n, s.h, s.w, s.c), (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw), (g.dh, g.dw), s.groups,
                  scale=scale_rows)


def _scaled_signs(w, scale_rows):
    """scale_o * sign(w_o) for the weights w [O, ...] (one pass)."""
    rows = np.ascontiguousarray(w).reshape(len(w), -1)
    return _activation_kernels.scaled_sign_rows(rows, scale_rows, np.empty_like(rows)).reshape(w.shape)


def _scaled_ste(grad, w, scale_rows, clip):
    """grad * scale_o * 1{|w| <= clip}, the weight gradient through scale_o * sign(w) (in place when
    ``grad`` is C-contiguous)."""
    rows = grad.reshape(len(grad), -1)
    out = _activation_kernels.scaled_ste_grad_rows(rows, np.ascontiguousarray(w).reshape(len(w), -1), scale_rows,
                                                   clip, rows)
    return out.reshape(w.shape)


def _binary_conv_sums(x, w, s, pad_value, shift=None):
    """conv2d(sign(x + shift), sign(w)) on packed bits: exact int32 sums [N*Ho*Wo, O]."""
    g = s.geom
    acc = kernels.binary_conv2d(
        kernels.pack_activations(x, s.groups, shift=shift), kernels.pack_conv_weight(w), in_channels=s.c,
        stride=(g.sh, g.sw), padding=(g.ph, g.pw), dilation=(g.dh, g.dw), pad_value=pad_value, groups=s.groups,
    )
    return acc.reshape(s.rows, s.o)


def _threshold_backward(ctx, dsx, x, shift):
    """(dx, db) under RSign's threshold b with ApproxSign, in one pass over the map (in place in dsx):
    t = dsx * ApproxSign'(x + b), db = the sum of t over the pixels (exactly :func:`channel_sums`' result), and
    dx = t plus the gradient x's other consumers (a residual shortcut) have already sent, taken from the
    engine (:meth:`~numbnn.autograd.function.Context.take_pending_grad`) instead of added by it afterwards."""
    rows = dsx.reshape(-1, dsx.shape[-1])
    pending = ctx.take_pending_grad(0, dsx.shape, dsx.dtype) if ctx.needs_input_grad[0] else None
    partial = _activation_kernels.approx_sign_grad_shifted_sums(
        rows, x.reshape(rows.shape), shift, rows if pending is None else pending.reshape(rows.shape), pending is not None,
        rows, _channel_kernels.n_chunks(len(rows)))
    return dsx, partial.sum(axis=0).astype(dsx.dtype)


def _unshuffle_backward(ctx, dsx, x, groups, act_quantizer, act_clip):
    """x's gradient in its own channel order, for a conv that read x shuffled in ``groups`` (``x`` here: the
    shuffled map it read): with ApproxSign one pass that also adds the gradient x's other consumers sent (taken
    from the engine as in :func:`_threshold_backward`), otherwise the quantizer's gradient, then the inverse shuffle."""
    if act_quantizer is not APPROX_SIGN:
        return shuffle_channels(act_quantizer.backward(dsx, x, act_clip, out=dsx), groups, inverse=True)
    rows = dsx.reshape(-1, dsx.shape[-1])
    pending = ctx.take_pending_grad(0, dsx.shape, dsx.dtype)
    _activation_kernels.approx_sign_grad_unshuffled(
        rows, x.reshape(rows.shape), groups, rows if pending is None else pending.reshape(rows.shape),
        pending is not None, rows, _channel_kernels.n_chunks(len(rows)))
    return dsx


class BinaryConv2d(Function):
    """Packed XNOR-popcount forward; float STE backward, block by block (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, w, scale, shift, stride, padding, dilation, groups, pad_value, act_quantizer, act_clip,
                weight_clip, shuffle_groups=1):
        s = conv_shape(x.shape, w.shape, stride, padding, dilation, groups)
        if shuffle_groups > 1:  # the conv reads the shuffled map from here on, its backward too
            x = shuffle_channels(x, shuffle_groups)
        if shift is not None:
            shift = np.ascontiguousarray(shift, dtype=x.dtype)
        sums = _binary_conv_sums(x, w, s, pad_value, shift)
        # one pass casts the integer sums and multiplies by the scale (by ones when there is none, or when the
        # scale's own gradient needs the unscaled conv: the same values as a cast), summing the moments of
        # its output for the batch norm that reads it next (Context.output_moments)
        scaled_here = scale is not None and not ctx.needs_input_grad[2]
        dtype = np.result_type(x.dtype, scale.dtype) if scaled_here else x.dtype
        row = np.broadcast_to(scale, (s.o,)) if scaled_here else np.ones(s.o)
        values = np.empty((s.rows, s.o), dtype=dtype)
        partial = _channel_kernels.scale_columns(sums, np.ascontiguousarray(row, dtype=dtype), values,
                                                 _channel_kernels.n_chunks(s.rows))
        if scale is None or scaled_here:
            conv, out = None, values
            ctx.output_moments = OutputMoments(out, partial)
        else:
            conv, out = values, values * scale
        ctx.shape = s
        ctx.options = (pad_value, act_quantizer, act_clip, weight_clip, shuffle_groups)
        ctx.save_for_backward(x, w, scale, shift, conv if ctx.needs_input_grad[2] else None)
        return out.reshape(s.out_shape)

    @staticmethod
    def backward(ctx, grad):
        s = ctx.shape
        x, w, scale, shift, conv = ctx.saved
        pad_value, act_quantizer, act_clip, weight_clip, shuffle_groups = ctx.options
        need_x, need_w, need_scale, need_shift = ctx.needs_input_grad
        if s.rows == 0:  # an empty batch: every gradient is zero (the kernels below assume rows)
            return tuple(np.zeros_like(a) if need else None for a, need in zip((x, w, scale, shift), ctx.needs_input_grad))
        need_x = need_x or need_shift
        grad2 = np.ascontiguousarray(grad).reshape(s.rows, s.o)
        dscale = np.einsum("mo,mo->o", grad2, conv) if need_scale else None
        # scale_o multiplies output channel o: fold it into the +-1 weight rows for dx, and into dW's
        # rows afterwards (each a single pass over the weights), rather than rescaling the whole gradient.
        scale_rows = None if scale is None else np.ascontiguousarray(np.broadcast_to(scale, (s.o,)), dtype=w.dtype)
        lookup = need_w and _lookup_weight_grad(x, grad2, s)
        lookup_x = need_x and _lookup_input_grad(x, grad2, s)
        dsx = dsw = None
        signed = None  # x + shift, computed only for a path that needs the real values
        if (need_x and not lookup_x) or (need_w and not lookup):
            signed = _shifted(x, shift)
            weight = sign_values(w) if scale_rows is None else _scaled_signs(w, scale_rows)
            dsx, dsw = blocked_backward(
                grad2, lambda n0, n1, block, out: _sign_columns(signed[n0:n1], block, pad_value, out), weight, s,
                need_x and not lookup_x, need_w and not lookup, cols_dtype=x.dtype,
            )
        if lookup_x:
            dsx = _sign_input_grad(grad2, w, scale_rows, s)
        if lookup:
            dsw = _sign_weight_grad(x, grad2, s, pad_value, shift)
        dx = dshift = None
        if need_x:  # in place: dsx is fresh
            if shuffle_groups > 1:  # (no shift: binary_conv2d takes one or the other)
                dx = _unshuffle_backward(ctx, dsx, x, shuffle_groups, act_quantizer, act_clip)
            elif shift is not None and act_quantizer is APPROX_SIGN and sums_by_chunks(dsx):
                dx, dshift = _threshold_backward(ctx, dsx, x, shift)
            else:
                dx = act_quantizer.backward(dsx, _shifted(x, shift) if signed is None else signed, act_clip, out=dsx)
                dshift = channel_sums(dx) if need_shift else None
        if not need_w:
            dw = None
        elif scale_rows is None:
            dw = ste_backward(dsw, w, weight_clip, out=dsw)
        else:
            dw = _scaled_ste(dsw, w, scale_rows, weight_clip)
        return (dx if ctx.needs_input_grad[0] else None), dw, dscale, dshift


class BinaryLinear(Function):
    """binary_matmul forward on packed rows; backward dx = g @ sign(w), dw = g.T @ sign(x), times the STE masks."""

    @staticmethod
    def forward(ctx, x, w, scale, act_quantizer, act_clip, weight_clip):
        x2 = x.reshape(-1, x.shape[-1])
        conv = kernels.binary_matmul(kernels.pack_bits(x2), kernels.pack_bits(w), x2.shape[1]).astype(x.dtype)
        out = conv * scale if scale is not None else conv
        ctx.options = (act_quantizer, act_clip, weight_clip)
        ctx.save_for_backward(x, w, scale, conv if ctx.needs_input_grad[2] else None)
        return out.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x, w, scale, conv = ctx.saved
        act_quantizer, act_clip, weight_clip = ctx.options
        need_x, need_w, need_scale = ctx.needs_input_grad
        grad2 = grad.reshape(-1, w.shape[0])
        dscale = np.einsum("mo,mo->o", grad2, conv) if need_scale else None
        g = grad2 * scale if scale is not None else grad2
        dx = dw = None
        if need_x:
            dsx = (g @ sign_values(w)).reshape(x.shape)
            dx = act_quantizer.backward(dsx, x, act_clip, out=dsx)
        if need_w:
            dw = ste_backward(g.T @ sign_values(x.reshape(-1, x.shape[-1])), w, weight_clip)
        return dx, dw, dscale


def _check_options(pad_value, act_clip, weight_clip, channels):
    """(act_clip, weight_clip) checked: act_clip a number or one bound per input channel (``check_clip``)."""
    if pad_value not in (0, 1, -1):
        raise InputError(f"pad_value must be 0, 1 or -1, got {pad_value!r}")
    if np.ndim(weight_clip) or not weight_clip > 0:
        raise InputError(f"weight_clip must be a number > 0, got {weight_clip!r}")
    return check_clip(act_clip, channels, "act_clip"), float(weight_clip)


def _check_scale(scale, out_channels):
    if scale is not None and tuple(scale.shape) not in ((out_channels,), (1,), ()):
        raise InputError(f"scale must have shape ({out_channels},) (one alpha per output channel), got {tuple(scale.shape)}")


def binary_conv2d(
    x, w, stride=1, padding=0, dilation=1, groups=1, pad_value=0,
    act_quantizer: Quantizer | str = STE_SIGN, act_clip=1.0, weight_clip=1.0, scale=None, shift=None, shuffle_groups=1,
) -> Tensor:
    """conv2d(sign(x + shift), sign(w)) * scale with STE gradients; forward on packed bits (module docstring).

    x NHWC float, w OHWI latent float weights [O, KH, KW, C/groups], scale None or [O], shift None or [C]
    (x + shift is never written); ``act_quantizer`` a 1-bit sign quantizer or its registered name;
    ``shuffle_groups`` > 1: the conv of ``channel_shuffle(x, shuffle_groups)`` (no shift then; act_clip per
    channel of the shuffled map), x's gradient put back in x's order in one pass (module docstring).
    """
    act_quantizer = binary_quantizer(act_quantizer)
    act_clip, weight_clip = _check_options(pad_value, act_clip, weight_clip, x.shape[-1])
    _check_scale(scale, w.shape[0])
    if shift is not None and tuple(shift.shape) != (x.shape[-1],):
        raise InputError(f"shift must have shape ({x.shape[-1]},) (one per input channel), got {tuple(shift.shape)}")
    shuffle_groups = check_int(shuffle_groups, "shuffle_groups")
    if shuffle_groups > 1 and shift is not None:
        raise InputError("a binary conv takes a shift or a channel shuffle of its input, not both")
    if x.shape[-1] % shuffle_groups:
        raise InputError(f"shuffle_groups must divide x's {x.shape[-1]} channels, got {shuffle_groups}")
    return BinaryConv2d.apply(
        x, w, scale, shift, stride=stride, padding=padding, dilation=dilation, groups=groups, pad_value=pad_value,
        act_quantizer=act_quantizer, act_clip=act_clip, weight_clip=weight_clip, shuffle_groups=shuffle_groups,
    )


def binary_linear(x, w, act_quantizer: Quantizer | str = STE_SIGN, act_clip=1.0, weight_clip=1.0, scale=None) -> Tensor:
    """(sign(x) @ sign(w).T) * scale with STE gradients; x [..., in], w [out, in], scale None or [out]."""
    if len(w.shape) != 2 or x.shape[-1] != w.shape[1]:
        raise InputError(f"w must be [out, {x.shape[-1]}] for x of shape {tuple(x.shape)}, got {tuple(w.shape)}")
    act_quantizer = binary_quantizer(act_quantizer)
    act_clip, weight_clip = _check_options(0, act_clip, weight_clip, x.shape[-1])
    _check_scale(scale, w.shape[0])
    return BinaryLinear.apply(x, w, scale, act_quantizer=act_quantizer, act_clip=act_clip, weight_clip=weight_clip)
