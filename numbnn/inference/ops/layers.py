"""Float layers computed exactly as the float model computes them: convolution, linear, pooling, reductions."""

from __future__ import annotations

import numpy as np

from numbnn import kernels
from numbnn.inference.ops.base import (
    Op, Spec, const_array, expect, get_attr, int_attr, int_list, pair_attr, register_op,
)
from numbnn.inference.ops.steps import Elementwise
from numbnn.kernels.depthwise import WIDE_MULTIPLIER, depthwise_conv2d, is_stem_3x3, stem_conv2d_steps
from numbnn.kernels import gemm
from numbnn.kernels.ordered_matmul import ordered_matmul
from numbnn.kernels.pooling import avg_pool2d, mean


@register_op
class Conv2d(Op):
    """Float convolution of NHWC x with OHWI weight (+ bias), computed as the float model computes it:
    im2col (a reshape for unpadded 1x1) and one BLAS product per group, or shift-and-add over taps when
    every group has one input channel (depthwise)."""

    name = "conv2d"
    const_names = ("weight", "bias")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        op = self.name
        self.groups = int_attr(attrs, "groups", op, 1)
        self.stride = pair_attr(attrs, "stride", op, 1)
        self.padding = pair_attr(attrs, "padding", op, 0)
        self.dilation = pair_attr(attrs, "dilation", op, 1)
        self.weight = const_array(consts, "weight", op, np.float32, 4)
        self.bias = const_array(consts, "bias", op, np.float32, 1, optional=True)
        out_channels = self.weight.shape[0]
        expect(out_channels % self.groups == 0, f"conv2d: {out_channels} outputs not divisible by groups={self.groups}")
        expect(self.bias is None or self.bias.shape == (out_channels,), "conv2d: bias needs one value per output")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        shape = specs[0].shape
        expect(len(shape) == 3, f"conv2d: input must be [H, W, C], got {shape}")
        h, w, c = shape
        o, kh, kw, cg = self.weight.shape
        expect(c == cg * self.groups, f"conv2d: input has {c} channels, weight expects {cg} x {self.groups} groups")
        ho = kernels.conv_output_size(h, kh, self.stride[0], self.padding[0], self.dilation[0])
        wo = kernels.conv_output_size(w, kw, self.stride[1], self.padding[1], self.dilation[1])
        expect(ho >= 1 and wo >= 1, f"conv2d: input {h}x{w} too small for the kernel")
        return Spec("float32", (ho, wo, o))

    def __call__(self, x):
        n, h, w, c = x.shape
        o, kh, kw, _ = self.weight.shape
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        ho, wo = kernels.conv_output_size(h, kh, sh, ph, dh), kernels.conv_output_size(w, kw, sw, pw, dw)
        if self.groups == c:  # one input channel per group: the float model's depthwise kernel
            out = depthwise_conv2d(x, self.weight, self.stride, self.padding, self.dilation)
        else:
            if kh == kw == 1 and ph == pw == 0:
                cols = x.reshape(-1, c) if sh == sw == 1 else np.ascontiguousarray(x[:, ::sh, ::sw]).reshape(-1, c)
            else:
                cols = kernels.im2col(np.ascontiguousarray(x), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
            w2 = self.weight.reshape(o, -1)
            if self.groups == 1:
                out = gemm.matmul(cols, w2.T)
            else:
                m, k = cols.shape
                cg = c // self.groups
                cols_g = cols.reshape(m, k // c, self.groups, cg).transpose(2, 0, 1, 3).reshape(self.groups, m, -1)
                wg = w2.reshape(self.groups, o // self.groups, -1)
                out = np.matmul(cols_g, wg.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(m, o)
            if self.bias is not None:
                out += self.bias
            return out.reshape(n, ho, wo, o)
        if self.bias is not None:
            out += self.bias
        return out


@register_op
class Conv2dSteps(Op):
    """float32 [Ho, Wo, m]: a stem ``conv2d`` (one input channel, 3x3, m >= WIDE_MULTIPLIER outputs: every zoo
    stem but PokeBNN's) followed by an ``elementwise`` node of steps reading no second input (its batch
    norm), fused so that each output row goes through the steps while it is in the cache
    (:func:`numbnn.kernels.depthwise.stem_conv2d_steps`): the same float32 operations in the same order,
    without a pass of its own over the stem's map. Attributes and constants: the conv's, and
    ``stages``/``params`` of the steps."""

    name = "conv2d_steps"
    const_names = ("weight", "params")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.conv = Conv2d({k: v for k, v in attrs.items() if k != "stages"}, {"weight": consts.get("weight")})
        self.steps = Elementwise({"stages": get_attr(attrs, "stages", self.name)}, {"params": consts.get("params")})
        expect(not self.steps.uses_other, f"{self.name}: steps may not read a second input")
        expect(self.conv.groups == 1 and is_stem_3x3(self.conv.weight.shape) and self.conv.bias is None,
               f"{self.name}: needs a 3x3 conv of one input channel to >= {WIDE_MULTIPLIER} outputs without bias, "
               f"got weight {self.conv.weight.shape}")

    def output_spec(self, specs):
        spec = self.conv.output_spec(specs)
        self.steps.output_spec([spec])
        return spec

    def __call__(self, x):
        wo = self.conv.output_spec([Spec("float32", x.shape[1:])]).shape[1]
        channels = self.conv.weight.shape[0]
        row_params = self.steps.repeated_params(channels, wo * channels)  # along an output row
        return stem_conv2d_steps(np.ascontiguousarray(x), self.conv.weight, self.conv.stride, self.conv.padding,
                                 self.conv.dilation, self.steps.codes, self.steps.first_rows, row_params)


@register_op
class Linear(Op):
    """Float y = x @ W.T (+ b), W [out, in], each output summed in the fixed order the float model's
    linear layer uses (:func:`numbnn.kernels.ordered_matmul.ordered_matmul`): batch-invariant and
    bit-equal to it."""

    name = "linear"
    const_names = ("weight", "bias")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.weight = const_array(consts, "weight", self.name, np.float32, 2)
        self.bias = const_array(consts, "bias", self.name, np.float32, 1, optional=True)
        expect(self.bias is None or self.bias.shape == (self.weight.shape[0],), "linear: bias needs one value per output")
        self.weight_t = np.ascontiguousarray(self.weight.T)

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        expect(len(specs[0].shape) >= 1 and specs[0].shape[-1] == self.weight.shape[1],
                f"linear: input must end in {self.weight.shape[1]} features, got {specs[0].shape}")
        return Spec("float32", specs[0].shape[:-1] + (self.weight.shape[0],))

    def __call__(self, x):
        out = ordered_matmul(x.reshape(-1, x.shape[-1]), self.weight_t)
        if self.bias is not None:
            out += self.bias
        return out.reshape(x.shape[:-1] + (self.weight.shape[0],))


# -- pooling and reductions ----------------------------------------------------------------------------


class _Pool(Op):
    """Shared window geometry: kernel, stride, padding (h, w) or "same" (TensorFlow's rule)."""

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.kernel = pair_attr(attrs, "kernel_size", self.name, 1)
        self.stride = pair_attr(attrs, "stride", self.name, 1)
        padding = get_attr(attrs, "padding", self.name)
        self.same = padding == "same"
        if not self.same:
            self.padding = pair_attr(attrs, "padding", self.name, 0)
            expect(2 * self.padding[0] <= self.kernel[0] and 2 * self.padding[1] <= self.kernel[1],
                    f"{self.name}: padding must be at most half the window")

    def window(self, h, w):
        """(pad top, bottom, left, right), ho, wo."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        if self.same:
            ho, wo = -(-h // sh), -(-w // sw)
            th, tw = max((ho - 1) * sh + kh - h, 0), max((wo - 1) * sw + kw - w, 0)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2), ho, wo
        ph, pw = self.padding
        return (ph, ph, pw, pw), (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        expect(len(specs[0].shape) == 3, f"{self.name}: input must be [H, W, C]")
        h, w, c = specs[0].shape
        _, ho, wo = self.window(h, w)
        expect(ho >= 1 and wo >= 1, f"{self.name}: input {h}x{w} too small for the window")
        return Spec("float32", (ho, wo, c))

    def taps(self, xp, ho, wo):
        (kh, kw), (sh, sw) = self.kernel, self.stride
        for i in range(kh):
            for k in range(kw):
                yield xp[:, i: i + sh * (ho - 1) + 1: sh, k: k + sw * (wo - 1) + 1: sw]


@register_op
class AvgPool(_Pool):
    """Mean over each window's real pixels (padding not counted): the float model's pooling kernel."""

    name = "avg_pool"

    def __call__(self, x):
        pad, ho, wo = self.window(x.shape[1], x.shape[2])
        return avg_pool2d(x, self.kernel, self.stride, (pad[0], pad[2]), (ho, wo))


@register_op
class MaxPool(_Pool):
    """Maximum over each window (padding never wins)."""

    name = "max_pool"

    def __call__(self, x):
        n, h, w, c = x.shape
        pad, ho, wo = self.window(h, w)
        xp = np.pad(x, ((0, 0), pad[:2], pad[2:], (0, 0)), constant_values=-np.inf) if any(pad) else x
        out = None
        for view in self.taps(xp, ho, wo):
            out = view.copy() if out is None else np.maximum(out, view, out=out)
        return out


@register_op
class Reduce(Op):
    """mean / sum / max over non-batch axes, computed by the functions the float model's reductions
    call (:func:`numbnn.kernels.pooling.mean`, numpy's sum and max)."""

    name = "reduce"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.fn = get_attr(attrs, "fn", self.name)
        expect(self.fn in ("mean", "sum", "max"), f"reduce: fn must be mean, sum or max, got {self.fn!r}")
        self.axis = tuple(int_list(get_attr(attrs, "axis", self.name), self.name, "axis"))
        self.keepdims = get_attr(attrs, "keepdims", self.name)
        expect(isinstance(self.keepdims, bool), "reduce: keepdims must be true or false")
        expect(len(self.axis) >= 1 and 0 not in self.axis and len(set(self.axis)) == len(self.axis),
                f"reduce: axis must list distinct non-batch axes, got {self.axis}")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        rank = len(specs[0].shape) + 1
        expect(all(-rank < a < rank and a % rank != 0 for a in self.axis), f"reduce: axis {self.axis} out of range")
        axes = {a % rank for a in self.axis}
        full = (1,) + specs[0].shape
        shape = tuple(1 if i in axes else s for i, s in enumerate(full)) if self.keepdims else \
            tuple(s for i, s in enumerate(full) if i not in axes)
        return Spec("float32", shape[1:])

    def __call__(self, x):
        if self.fn == "mean":
            return mean(x, self.axis, self.keepdims)
        return getattr(np, self.fn)(x, axis=self.axis, keepdims=self.keepdims)
