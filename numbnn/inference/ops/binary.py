"""Binary layers on packed bits: convolution (alone or fused with the steps after it) and dense."""

from __future__ import annotations

import numpy as np

from numbnn import kernels
from numbnn.inference.ops.base import Op, Spec, const_array, expect, get_attr, int_attr, int_list, pair_attr, register_op
from numbnn.inference.ops.packing import (
    GatherPack, channel_shuffle_groups, moved_rows, output_pack, pack_buffers, quarter_packing,
)
from numbnn.inference.ops.steps import Elementwise
from numbnn.kernels import binary_conv_driver as driver
from numbnn.kernels.padding import border_corrections, tap_weight_sums



@register_op
class BinaryConv(Op):
    """int32 [Ho, Wo, O] = XNOR-popcount convolution of packed NHWC signs with packed OHWI weights.

    Runs :func:`numbnn.kernels.binary_conv_driver.binary_conv_int32` (the driver's INT32 transform): receptive
    fields of zero-word (+1) padding taps times the weights' column panels, then (pad_value - 1) *
    wsum[o, tap] per padding tap of each border pixel (:mod:`numbnn.kernels.padding`), wsum the sum
    of the tap's +-1 weights. The weights' layout (dense taps for few channels) is
    :func:`numbnn.kernels.binary_conv_driver.weight_panels`'s.
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
        out_channels, _, _, words = self.weight.shape
        expect(self.in_channels % self.groups == 0 and out_channels % self.groups == 0,
                f"bconv: groups={self.groups} must divide in_channels={self.in_channels} and {out_channels} outputs")
        per_group = self.in_channels // self.groups
        expect(words == kernels.words_for(per_group), f"bconv: weight has {words} words per tap for {per_group} channels per group")
        self.tap_bits, self.panels, self.k = driver.weight_panels(self.weight, per_group, self.groups)
        self.tap_sums = tap_weight_sums(self.weight, per_group)  # wsum[o, tap]
        self._corrections = {}
        self._sizes = {}

    def output_spec(self, specs):
        self._expect_inputs(specs, ["uint64"])
        shape = specs[0].shape
        expect(len(shape) == 3, f"bconv: input must be [H, W, words], got {shape}")
        h, w, words = shape
        expect(words == self.groups * kernels.words_for(self.in_channels // self.groups),
                f"bconv: input has {words} words per pixel, {self.in_channels} channels in {self.groups} groups need more")
        ho, wo = self.output_size(h, w)
        expect(ho >= 1 and wo >= 1, f"bconv: input {h}x{w} too small for the kernel")
        return Spec("int32", (ho, wo, self.weight.shape[0]))

    def output_size(self, h, w):
        """(ho, wo) for an h x w input (cached: at batch 1 a conv's Python work is a share of its time)."""
        size = self._sizes.get((h, w))
        if size is None:
            kh, kw = self.weight.shape[1:3]
            size = self._sizes[(h, w)] = (
                kernels.conv_output_size(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
                kernels.conv_output_size(w, kw, self.stride[1], self.padding[1], self.dilation[1]))
        return size

    def geometry(self, h, w):
        """((kh, kw, sh, sw, ph, pw, dh, dw, ho, wo), border_row, correction) for an h x w input (cached)."""
        if (h, w) not in self._corrections:
            kh, kw = self.weight.shape[1:3]
            geometry = (kh, kw, *self.stride, *self.padding, *self.dilation, *self.output_size(h, w))
            self._corrections[(h, w)] = (geometry, *border_corrections(h, w, *geometry, self.tap_sums, self.pad_value))
        return self._corrections[(h, w)]

    def run(self, x, transform, acc_out, steps, other, div, out, pack_threshold, pack_shuffle, pack_groups, packed,
            pooled, moves=driver.NO_MOVES):
        """The driver on packed x [N, H, W, words] with ``transform`` (see binary_conv_driver)."""
        geometry, border_row, correction = self.geometry(x.shape[1], x.shape[2])
        driver.binary_conv(np.ascontiguousarray(x), geometry, self.tap_bits, self.panels, self.k, border_row, correction,
                           transform, acc_out, *steps, other, div, out, pack_threshold, pack_shuffle, pack_groups, packed,
                           pooled, *moves)

    def __call__(self, x):
        n, h, w, _ = x.shape
        ho, wo = self.output_size(h, w)
        out_channels = self.weight.shape[0]
        acc = np.empty((n * ho * wo, out_channels), np.int32)
        geometry, border_row, correction = self.geometry(h, w)
        driver.binary_conv_int32(np.ascontiguousarray(x), geometry, self.tap_bits, self.panels, self.k, border_row, correction, acc)
        return acc.reshape(n, ho, wo, out_channels)


@register_op
class BinaryConvSteps(Op):
    """float32 [Ho, Wo, O]: a ``bconv`` followed by an ``elementwise`` node, fused so that the int32
    results stay in the cache (the driver's STEPS transform). Attributes and constants are those of the
    two nodes (``stages``/``params`` of the steps); inputs: the packed activations, then the steps'
    second input if they read one.

    With a ``pack_groups`` attribute (and an optional ``pack_threshold`` constant, float32 [O], else 0) the
    node writes a second value: the output's signs packed as a ``pack`` node would (bit = y < pack_threshold[c], per
    group), computed block by block while the float rows are in the cache. ReActNet's next RSign reads
    the block's output that the next residual add reads too; one pass writes both. With ``pack_moves``
    (and ``pack_source_shape``), movement ops that make a channel shuffle in G groups, the packed
    channels are shuffled so, as a ``gather_pack`` of the shuffle would pack them (FTBNN's next binary
    conv reads its input shuffled): channel j*G + g of the packed output is y's channel g*(C/G) + j.

    With ``pool_size`` 2 the node also writes (last) the 2x2 average pool of y (stride 2, "same": windows
    from pixel 0, an odd edge's windows one pixel wide), as an ``avg_pool`` node would, computed block by
    block while y's rows are in the cache (ReActNet's and bnn-small's downsampling shortcuts read only
    that, so y itself is not written when no node reads it: :meth:`drop_outputs`).
    """

    name = "bconv_steps"
    arity = None
    const_names = ("weight", "params", "pack_threshold")
    _OWN_ATTRS = ("stages", "pack_groups", "pack_moves", "pack_source_shape", "pool_size")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.conv = BinaryConv({k: v for k, v in attrs.items() if k not in self._OWN_ATTRS}, {"weight": consts.get("weight")})
        self.steps = Elementwise({"stages": get_attr(attrs, "stages", self.name)}, {"params": consts.get("params")})
        self.pack = output_pack(attrs, consts, self.name)
        self.pack_shuffle, self.pack_source_shape = driver.NO_SHUFFLE, None
        if "pack_moves" in attrs:  # the packed output's channels permuted (see the class docstring)
            expect(self.pack is not None, "bconv_steps: pack_moves needs a packed output (pack_groups)")
            self.pack_source_shape = tuple(int_list(get_attr(attrs, "pack_source_shape", self.name), self.name,
                                                    "pack_source_shape"))
            expect(len(self.pack_source_shape) == 3 and min(self.pack_source_shape) >= 1, "bconv_steps: bad pack_source_shape")
            groups = channel_shuffle_groups(self.pack_source_shape, get_attr(attrs, "pack_moves", self.name), self.name)
            expect(groups is not None, "bconv_steps: pack_moves must be a channel shuffle")
            self.pack_shuffle = groups
        self.pooled = "pool_size" in attrs
        expect(not self.pooled or attrs["pool_size"] == 2, "bconv_steps: pool_size must be 2 (2x2 windows, stride 2)")
        self.write_map = True

    def drop_outputs(self, unread):
        """The float map (output 0) is not written when no node reads it and a packed or pooled output does:
        each block's rows then stay in the driver's scratch (a downsampling shortcut reads only the pool)."""
        self.write_map = 0 not in unread or (self.pack is None and not self.pooled)

    def output_spec(self, specs):
        expect(len(specs) >= 1, "bconv_steps: needs the packed input")
        acc = self.conv.output_spec(specs[:1])
        return self.steps.output_spec([acc, *specs[1:]])

    def output_specs(self, specs):
        out = self.output_spec(specs)
        expect(self.pack_source_shape in (None, out.shape),
               f"bconv_steps: pack_moves are for a {self.pack_source_shape} output, the conv writes {out.shape}")
        specs = [out] if self.pack is None else [out, self.pack.output_spec([out])]
        if self.pooled:
            ho, wo, channels = out.shape
            expect(2 * wo <= driver.CONV_BLOCK, f"bconv_steps: pooling needs rows of at most {driver.CONV_BLOCK // 2} pixels")
            specs.append(Spec("float32", ((ho + 1) // 2, (wo + 1) // 2, channels)))
        return specs

    def __call__(self, x, other=None):
        n, h, w, _ = x.shape
        out_channels = self.conv.weight.shape[0]
        ho, wo = self.conv.output_size(h, w)
        rows = n * ho * wo
        out = np.empty((rows if self.write_map else 0, out_channels), np.float32)  # no rows: not kept (driver)
        other2, div = self.steps.other_rows(other, rows)
        threshold, groups, packed = pack_buffers(self.pack, rows, out_channels)
        steps = (self.steps.codes, self.steps.first_rows, self.steps.channel_params(out_channels))
        hp, wp = (ho + 1) // 2, (wo + 1) // 2
        pooled = np.empty((n * hp * wp if self.pooled else 0, out_channels), np.float32)
        self.conv.run(x, driver.STEPS, np.empty((0, 0), np.int32), steps, other2, div, out, threshold, self.pack_shuffle,
                      groups, packed, pooled)
        results = [out.reshape(n, ho, wo, out_channels) if self.write_map else None]
        if self.pack is not None:
            results.append(packed.reshape(n, ho, wo, -1))
        if self.pooled:
            results.append(pooled.reshape(n, hp, wp, out_channels))
        return results[0] if len(results) == 1 else tuple(results)


MOVED_UNIT_STAGES = ["affine", "add_input", "dprelu"]  # after RB-Net's move: batch norm, residual, RPReLU


def packs_moved_output(stages, moved_stages, width) -> bool:
    """Whether a ``bconv_moved_steps`` node with these steps and C' = ``width`` can also pack its output: RB-Net's
    unit (scale and centring, then batch norm, residual and RPReLU), whose driver epilogue packs 16 lanes at a time."""
    return list(stages) == ["mul", "add"] and list(moved_stages) == MOVED_UNIT_STAGES and width % 16 == 0


@register_op
class BinaryConvMovedSteps(Op):
    """float32: a ``bconv_steps`` node whose output only an ``elementwise`` node reads, through movement ops
    that carry whole runs of its channels to other pixels (:func:`~numbnn.inference.ops.packing.moved_rows`),
    fused: RB-Net's reshaped point-wise conv (Liu et al., IEEE TCSVT 32(9):6414-6424, 2022) with its scale and centring,
    then the depth-to-space (with the shift back and crop) and the unit's batch norm, residual and RPReLU.

    Attributes: the conv's, ``stages`` (the steps before the move), ``source_shape``/``moves`` (as the
    ``elementwise`` node read them), ``moved_stages`` (the steps after the move, which read the second input,
    the residual, in the moved layout); constants ``weight``, ``params``, ``moved_params``. Inputs: the packed
    activations and the residual. The steps after the move run before it, on the conv's rows, their parameters
    repeated for each of a row's O / C' runs and the residual gathered at each run's destination; the rows then
    go to their destinations (the driver's ``moved``). Same float32 operations per element, same bits, and the
    unmoved map is never written.

    With ``pack_moves`` (and ``pack_source_shape``, constants ``pack_threshold``/``pack_shift``) the node also
    writes, second, what a ``gather_pack`` of those attributes would make of its output (the next unit's
    shifted space-to-depth and signs; :func:`~numbnn.inference.ops.packing.quarter_packing`): 16 signs at a
    time from the values in the registers, the padding's bits copied from a template. Only RB-Net's unit
    ([mul, add, affine, add_input, dprelu]) with C' a multiple of 16 packs so.
    """

    name = "bconv_moved_steps"
    arity = 2
    const_names = ("weight", "params", "moved_params", "pack_threshold", "pack_shift")
    _OWN_ATTRS = ("stages", "moved_stages", "moves", "source_shape", "pack_moves", "pack_source_shape")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        op = self.name
        self.conv = BinaryConv({k: v for k, v in attrs.items() if k not in self._OWN_ATTRS}, {"weight": consts.get("weight")})
        self.before = Elementwise({"stages": get_attr(attrs, "stages", op)}, {"params": consts.get("params")})
        self.after = Elementwise({"stages": get_attr(attrs, "moved_stages", op), "moves": get_attr(attrs, "moves", op),
                                  "source_shape": get_attr(attrs, "source_shape", op)}, {"params": consts.get("moved_params")})
        expect(not self.before.uses_other and self.after.uses_other and not self.after.fixed_width,
               f"{op}: only the steps after the move read the second input, as a plain residual")
        rows = moved_rows(self.after.source_shape, attrs["moves"], op)
        expect(rows is not None, f"{op}: the moves must carry whole runs of channels to other pixels")
        self.moved = rows
        out_channels, width = self.after.source_shape[-1], self.after.moves.shape[-1]
        before = self.before.channel_params(out_channels)
        self.codes = np.concatenate([self.before.codes, self.after.codes])
        self.first_rows = np.concatenate([self.before.first_rows, self.after.first_rows + len(before)])
        self.params = np.ascontiguousarray(np.vstack([before, np.tile(self.after.channel_params(width),
                                                                      (1, out_channels // width))]), np.float32)
        self.pack = None
        if "pack_moves" in attrs:  # the next gather_pack, done here (class docstring)
            self.pack = GatherPack({"groups": 1, "source_shape": get_attr(attrs, "pack_source_shape", op),
                                    "moves": attrs["pack_moves"]},
                                   {"threshold": consts.get("pack_threshold"), "shift": consts.get("pack_shift")})
            self.packing = quarter_packing(self.pack)
            expect(self.packing is not None and self.pack.source_shape == self.after.moves.shape,
                   f"{op}: pack_moves must carry whole 16-channel groups of the output to the packed layout")
            expect(packs_moved_output(self.before.stages, self.after.stages, width),
                   f"{op}: only RB-Net's unit with a multiple of 16 channels packs its output")
            shifts = self.pack.shift if self.pack.shift.size else np.zeros(width, np.float32)
            self.pack_shift = np.ascontiguousarray(shifts, np.float32)
            self.pack_template = self.pack(np.zeros((1, *self.pack.source_shape), np.float32))[0]  # the padding's bits

    def output_spec(self, specs):
        expect(len(specs) == 2, f"{self.name}: needs the packed input and the residual")
        acc = self.conv.output_spec(specs[:1])
        expect(acc.shape == self.after.source_shape, f"{self.name}: the conv writes {acc.shape}, the moves read "
               f"{self.after.source_shape}")
        out = self.after.output_spec([self.before.output_spec([acc]), specs[1]])
        expect(specs[1].shape == out.shape, f"{self.name}: the residual must be {out.shape}, got {specs[1].shape}")
        return out

    def output_specs(self, specs):
        out = self.output_spec(specs)
        return [out] if self.pack is None else [out, self.pack.output_spec([out])]

    def __call__(self, x, other):
        n = x.shape[0]
        moved, dest_pixels = self.moved
        shape = self.after.moves.shape
        out = np.empty((n * dest_pixels, shape[-1]), np.float32)
        other2 = np.ascontiguousarray(other, dtype=np.float32).reshape(out.shape)
        no_pool = np.empty((0, shape[-1]), np.float32)
        steps = (self.codes, self.first_rows, self.params)
        if self.pack is None:
            threshold, groups, packed = pack_buffers(None, 0, shape[-1])
            self.conv.run(x, driver.STEPS, np.empty((0, 0), np.int32), steps, other2, 1, out, threshold, driver.NO_SHUFFLE,
                          groups, packed, no_pool, (moved, dest_pixels, *driver.NO_MOVES[2:]))
            return out.reshape(n, *shape)
        packed = np.empty((n, *self.pack_template.shape), np.uint64)
        packed[...] = self.pack_template  # the padding's bits; the kernel writes every other quarter
        self.conv.run(x, driver.STEPS, np.empty((0, 0), np.int32), steps, other2, 1, out, self.pack.threshold,
                      driver.NO_SHUFFLE, 1, packed.reshape(-1, packed.shape[-1]), no_pool,
                      (moved, dest_pixels, self.packing, self.pack_shift))
        return out.reshape(n, *shape), packed


@register_op
class BinaryDense(Op):
    """int32 [..., O] = XNOR-popcount product of packed rows [..., words] with packed weights [O, words]."""

    name = "bdense"
    const_names = ("weight",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.in_features = int_attr(attrs, "in_features", self.name, 1)
        self.weight = const_array(consts, "weight", self.name, np.uint64, 2)
        expect(self.weight.shape[1] == kernels.words_for(self.in_features), "bdense: weight words do not match in_features")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["uint64"])
        expect(len(specs[0].shape) >= 1 and specs[0].shape[-1] == self.weight.shape[1],
                f"bdense: input must end in {self.weight.shape[1]} words, got {specs[0].shape}")
        return Spec("int32", specs[0].shape[:-1] + (self.weight.shape[0],))

    def __call__(self, x):
        acc = kernels.binary_matmul(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), self.weight, self.in_features)
        return acc.reshape(x.shape[:-1] + (-1,))
