"""Binary layers on packed bits: convolution (alone or fused with the steps after it) and dense."""

from __future__ import annotations

import numpy as np

from numbnn import kernels
from numbnn.inference import _kernels
from numbnn.inference.ops.base import (
    WORD, Op, Spec, const_array, expect, get_attr, int_attr, out_size, pair_attr, register_op, words_for,
)
from numbnn.inference.ops.packing import output_pack, pack_buffers
from numbnn.inference.ops.steps import Elementwise
from numbnn.kernels.tiles import column_panels


@register_op
class BinaryConv(Op):
    """int32 [Ho, Wo, O] = XNOR-popcount convolution of packed NHWC signs with packed OHWI weights.

    Computed as packed im2col (one row of tap words per output pixel, zero words = +1 in the padding)
    times the weights with the register-tiled :func:`numbnn.kernels.binary_matmul`; a 1x1 convolution
    without padding or stride needs no im2col. Two adjustments keep the result exact:

    - binary_matmul counts all 64 bits of every word, so a tap's T = 64*W - C_g tail bits (0 in both
      operands, "agreeing") would add +T. Half of each weight tap's tail bits are set to 1 instead: they
      disagree with the activations' 0 tail bits, and the tails add T/2 - T/2 = 0 (even T; odd channel
      counts per group use :func:`numbnn.kernels.binary_conv2d`).
    - A padding tap holds +1 where ``pad_value`` p is due: border pixels get (p - 1) * wsum[o, tap] per
      padding tap, wsum the sum of the tap's +-1 weights (the same correction as the general kernel).
    """

    name = "bconv"
    const_names = ("weight",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        op = self.name
        self.in_channels = int_attr(attrs, "in_channels", op, 1)
        self.groups = int_attr(attrs, "groups", op, 1)
        self.stride = pair_attr(attrs, "stride", op, 1)
        self.padding = pair_attr(attrs, "padding", op, 0)
        self.dilation = pair_attr(attrs, "dilation", op, 1)
        self.pad_value = get_attr(attrs, "pad_value", op)
        expect(self.pad_value in (0, 1, -1) and not isinstance(self.pad_value, bool),
                f"bconv: pad_value must be 0, 1 or -1, got {self.pad_value!r}")
        self.weight = const_array(consts, "weight", op, np.uint64, 4)
        out_channels, kh, kw, words = self.weight.shape
        expect(self.in_channels % self.groups == 0 and out_channels % self.groups == 0,
                f"bconv: groups={self.groups} must divide in_channels={self.in_channels} and {out_channels} outputs")
        per_group = self.in_channels // self.groups
        expect(words == words_for(per_group), f"bconv: weight has {words} words per tap for {per_group} channels per group")
        self.pointwise = (kh, kw) == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0) and self.groups == 1
        tail = WORD * words - per_group
        self.general = tail % 2 == 1 and not self.pointwise  # odd tails: the general kernel
        if not self.general:
            balanced = self.weight.copy()
            balanced[..., -1] |= np.uint64((1 << (tail // 2)) - 1) << np.uint64(WORD - tail) if tail else np.uint64(0)
            self.matrices = balanced.reshape(self.groups, out_channels // self.groups, kh * kw * words)
        ones = np.bitwise_count(self.weight).sum(axis=3, dtype=np.int64)
        self.tap_sums = (per_group - 2 * ones).reshape(out_channels, kh * kw)  # wsum[o, tap]
        self._corrections = {}

    def output_spec(self, specs):
        self._expect_inputs(specs, ["uint64"])
        shape = specs[0].shape
        expect(len(shape) == 3, f"bconv: input must be [H, W, words], got {shape}")
        h, w, words = shape
        expect(words == self.groups * words_for(self.in_channels // self.groups),
                f"bconv: input has {words} words per pixel, {self.in_channels} channels in {self.groups} groups need more")
        ho, wo = self.output_size(h, w)
        expect(ho >= 1 and wo >= 1, f"bconv: input {h}x{w} too small for the kernel")
        return Spec("int32", (ho, wo, self.weight.shape[0]))

    def output_size(self, h, w):
        kh, kw = self.weight.shape[1:3]
        return (out_size(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
                out_size(w, kw, self.stride[1], self.padding[1], self.dilation[1]))

    def __call__(self, x):
        n, h, w, _ = x.shape
        out_channels, kh, kw, words = self.weight.shape
        if self.pointwise:  # a 1x1 convolution is one product of the pixel rows with the weights
            acc = kernels.binary_matmul(x.reshape(-1, words), self.weight.reshape(out_channels, words), self.in_channels)
            return acc.reshape(n, h, w, -1)
        if self.general:
            return kernels.binary_conv2d(x, self.weight, self.in_channels, stride=self.stride, padding=self.padding,
                                         dilation=self.dilation, pad_value=self.pad_value, groups=self.groups)
        ho, wo = self.output_size(h, w)
        cols = np.empty((n * ho * wo, kh * kw * words), np.uint64)
        per_group = out_channels // self.groups
        acc = None
        for g in range(self.groups):
            _kernels.packed_im2col(x, g * words, words, kh, kw, *self.stride, *self.padding, *self.dilation, ho, wo, cols)
            part = kernels.binary_matmul(cols, self.matrices[g], WORD * kh * kw * words)
            if self.groups == 1:
                acc = part
            else:
                acc = np.empty((n * ho * wo, out_channels), np.int32) if acc is None else acc
                acc[:, g * per_group:(g + 1) * per_group] = part
        acc = acc.reshape(n, ho * wo, out_channels)
        if self.pad_value != 1 and self.padding != (0, 0):
            pixels, correction = self._border_correction(h, w)
            _kernels.add_border_correction(acc, pixels, correction)
        return acc.reshape(n, ho, wo, out_channels)

    def border_rows(self, h, w):
        """int64 [Ho*Wo]: each output pixel's row in the border correction table, -1 if it has no padding tap."""
        pixels, correction = self._border_correction(h, w)
        rows = np.full(np.prod(self.output_size(h, w)), -1, np.int64)
        rows[pixels] = np.arange(len(pixels))
        return rows, correction

    def _border_correction(self, h, w):
        """(border pixel indices, int32 [pixels, O]): (pad_value - 1) * the wsum of each padding tap."""
        if (h, w) not in self._corrections:
            kh, kw = self.weight.shape[1:3]
            ho, wo = self.output_size(h, w)
            oy, ox, i, j = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
            iy = oy * self.stride[0] - self.padding[0] + i * self.dilation[0]
            ix = ox * self.stride[1] - self.padding[1] + j * self.dilation[1]
            padded = ((iy < 0) | (iy >= h) | (ix < 0) | (ix >= w)).reshape(ho * wo, kh * kw)
            pixels = np.flatnonzero(padded.any(axis=1))
            correction = (self.pad_value - 1) * (padded[pixels].astype(np.int64) @ self.tap_sums.T)
            self._corrections[(h, w)] = (pixels.astype(np.int64), correction.astype(np.int32))
        return self._corrections[(h, w)]


@register_op
class BinaryConvSteps(Op):
    """float32 [Ho, Wo, O]: a ``bconv`` followed by an ``elementwise`` node, fused so that the int32
    results stay in the cache (see :func:`numbnn.inference._kernels.conv_steps`). Attributes and
    constants are those of the two nodes (``stages``/``params`` of the steps); inputs: the packed
    activations, then the steps' second input if they read one. Even weight tails only.

    With a ``pack_groups`` attribute and a ``pack_threshold`` constant (float32 [O]) the node writes a
    second value: the output's signs packed as a ``pack`` node would (bit = y < pack_threshold[c], per
    group), computed block by block while the float rows are in the cache. ReActNet's next RSign reads
    the block's output that the next residual add reads too; one pass writes both.
    """

    name = "bconv_steps"
    arity = None
    const_names = ("weight", "params", "pack_threshold")
    _OWN_ATTRS = ("stages", "pack_groups")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.conv = BinaryConv({k: v for k, v in attrs.items() if k not in self._OWN_ATTRS}, {"weight": consts.get("weight")})
        self.steps = Elementwise({"stages": get_attr(attrs, "stages", self.name)}, {"params": consts.get("params")})
        self.pack = output_pack(attrs, consts, self.name)
        expect(not self.conv.general, "bconv_steps: needs even weight tails")
        out_channels, kh, kw, words = self.conv.weight.shape
        per_group = self.conv.in_channels // self.conv.groups
        taps = kh * kw
        self.tap_bits = per_group if taps > 1 and per_group < WORD and WORD % per_group == 0 and taps * per_group % 2 == 0 else 0
        matrices = self._dense_matrices(taps, per_group) if self.tap_bits else self.conv.matrices
        self.panels = np.stack([column_panels(np.ascontiguousarray(m)) for m in matrices])
        self.k = WORD * matrices.shape[2]
        self._geometry = {}

    def _dense_matrices(self, taps, per_group):
        """[groups, O/groups, words] weights with 64 / per_group taps per word, tails balanced (see BinaryConv)."""
        out_channels = self.conv.weight.shape[0]
        per_word = WORD // per_group
        words = -(-taps // per_word)
        taps_words = self.conv.weight.reshape(out_channels, taps)
        dense = np.zeros((out_channels, words), np.uint64)
        for tap in range(taps):
            dense[:, tap // per_word] |= taps_words[:, tap] << np.uint64(per_group * (tap % per_word))
        tail = WORD * words - taps * per_group
        if tail:
            dense[:, -1] |= np.uint64((1 << (tail // 2)) - 1) << np.uint64(WORD - tail)
        return dense.reshape(self.conv.groups, out_channels // self.conv.groups, words)

    def output_spec(self, specs):
        expect(len(specs) >= 1, "bconv_steps: needs the packed input")
        acc = self.conv.output_spec(specs[:1])
        return self.steps.output_spec([acc, *specs[1:]])

    def output_specs(self, specs):
        out = self.output_spec(specs)
        return [out] if self.pack is None else [out, self.pack.output_spec([out])]

    def __call__(self, x, other=None):
        n, h, w, _ = x.shape
        out_channels, kh, kw, _ = self.conv.weight.shape
        ho, wo = self.conv.output_size(h, w)
        if (h, w) not in self._geometry:
            if self.conv.pad_value != 1 and self.conv.padding != (0, 0):
                self._geometry[(h, w)] = self.conv.border_rows(h, w)
            else:
                self._geometry[(h, w)] = (np.full(ho * wo, -1, np.int64), np.zeros((1, out_channels), np.int32))
        border_rows, correction = self._geometry[(h, w)]
        out = np.empty((n * ho * wo, out_channels), np.float32)
        other2, div = self.steps.other_rows(other, out.shape[0])
        threshold, groups, packed = pack_buffers(self.pack, out.shape[0], out_channels)
        _kernels.conv_steps(x, kh, kw, *self.conv.stride, *self.conv.padding, *self.conv.dilation, ho, wo,
                            self.tap_bits, self.panels, self.k, border_rows, correction, self.steps.codes, self.steps.first_rows,
                            self.steps.channel_params(out_channels), other2, div, out, threshold, groups, packed)
        out = out.reshape(n, ho, wo, out_channels)
        return out if self.pack is None else (out, packed.reshape(n, ho, wo, -1))


@register_op
class BinaryDense(Op):
    """int32 [..., O] = XNOR-popcount product of packed rows [..., words] with packed weights [O, words]."""

    name = "bdense"
    const_names = ("weight",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.in_features = int_attr(attrs, "in_features", self.name, 1)
        self.weight = const_array(consts, "weight", self.name, np.uint64, 2)
        expect(self.weight.shape[1] == words_for(self.in_features), "bdense: weight words do not match in_features")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["uint64"])
        expect(len(specs[0].shape) >= 1 and specs[0].shape[-1] == self.weight.shape[1],
                f"bdense: input must end in {self.weight.shape[1]} words, got {specs[0].shape}")
        return Spec("int32", specs[0].shape[:-1] + (self.weight.shape[0],))

    def __call__(self, x):
        acc = kernels.binary_matmul(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), self.weight, self.in_features)
        return acc.reshape(x.shape[:-1] + (-1,))
