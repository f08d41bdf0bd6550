"""Packing float or int32 values into sign bits: plain, through a rearrangement, and through integer thresholds."""

from __future__ import annotations

import math

import numpy as np

from numbnn import kernels
from numbnn.inference.ops.base import (
    Op, Spec, build_op, const_array, expect, get_attr, int_attr, int_list, register_op,
)
from numbnn.kernels.threshold_packing import NO_SHUFFLE, gather_pack, gather_runs, pack_acc_below, pack_below


@register_op
class Pack(Op):
    """Signs of float32 x [..., C] as packed bits, bit = x < threshold[c] (0 if none), per group.

    A threshold folds a preceding per-channel add (ReActNet's RSign bias): x + b < 0 exactly
    when x < -b in floating point (a sum is 0 only if exactly 0, and rounding keeps the sign).
    """

    name = "pack"
    const_names = ("threshold",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.groups = int_attr(attrs, "groups", self.name, 1)
        self.threshold = const_array(consts, "threshold", self.name, np.float32, 1, optional=True)

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        shape = specs[0].shape
        expect(len(shape) >= 1, "pack: input needs a channel axis")
        channels = shape[-1]
        expect(channels % self.groups == 0, f"pack: {channels} channels not divisible by groups={self.groups}")
        if self.threshold is not None:
            expect(self.threshold.shape == (channels,), f"pack: threshold needs {channels} entries")
        return Spec("uint64", shape[:-1] + (self.groups * kernels.words_for(channels // self.groups),))

    def __call__(self, x):
        x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        if self.threshold is None and self.groups == 1:
            return kernels.pack_bits(x2).reshape(x.shape[:-1] + (-1,))
        threshold = self.threshold if self.threshold is not None else np.zeros(x.shape[-1], np.float32)
        packed = np.empty((x2.shape[0], self.groups * kernels.words_for(x.shape[-1] // self.groups)), np.uint64)
        pack_below(x2, threshold, self.groups, NO_SHUFFLE, packed)
        return packed.reshape(x.shape[:-1] + (-1,))


_NO_THRESHOLD = np.zeros(0, np.float32)


def output_pack(attrs: dict, consts: dict, op: str) -> Pack | None:
    """The :class:`Pack` an op applies to its own output (``pack_groups`` attribute, optional
    ``pack_threshold`` constant float32 [C], 0 if absent), or None if it has neither: an op that also
    writes its output's signs."""
    if "pack_groups" not in attrs and "pack_threshold" not in consts:
        return None
    return Pack({"groups": get_attr(attrs, "pack_groups", op)},
                {"threshold": const_array(consts, "pack_threshold", op, np.float32, 1, optional=True)})


def pack_buffers(pack: Pack | None, rows: int, channels: int):
    """(thresholds, groups, packed words [rows, W]) for a kernel that packs its output rows as it writes
    them; W = 0 (nothing to pack) when ``pack`` is None."""
    if pack is None:
        return _NO_THRESHOLD, 1, np.empty((rows, 0), np.uint64)
    threshold = pack.threshold if pack.threshold is not None else np.zeros(channels, np.float32)  # x < 0 is x - 0 < 0
    return threshold, pack.groups, np.empty((rows, pack.groups * kernels.words_for(channels // pack.groups)), np.uint64)


MOVEMENTS = ("reshape", "transpose", "slice", "pad", "concat")
MAX_GATHER_ELEMENTS = 1 << 24


def movement_index(source_shape, moves, where):
    """Run movement ops (``moves``: [{"op", "inputs", "attrs"}], move i writes value i + 1, value 0 is one
    image of ``source_shape``) on element numbers: int32 index map of the last value (element e is
    source.flat[index[e]], or the padding constant fill[-1 - index[e]]) and the float32 constants."""
    expect(isinstance(moves, list) and len(moves) >= 1, f"{where}: moves must be a non-empty list")
    specs = [Spec("float64", tuple(source_shape))]
    values = [np.arange(math.prod(source_shape), dtype=np.float64).reshape((1, *source_shape))]
    fill = []
    for move in moves:
        expect(isinstance(move, dict) and set(move) == {"op", "inputs", "attrs"} and move["op"] in MOVEMENTS
                and isinstance(move["attrs"], dict), f"{where}: bad move {move!r}")
        inputs = int_list(move["inputs"], where, "inputs")
        expect(len(inputs) >= 1 and all(0 <= v < len(values) for v in inputs), f"{where}: move reads a missing value")
        attrs = dict(move["attrs"])
        if move["op"] == "pad":
            fill.append(get_attr(attrs, "value", where))
            attrs["value"] = float(-len(fill))  # a sentinel no element number can equal
        op = build_op(move["op"], attrs, {})
        spec = op.output_spec([specs[v] for v in inputs])
        expect(math.prod(spec.shape) <= MAX_GATHER_ELEMENTS, f"{where}: a move makes too large a tensor")
        specs.append(spec)
        values.append(op(*[values[v] for v in inputs]))
    return values[-1][0].astype(np.int32), np.array(fill, np.float32)


def moved_rows(source_shape, moves, where) -> tuple[np.ndarray, int] | None:
    """(moved, dest_pixels) if ``moves`` carry whole runs of a ``source_shape`` [..., O] value's channels to
    other pixels: every pixel of the result (C' channels, C' dividing O) is the C' consecutive channels
    s*C' .. s*C' + C'-1 of one source pixel p, no padding constant, no run used twice (RB-Net's depth-to-space,
    its shift back and crop). moved int64 [source pixels * O/C'] is the result pixel run s of pixel p lands on
    (-1: dropped), dest_pixels the result's pixels per image (:func:`numbnn.kernels.binary_conv_driver.binary_conv`'s
    ``moved``); None otherwise."""
    index, _ = movement_index(tuple(source_shape), moves, where)
    channels, source_channels = index.shape[-1], source_shape[-1]
    if len(source_shape) < 2 or source_channels % channels:
        return None
    starts = index.reshape(-1, channels).astype(np.int64)
    runs = starts[:, :1] + np.arange(channels)
    first = starts[:, 0]
    if (starts != runs).any() or (first < 0).any() or (first % channels).any():
        return None
    segment = first // channels  # source pixel * O/C' + run
    if np.unique(segment).size != segment.size:
        return None
    moved = np.full(math.prod(source_shape) // channels, -1, np.int64)
    moved[segment] = np.arange(segment.size)
    return moved, segment.size


def quarter_packing(pack: "GatherPack") -> np.ndarray | None:
    """Where a ``gather_pack`` (one group) puts each 16-channel group of its source's pixels, if every aligned
    16-channel group of its packed layout is 16 consecutive source channels from a multiple of 16 (or 16
    padding constants), each source group used at most once: int64 [2 * source groups] of pairs (uint16
    quarter of an image's packed rows or -1, the group's first packed channel), for
    :func:`numbnn.kernels.binary_conv_driver.binary_conv`'s ``moved_packing``; None otherwise."""
    channels, source_channels = pack.shape[-1], pack.source_shape[-1]
    if pack.groups != 1 or channels % 16 or source_channels % 16:
        return None
    quarters = pack.index.reshape(-1, 16).astype(np.int64)
    first = quarters[:, 0]
    real = first >= 0
    consecutive = (quarters == first[:, None] + np.arange(16)).all(axis=1) & (first % 16 == 0)
    if not ((real & consecutive) | (quarters < 0).all(axis=1)).all():
        return None
    groups = first[real] // 16  # source pixel * C/16 + 16-channel group
    if np.unique(groups).size != groups.size:
        return None
    at = np.flatnonzero(real)  # packed row * (K/16) + the 16-channel group within the row
    per_row, words = channels // 16, kernels.words_for(channels)
    pairs = np.zeros((math.prod(pack.source_shape) // 16, 2), np.int64)
    pairs[:, 0] = -1
    pairs[groups, 0] = at // per_row * 4 * words + at % per_row
    pairs[groups, 1] = at % per_row * 16
    return pairs.reshape(-1)


def channel_shuffle_groups(source_shape, moves, where) -> int | None:
    """G if ``moves`` turn a ``source_shape`` [..., C] value into ShuffleNet's channel shuffle of it in G
    groups, every pixel alike (channel j*G + g of the result is channel g*(C/G) + j; the inverse shuffle in
    G groups is the shuffle in C/G), else None."""
    index, _ = movement_index(tuple(source_shape), moves, where)
    channels = source_shape[-1]
    if index.shape != tuple(source_shape):
        return None
    rows = index.reshape(-1, channels).astype(np.int64) - channels * np.arange(index.size // channels)[:, None]
    if (rows != rows[0]).any():
        return None
    for groups in range(1, channels + 1):
        if channels % groups == 0 and np.array_equal(rows[0], np.arange(channels).reshape(groups, -1).T.reshape(-1)):
            return groups
    return None


@register_op
class GatherPack(Op):
    """Signs of a rearrangement of float32 x (channel shuffle, space-to-depth, shifts, padding) as packed
    bits, without materialising the rearranged tensor; bit = value < threshold[c].

    ``moves`` describe the rearrangement as movement ops (reshape, transpose, slice, pad, concat) on
    value 0, one image of shape ``source_shape``; move i writes value i + 1 and the last one is packed.
    The constructor runs them once on the element numbers of an image to get the index map: value e of
    the result is x_image.flat[index[e]] + shift[its source channel], or the padding constant
    ``fill[-1 - index[e]]``. ``threshold`` [C] (of the result's channels) and ``shift`` [source channels]
    (a per-channel add before the moves, RB-Net's activation shift) are optional (0).
    """

    name = "gather_pack"
    const_names = ("threshold", "shift")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.groups = int_attr(attrs, "groups", self.name, 1)
        self.source_shape = tuple(int_list(get_attr(attrs, "source_shape", self.name), self.name, "source_shape"))
        expect(len(self.source_shape) >= 1 and min(self.source_shape) >= 1, "gather_pack: bad source_shape")
        self.index, self.fill = movement_index(self.source_shape, get_attr(attrs, "moves", self.name), self.name)
        self.shape = self.index.shape
        self.index = self.index.reshape(-1)
        threshold = const_array(consts, "threshold", self.name, np.float32, 1, optional=True)
        self.threshold = np.zeros(self.shape[-1], np.float32) if threshold is None else threshold
        expect(self.threshold.shape == (self.shape[-1],), "gather_pack: threshold needs one value per channel")
        shift = const_array(consts, "shift", self.name, np.float32, 1, optional=True)
        source_channels = self.source_shape[-1]
        expect(shift is None or shift.shape == (source_channels,), "gather_pack: shift needs one value per source channel")
        self.shift = np.zeros(0, np.float32) if shift is None else shift
        self.run, self.first_channel = gather_runs(self.index, self.shape[-1], source_channels)
        expect(self.shape[-1] % self.groups == 0, f"gather_pack: {self.shape[-1]} channels not divisible by groups")
        # a channel shuffle without a shift packs through pack_below's interleave instead of element by element
        # (FTBNN's stem output, which no fused conv writes: the node in 0.45x the time at batch 256, the packed
        # model's batch in 0.96x; probes alternating the two paths, Zen 4, 2026-12-08)
        self.shuffle = None
        if self.run == 1 and not self.shift.size and self.shape == self.source_shape:
            self.shuffle = channel_shuffle_groups(self.source_shape, get_attr(attrs, "moves", self.name), self.name)

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        expect(specs[0].shape == self.source_shape, f"gather_pack: input must be {self.source_shape}, got {specs[0].shape}")
        return Spec("uint64", self.shape[:-1] + (self.groups * kernels.words_for(self.shape[-1] // self.groups),))

    def __call__(self, x):
        n = x.shape[0]
        words = self.groups * kernels.words_for(self.shape[-1] // self.groups)
        packed = np.empty((n * (self.index.size // self.shape[-1]), words), np.uint64)
        if self.shuffle is not None:
            pack_below(np.ascontiguousarray(x).reshape(-1, self.shape[-1]), self.threshold, self.groups, self.shuffle,
                       packed)
            return packed.reshape((n,) + self.shape[:-1] + (words,))
        gather_pack(np.ascontiguousarray(x).reshape(n, -1), self.index, self.run, self.first_channel, self.shift,
                    self.fill, self.threshold, self.groups, packed)
        return packed.reshape((n,) + self.shape[:-1] + (words,))


@register_op
class PackAccumulator(Op):
    """Signs of a per-channel function of int32 accumulators as packed bits: (acc < threshold) XOR flip.

    The compiler derives threshold/flip by evaluating the float steps between a binary layer and the
    next sign on every possible accumulator value (see :mod:`numbnn.inference.fuse.packs`), so the bits equal
    the float model's signs exactly.
    """

    name = "pack_acc"
    const_names = ("threshold", "flip")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.groups = int_attr(attrs, "groups", self.name, 1)
        self.threshold = const_array(consts, "threshold", self.name, np.int32, 1)
        self.flip = const_array(consts, "flip", self.name, np.bool_, 1)

    def output_spec(self, specs):
        self._expect_inputs(specs, ["int32"])
        channels = specs[0].shape[-1]
        expect(self.threshold.shape == self.flip.shape == (channels,), f"pack_acc: thresholds need {channels} entries")
        expect(channels % self.groups == 0, f"pack_acc: {channels} channels not divisible by groups={self.groups}")
        return Spec("uint64", specs[0].shape[:-1] + (self.groups * kernels.words_for(channels // self.groups),))

    def __call__(self, acc):
        a2 = np.ascontiguousarray(acc).reshape(-1, acc.shape[-1])
        packed = np.empty((a2.shape[0], self.groups * kernels.words_for(acc.shape[-1] // self.groups)), np.uint64)
        pack_acc_below(a2, self.threshold, self.flip, self.groups, packed)
        return packed.reshape(acc.shape[:-1] + (-1,))


# -- binary layers -------------------------------------------------------------------------------------
