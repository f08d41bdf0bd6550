"""The ops a packed model runs: numpy and Numba only (no autograd), each checking its own description.

A graph node is ``(op name, attrs, consts)``: JSON-able attributes plus named constant arrays. An op
class parses and validates them in its constructor (raising :class:`GraphError`, which a file loader
reports as a bad file), states its output from its inputs' :class:`Spec` (dtype and per-image shape:
every value carries the batch on axis 0), and runs on numpy arrays.

Float ops repeat the float model's float32 arithmetic step by step (same operations, same order, same
dtypes), so a packed model reproduces the float simulation's values, not just approximately: the
binary layers are exact integers in both, and every float step is the same IEEE operation.

Value kinds: float32 activations; int32 accumulators of binary layers (exact +-1 dot products);
uint64 packed signs (bit 1 = negative, channels packed along the last axis, per group word-aligned).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from numbnn import kernels
from numbnn.errors import CheckpointError
from numbnn.inference import _kernels
from numbnn.kernels.tiles import column_panels

WORD = 64


class GraphError(CheckpointError):
    """An inference graph (or one of its nodes) is malformed or inconsistent."""


class Spec(NamedTuple):
    """What a value is: numpy dtype name and shape of one image's slice (the batch axis excluded)."""

    dtype: str
    shape: tuple


# -- attribute checks ----------------------------------------------------------------------------------


def _get(attrs: dict, key: str, op: str, default=...):
    if key not in attrs:
        if default is ...:
            raise GraphError(f"{op}: missing attribute {key!r}")
        return default
    return attrs[key]


def _int(attrs, key, op, minimum=0, default=...):
    value = _get(attrs, key, op, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GraphError(f"{op}: attribute {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _pair(attrs, key, op, minimum=0):
    value = _get(attrs, key, op)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value)):
        raise GraphError(f"{op}: attribute {key!r} must be two integers >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def _int_list(value, op, key):
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise GraphError(f"{op}: attribute {key!r} must be a list of integers, got {value!r}")
    return [int(v) for v in value]


def _const(consts: dict, name: str, op: str, dtype, ndim: int | None = None, optional: bool = False):
    array = consts.get(name)
    if array is None:
        if optional:
            return None
        raise GraphError(f"{op}: missing constant {name!r}")
    if array.dtype != np.dtype(dtype):
        raise GraphError(f"{op}: constant {name!r} must be {np.dtype(dtype).name}, got {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise GraphError(f"{op}: constant {name!r} must have rank {ndim}, got shape {array.shape}")
    return np.ascontiguousarray(array)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise GraphError(message)


def _words(bits: int) -> int:
    return (bits + WORD - 1) // WORD


def _out_size(size, k, stride, pad, dilation):
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


class Op:
    """Base class: ``arity`` inputs (None: one or more), parsed ``attrs``/``consts``."""

    name = ""
    arity: int | None = 1
    const_names: tuple = ()

    def __init__(self, attrs: dict, consts: dict):
        unknown = set(consts) - set(self.const_names)
        if unknown:
            raise GraphError(f"{self.name}: unexpected constant(s) {sorted(unknown)}")

    def output_spec(self, specs: list) -> Spec:
        raise NotImplementedError

    def __call__(self, *xs):
        raise NotImplementedError

    def _expect_inputs(self, specs, dtypes):
        for i, (spec, dtype) in enumerate(zip(specs, dtypes)):
            if dtype is not None and spec.dtype != dtype:
                raise GraphError(f"{self.name}: input {i} must be {dtype}, got {spec.dtype}")


# -- packing -------------------------------------------------------------------------------------------


class Pack(Op):
    """Signs of float32 x [..., C] as packed bits, bit = x < threshold[c] (0 if none), per group.

    A threshold folds a preceding per-channel add (ReActNet's RSign / LearnableBias): x + b < 0 exactly
    when x < -b in floating point (a sum is 0 only if exactly 0, and rounding keeps the sign).
    """

    name = "pack"
    const_names = ("threshold",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.groups = _int(attrs, "groups", self.name, 1)
        self.threshold = _const(consts, "threshold", self.name, np.float32, 1, optional=True)

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        shape = specs[0].shape
        _expect(len(shape) >= 1, "pack: input needs a channel axis")
        channels = shape[-1]
        _expect(channels % self.groups == 0, f"pack: {channels} channels not divisible by groups={self.groups}")
        if self.threshold is not None:
            _expect(self.threshold.shape == (channels,), f"pack: threshold needs {channels} entries")
        return Spec("uint64", shape[:-1] + (self.groups * _words(channels // self.groups),))

    def __call__(self, x):
        x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        if self.threshold is None and self.groups == 1:
            return kernels.pack_bits(x2).reshape(x.shape[:-1] + (-1,))
        threshold = self.threshold if self.threshold is not None else np.zeros(x.shape[-1], np.float32)
        packed = np.empty((x2.shape[0], self.groups * _words(x.shape[-1] // self.groups)), np.uint64)
        _kernels.pack_below(x2, threshold, self.groups, packed)
        return packed.reshape(x.shape[:-1] + (-1,))


MOVEMENTS = ("reshape", "transpose", "slice", "pad", "concat")
MAX_GATHER_ELEMENTS = 1 << 24


def movement_index(source_shape, moves, where):
    """Run movement ops (``moves``: [{"op", "inputs", "attrs"}], move i writes value i + 1, value 0 is one
    image of ``source_shape``) on element numbers: int32 index map of the last value (element e is
    source.flat[index[e]], or the padding constant fill[-1 - index[e]]) and the float32 constants."""
    _expect(isinstance(moves, list) and len(moves) >= 1, f"{where}: moves must be a non-empty list")
    specs = [Spec("float64", tuple(source_shape))]
    values = [np.arange(math.prod(source_shape), dtype=np.float64).reshape((1, *source_shape))]
    fill = []
    for move in moves:
        _expect(isinstance(move, dict) and set(move) == {"op", "inputs", "attrs"} and move["op"] in MOVEMENTS
                and isinstance(move["attrs"], dict), f"{where}: bad move {move!r}")
        inputs = _int_list(move["inputs"], where, "inputs")
        _expect(len(inputs) >= 1 and all(0 <= v < len(values) for v in inputs), f"{where}: move reads a missing value")
        attrs = dict(move["attrs"])
        if move["op"] == "pad":
            fill.append(_get(attrs, "value", where))
            attrs["value"] = float(-len(fill))  # a sentinel no element number can equal
        op = build_op(move["op"], attrs, {})
        spec = op.output_spec([specs[v] for v in inputs])
        _expect(math.prod(spec.shape) <= MAX_GATHER_ELEMENTS, f"{where}: a move makes too large a tensor")
        specs.append(spec)
        values.append(op(*[values[v] for v in inputs]))
    return values[-1][0].astype(np.int32), np.array(fill, np.float32)


class GatherPack(Op):
    """Signs of a rearrangement of float32 x (channel shuffle, space-to-depth, shifts, padding) as packed
    bits, without materialising the rearranged tensor; bit = value < threshold[c].

    ``moves`` describe the rearrangement as movement ops (reshape, transpose, slice, pad, concat) on
    value 0, one image of shape ``source_shape``; move i writes value i + 1 and the last one is packed.
    The constructor runs them once on the element numbers of an image to get the index map: value e of
    the result is x_image.flat[index[e]], or the padding constant ``fill[-1 - index[e]]``. ``threshold``
    is optional (0).
    """

    name = "gather_pack"
    const_names = ("threshold",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.groups = _int(attrs, "groups", self.name, 1)
        self.source_shape = tuple(_int_list(_get(attrs, "source_shape", self.name), self.name, "source_shape"))
        _expect(len(self.source_shape) >= 1 and min(self.source_shape) >= 1, "gather_pack: bad source_shape")
        self.index, self.fill = movement_index(self.source_shape, _get(attrs, "moves", self.name), self.name)
        self.shape = self.index.shape
        self.index = self.index.reshape(-1)
        threshold = _const(consts, "threshold", self.name, np.float32, 1, optional=True)
        self.threshold = np.zeros(self.shape[-1], np.float32) if threshold is None else threshold
        _expect(self.threshold.shape == (self.shape[-1],), "gather_pack: threshold needs one value per channel")
        _expect(self.shape[-1] % self.groups == 0, f"gather_pack: {self.shape[-1]} channels not divisible by groups")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        _expect(specs[0].shape == self.source_shape, f"gather_pack: input must be {self.source_shape}, got {specs[0].shape}")
        return Spec("uint64", self.shape[:-1] + (self.groups * _words(self.shape[-1] // self.groups),))

    def __call__(self, x):
        n = x.shape[0]
        words = self.groups * _words(self.shape[-1] // self.groups)
        packed = np.empty((n * (self.index.size // self.shape[-1]), words), np.uint64)
        _kernels.gather_pack(np.ascontiguousarray(x).reshape(n, -1), self.index, self.fill, self.threshold,
                             self.groups, packed)
        return packed.reshape((n,) + self.shape[:-1] + (words,))


class PackAccumulator(Op):
    """Signs of a per-channel function of int32 accumulators as packed bits: (acc < threshold) XOR flip.

    The compiler derives threshold/flip by evaluating the float steps between a binary layer and the
    next sign on every possible accumulator value (see :mod:`numbnn.inference.fuse`), so the bits equal
    the float model's signs exactly.
    """

    name = "pack_acc"
    const_names = ("threshold", "flip")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.groups = _int(attrs, "groups", self.name, 1)
        self.threshold = _const(consts, "threshold", self.name, np.int32, 1)
        self.flip = _const(consts, "flip", self.name, np.bool_, 1)

    def output_spec(self, specs):
        self._expect_inputs(specs, ["int32"])
        channels = specs[0].shape[-1]
        _expect(self.threshold.shape == self.flip.shape == (channels,), f"pack_acc: thresholds need {channels} entries")
        _expect(channels % self.groups == 0, f"pack_acc: {channels} channels not divisible by groups={self.groups}")
        return Spec("uint64", specs[0].shape[:-1] + (self.groups * _words(channels // self.groups),))

    def __call__(self, acc):
        a2 = np.ascontiguousarray(acc).reshape(-1, acc.shape[-1])
        packed = np.empty((a2.shape[0], self.groups * _words(acc.shape[-1] // self.groups)), np.uint64)
        _kernels.pack_acc_below(a2, self.threshold, self.flip, self.groups, packed)
        return packed.reshape(acc.shape[:-1] + (-1,))


# -- binary layers -------------------------------------------------------------------------------------


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
        self.in_channels = _int(attrs, "in_channels", op, 1)
        self.groups = _int(attrs, "groups", op, 1)
        self.stride = _pair(attrs, "stride", op, 1)
        self.padding = _pair(attrs, "padding", op, 0)
        self.dilation = _pair(attrs, "dilation", op, 1)
        self.pad_value = _get(attrs, "pad_value", op)
        _expect(self.pad_value in (0, 1, -1) and not isinstance(self.pad_value, bool),
                f"bconv: pad_value must be 0, 1 or -1, got {self.pad_value!r}")
        self.weight = _const(consts, "weight", op, np.uint64, 4)
        out_channels, kh, kw, words = self.weight.shape
        _expect(self.in_channels % self.groups == 0 and out_channels % self.groups == 0,
                f"bconv: groups={self.groups} must divide in_channels={self.in_channels} and {out_channels} outputs")
        per_group = self.in_channels // self.groups
        _expect(words == _words(per_group), f"bconv: weight has {words} words per tap for {per_group} channels per group")
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
        _expect(len(shape) == 3, f"bconv: input must be [H, W, words], got {shape}")
        h, w, words = shape
        _expect(words == self.groups * _words(self.in_channels // self.groups),
                f"bconv: input has {words} words per pixel, {self.in_channels} channels in {self.groups} groups need more")
        ho, wo = self._out_size(h, w)
        _expect(ho >= 1 and wo >= 1, f"bconv: input {h}x{w} too small for the kernel")
        return Spec("int32", (ho, wo, self.weight.shape[0]))

    def _out_size(self, h, w):
        kh, kw = self.weight.shape[1:3]
        return (_out_size(h, kh, self.stride[0], self.padding[0], self.dilation[0]),
                _out_size(w, kw, self.stride[1], self.padding[1], self.dilation[1]))

    def __call__(self, x):
        n, h, w, _ = x.shape
        out_channels, kh, kw, words = self.weight.shape
        if self.pointwise:  # a 1x1 convolution is one product of the pixel rows with the weights
            acc = kernels.binary_matmul(x.reshape(-1, words), self.weight.reshape(out_channels, words), self.in_channels)
            return acc.reshape(n, h, w, -1)
        if self.general:
            return kernels.binary_conv2d(x, self.weight, self.in_channels, stride=self.stride, padding=self.padding,
                                         dilation=self.dilation, pad_value=self.pad_value, groups=self.groups)
        ho, wo = self._out_size(h, w)
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
        rows = np.full(np.prod(self._out_size(h, w)), -1, np.int64)
        rows[pixels] = np.arange(len(pixels))
        return rows, correction

    def _border_correction(self, h, w):
        """(border pixel indices, int32 [pixels, O]): (pad_value - 1) * the wsum of each padding tap."""
        if (h, w) not in self._corrections:
            kh, kw = self.weight.shape[1:3]
            ho, wo = self._out_size(h, w)
            oy, ox, i, j = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
            iy = oy * self.stride[0] - self.padding[0] + i * self.dilation[0]
            ix = ox * self.stride[1] - self.padding[1] + j * self.dilation[1]
            padded = ((iy < 0) | (iy >= h) | (ix < 0) | (ix >= w)).reshape(ho * wo, kh * kw)
            pixels = np.flatnonzero(padded.any(axis=1))
            correction = (self.pad_value - 1) * (padded[pixels].astype(np.int64) @ self.tap_sums.T)
            self._corrections[(h, w)] = (pixels.astype(np.int64), correction.astype(np.int32))
        return self._corrections[(h, w)]


class BinaryConvSteps(Op):
    """float32 [Ho, Wo, O]: a ``bconv`` followed by an ``elementwise`` node, fused so that the int32
    results stay in the cache (see :func:`numbnn.inference._kernels.conv_steps`). Attributes and
    constants are those of the two nodes (``stages``/``params`` of the steps); inputs: the packed
    activations, then the steps' second input if they read one. Even weight tails only."""

    name = "bconv_steps"
    arity = None
    const_names = ("weight", "params")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.conv = BinaryConv({k: v for k, v in attrs.items() if k != "stages"}, {"weight": consts.get("weight")})
        self.steps = Elementwise({"stages": _get(attrs, "stages", self.name)}, {"params": consts.get("params")})
        _expect(not self.conv.general, "bconv_steps: needs even weight tails")
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
        _expect(len(specs) >= 1, "bconv_steps: needs the packed input")
        acc = self.conv.output_spec(specs[:1])
        return self.steps.output_spec([acc, *specs[1:]])

    def __call__(self, x, other=None):
        n, h, w, _ = x.shape
        out_channels, kh, kw, _ = self.conv.weight.shape
        ho, wo = self.conv._out_size(h, w)
        if (h, w) not in self._geometry:
            if self.conv.pad_value != 1 and self.conv.padding != (0, 0):
                self._geometry[(h, w)] = self.conv.border_rows(h, w)
            else:
                self._geometry[(h, w)] = (np.full(ho * wo, -1, np.int64), np.zeros((1, out_channels), np.int32))
        border_rows, correction = self._geometry[(h, w)]
        out = np.empty((n * ho * wo, out_channels), np.float32)
        other2, div = self.steps.other_rows(other, out.shape[0])
        _kernels.conv_steps(x, kh, kw, *self.conv.stride, *self.conv.padding, *self.conv.dilation, ho, wo,
                            self.tap_bits, self.panels, self.k, border_rows, correction, self.steps.codes, self.steps.first_rows,
                            self.steps.channel_params(out_channels), other2, div, out)
        return out.reshape(n, ho, wo, out_channels)


class BinaryDense(Op):
    """int32 [..., O] = XNOR-popcount product of packed rows [..., words] with packed weights [O, words]."""

    name = "bdense"
    const_names = ("weight",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.in_features = _int(attrs, "in_features", self.name, 1)
        self.weight = _const(consts, "weight", self.name, np.uint64, 2)
        _expect(self.weight.shape[1] == _words(self.in_features), "bdense: weight words do not match in_features")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["uint64"])
        _expect(len(specs[0].shape) >= 1 and specs[0].shape[-1] == self.weight.shape[1],
                f"bdense: input must end in {self.weight.shape[1]} words, got {specs[0].shape}")
        return Spec("int32", specs[0].shape[:-1] + (self.weight.shape[0],))

    def __call__(self, x):
        acc = kernels.binary_matmul(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), self.weight, self.in_features)
        return acc.reshape(x.shape[:-1] + (-1,))


# -- per-channel float steps ---------------------------------------------------------------------------

# name -> (code in _kernels.run_stages, parameter rows it reads, reads the second input)
STAGES = {
    "mul": (_kernels.MUL, 1, False),
    "add": (_kernels.ADD, 1, False),
    "sub": (_kernels.SUB, 1, False),
    "rsub": (_kernels.RSUB, 1, False),
    "div": (_kernels.DIV, 1, False),
    "rdiv": (_kernels.RDIV, 1, False),
    "affine": (_kernels.AFFINE, 2, False),  # y * scale + shift (batch norm in eval mode)
    "dprelu": (_kernels.DPRELU, 4, False),  # shift_x, pos_slope, neg_slope, shift_y
    "relu": (_kernels.RELU, 0, False),
    "hard_sigmoid": (_kernels.HARD_SIGMOID, 0, False),
    "fake_quant": (_kernels.FAKE_QUANT, 3, False),  # lo, hi, step
    "sign": (_kernels.SIGN, 0, False),
    "neg": (_kernels.NEG, 0, False),
    "add_input": (_kernels.ADD_INPUT, 0, True),
    "sub_input": (_kernels.SUB_INPUT, 0, True),
    "rsub_input": (_kernels.RSUB_INPUT, 0, True),
    "mul_input": (_kernels.MUL_INPUT, 0, True),
}
_NO_OTHER = np.zeros((1, 1), np.float32)


class Elementwise(Op):
    """float32 y[..., c] = steps applied in order to float32(x[..., c]) (int32 or float32 x).

    ``stages`` names the steps (:data:`STAGES`); ``params`` float32 [rows, C] holds their per-channel
    values in order. At most one second input ``other``, read by the *_input steps: same leading shape
    as x, or one row per image (a gate broadcast over pixels); channel c reads other[..., c % C_other]
    (a residual whose channels are repeated). With ``moves``/``source_shape`` attributes x is read through
    a rearrangement of the input (as :class:`GatherPack` reads it).
    """

    name = "elementwise"
    arity = None
    const_names = ("params",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.moves = None
        if "moves" in attrs:  # x is read through a rearrangement (see GatherPack), never materialised
            self.source_shape = tuple(_int_list(_get(attrs, "source_shape", self.name), self.name, "source_shape"))
            _expect(len(self.source_shape) >= 1 and min(self.source_shape) >= 1, "elementwise: bad source_shape")
            self.moves, self.fill = movement_index(self.source_shape, attrs["moves"], self.name)
        stages = _get(attrs, "stages", self.name)
        _expect(isinstance(stages, list) and all(isinstance(s, str) and s in STAGES for s in stages),
                f"elementwise: stages must be a list of {sorted(STAGES)}, got {stages!r}")
        self.stages = stages
        self.params = _const(consts, "params", self.name, np.float32, 2)
        rows = [0]
        for stage in stages:
            rows.append(rows[-1] + STAGES[stage][1])
        _expect(self.params.shape[0] == rows[-1], f"elementwise: steps {stages} need {rows[-1]} parameter rows, "
                f"got {self.params.shape[0]}")
        self.codes = np.array([STAGES[s][0] for s in stages], np.int64)
        self.first_rows = np.array(rows[:-1], np.int64)
        self.uses_other = any(STAGES[s][2] for s in stages)

    def output_spec(self, specs):
        _expect(len(specs) == (2 if self.uses_other else 1),
                f"elementwise: steps {self.stages} need {2 if self.uses_other else 1} input(s), got {len(specs)}")
        x = specs[0]
        if self.moves is not None:
            _expect(x.dtype == "float32" and x.shape == self.source_shape, f"elementwise: input must be {self.source_shape}")
            x = Spec("float32", self.moves.shape)
        _expect(x.dtype in ("float32", "int32") and len(x.shape) >= 1, f"elementwise: bad input {x}")
        channels = x.shape[-1]
        _expect(self.params.shape[1] == channels or (self.params.shape[0] == 0),
                f"elementwise: params have {self.params.shape[1]} channels, input {channels}")
        if self.uses_other:
            other = specs[1]
            _expect(other.dtype == "float32", "elementwise: the second input must be float32")
            same_rows = other.shape[:-1] == x.shape[:-1]
            per_image = all(s == 1 for s in other.shape[:-1]) and len(other.shape) == len(x.shape)
            _expect((same_rows or per_image) and other.shape[-1] >= 1 and channels % other.shape[-1] == 0,
                    f"elementwise: second input {other.shape} does not fit input {x.shape}")
        return Spec("float32", x.shape)

    def __call__(self, x, other=None):
        if self.moves is not None:
            shape = (x.shape[0], *self.moves.shape)
            out = np.empty((math.prod(shape) // shape[-1], shape[-1]), np.float32)
            other2, div = self.other_rows(other, out.shape[0])
            _kernels.run_stages_gathered(np.ascontiguousarray(x).reshape(x.shape[0], -1), self.moves.reshape(-1), self.fill,
                                         self.codes, self.first_rows, self.channel_params(shape[-1]), other2, div, out)
            return out.reshape(shape)
        channels = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, channels)
        out = np.empty(x2.shape, np.float32)
        other2, div = self.other_rows(other, x2.shape[0])
        _kernels.run_stages(x2, self.codes, self.first_rows, self.channel_params(channels), other2, div, out)
        return out.reshape(x.shape)

    def channel_params(self, channels):
        return self.params if self.params.shape[0] else np.zeros((0, channels), np.float32)

    @staticmethod
    def other_rows(other, rows):
        """The second input as [R, Co] rows and the number of our rows per row of it."""
        if other is None:
            return _NO_OTHER, max(1, rows)
        other2 = np.ascontiguousarray(other, dtype=np.float32).reshape(-1, other.shape[-1])
        return other2, rows // other2.shape[0]


class Ufunc(Op):
    """A numpy ufunc with numpy's broadcasting, for the element-wise ops that are not per-channel steps.

    ``operands`` lists each argument: ``"input:i"`` (the node's i-th input) or ``"const:name"``.
    """

    name = "ufunc"
    arity = None
    const_names = ("a", "b")
    FUNCTIONS = {"add": 2, "subtract": 2, "multiply": 2, "divide": 2, "negative": 1, "maximum": 2, "minimum": 2}

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.fn = _get(attrs, "fn", self.name)
        _expect(self.fn in self.FUNCTIONS, f"ufunc: fn must be one of {sorted(self.FUNCTIONS)}, got {self.fn!r}")
        operands = _get(attrs, "operands", self.name)
        _expect(isinstance(operands, list) and len(operands) == self.FUNCTIONS[self.fn],
                f"ufunc: {self.fn} takes {self.FUNCTIONS[self.fn]} operands, got {operands!r}")
        self.operands = []
        for operand in operands:
            kind, _, ref = str(operand).partition(":")
            if kind == "input" and ref.isdigit():
                self.operands.append(("input", int(ref)))
            elif kind == "const" and ref in consts:
                self.operands.append(("const", consts[ref]))
            else:
                raise GraphError(f"ufunc: bad operand {operand!r}")
        self.ufunc = getattr(np, self.fn)

    def output_spec(self, specs):
        n_inputs = sum(kind == "input" for kind, _ in self.operands)
        _expect(len(specs) == n_inputs and sorted(r for k, r in self.operands if k == "input") == list(range(n_inputs)),
                f"ufunc: operands do not match {len(specs)} inputs")
        shapes, dtypes = [], []
        for kind, ref in self.operands:
            if kind == "input":
                shapes.append((1,) + specs[ref].shape)
                dtypes.append(np.dtype(specs[ref].dtype))
            else:
                shapes.append(ref.shape)
                dtypes.append(ref.dtype)
        _expect(all(d.kind == "f" for d in dtypes), "ufunc: operands must be floating point")
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise GraphError(f"ufunc: shapes {shapes} do not broadcast") from None
        _expect(len(shape) >= 1 and shape[0] == 1, "ufunc: a constant may not add a batch axis")
        dtype = self.ufunc(*[np.zeros(1, d) for d in dtypes]).dtype
        return Spec(dtype.name, shape[1:])

    def __call__(self, *xs):
        return self.ufunc(*[xs[ref] if kind == "input" else ref for kind, ref in self.operands])


# -- float layers --------------------------------------------------------------------------------------


class Conv2d(Op):
    """Float convolution of NHWC x with OHWI weight (+ bias), computed as the float model computes it:
    im2col (a reshape for unpadded 1x1) and one BLAS product per group, or shift-and-add over taps when
    every group has one input channel (depthwise)."""

    name = "conv2d"
    const_names = ("weight", "bias")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        op = self.name
        self.groups = _int(attrs, "groups", op, 1)
        self.stride = _pair(attrs, "stride", op, 1)
        self.padding = _pair(attrs, "padding", op, 0)
        self.dilation = _pair(attrs, "dilation", op, 1)
        self.weight = _const(consts, "weight", op, np.float32, 4)
        self.bias = _const(consts, "bias", op, np.float32, 1, optional=True)
        out_channels = self.weight.shape[0]
        _expect(out_channels % self.groups == 0, f"conv2d: {out_channels} outputs not divisible by groups={self.groups}")
        _expect(self.bias is None or self.bias.shape == (out_channels,), "conv2d: bias needs one value per output")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        shape = specs[0].shape
        _expect(len(shape) == 3, f"conv2d: input must be [H, W, C], got {shape}")
        h, w, c = shape
        o, kh, kw, cg = self.weight.shape
        _expect(c == cg * self.groups, f"conv2d: input has {c} channels, weight expects {cg} x {self.groups} groups")
        ho = _out_size(h, kh, self.stride[0], self.padding[0], self.dilation[0])
        wo = _out_size(w, kw, self.stride[1], self.padding[1], self.dilation[1])
        _expect(ho >= 1 and wo >= 1, f"conv2d: input {h}x{w} too small for the kernel")
        return Spec("float32", (ho, wo, o))

    def __call__(self, x):
        n, h, w, c = x.shape
        o, kh, kw, _ = self.weight.shape
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        ho, wo = _out_size(h, kh, sh, ph, dh), _out_size(w, kw, sw, pw, dw)
        if self.groups > 1 and self.groups == c:
            out = self._depthwise(x, ho, wo)
        else:
            if kh == kw == 1 and ph == pw == 0:
                cols = x.reshape(-1, c) if sh == sw == 1 else np.ascontiguousarray(x[:, ::sh, ::sw]).reshape(-1, c)
            else:
                cols = kernels.im2col(np.ascontiguousarray(x), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
            w2 = self.weight.reshape(o, -1)
            if self.groups == 1:
                out = cols @ w2.T
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

    def _depthwise(self, x, ho, wo):
        n, h, w, c = x.shape
        o, kh, kw, _ = self.weight.shape
        out = np.empty((n, ho, wo, o), np.float32)
        taps = np.ascontiguousarray(self.weight.reshape(c, o // c, kh, kw))
        _kernels.depthwise_conv(np.ascontiguousarray(x), taps, *self.stride, *self.padding, *self.dilation, ho, wo, out)
        return out


class Linear(Op):
    """Float y = x @ W.T (+ b), W [out, in]."""

    name = "linear"
    const_names = ("weight", "bias")

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.weight = _const(consts, "weight", self.name, np.float32, 2)
        self.bias = _const(consts, "bias", self.name, np.float32, 1, optional=True)
        _expect(self.bias is None or self.bias.shape == (self.weight.shape[0],), "linear: bias needs one value per output")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        _expect(len(specs[0].shape) >= 1 and specs[0].shape[-1] == self.weight.shape[1],
                f"linear: input must end in {self.weight.shape[1]} features, got {specs[0].shape}")
        return Spec("float32", specs[0].shape[:-1] + (self.weight.shape[0],))

    def __call__(self, x):
        x2 = x.reshape(-1, x.shape[-1])
        out = x2 @ self.weight.T
        if self.bias is not None:
            out += self.bias
        return out.reshape(x.shape[:-1] + (self.weight.shape[0],))


# -- pooling and reductions ----------------------------------------------------------------------------


class _Pool(Op):
    """Shared window geometry: kernel, stride, padding (h, w) or "same" (TensorFlow's rule)."""

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.kernel = _pair(attrs, "kernel_size", self.name, 1)
        self.stride = _pair(attrs, "stride", self.name, 1)
        padding = _get(attrs, "padding", self.name)
        self.same = padding == "same"
        if not self.same:
            self.padding = _pair(attrs, "padding", self.name, 0)
            _expect(2 * self.padding[0] <= self.kernel[0] and 2 * self.padding[1] <= self.kernel[1],
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
        _expect(len(specs[0].shape) == 3, f"{self.name}: input must be [H, W, C]")
        h, w, c = specs[0].shape
        _, ho, wo = self.window(h, w)
        _expect(ho >= 1 and wo >= 1, f"{self.name}: input {h}x{w} too small for the window")
        return Spec("float32", (ho, wo, c))

    def taps(self, xp, ho, wo):
        (kh, kw), (sh, sw) = self.kernel, self.stride
        for i in range(kh):
            for k in range(kw):
                yield xp[:, i: i + sh * (ho - 1) + 1: sh, k: k + sw * (wo - 1) + 1: sw]


class AvgPool(_Pool):
    """Mean over each window's real pixels (padding not counted), in the float model's summation order
    (windows of more than 8 taps could be summed pairwise by numpy: refused at construction)."""

    name = "avg_pool"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        _expect(self.kernel[1] <= 8, "avg_pool: windows wider than 8 are not supported")

    def __call__(self, x):
        n, h, w, c = x.shape
        pad, ho, wo = self.window(h, w)
        (kh, kw), (sh, sw) = self.kernel, self.stride
        tiled = pad == (0, 0, 0, 0) and (kh, kw) == (sh, sw) and h % kh == 0 and w % kw == 0
        out = np.empty((n, ho, wo, c), np.float32)
        _kernels.avg_pool(np.ascontiguousarray(x), kh, kw, sh, sw, pad[0], pad[2], ho, wo, tiled, out)
        return out


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


class Reduce(Op):
    """mean / sum / max over non-batch axes (global average pooling is the mean over axes 1 and 2)."""

    name = "reduce"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.fn = _get(attrs, "fn", self.name)
        _expect(self.fn in ("mean", "sum", "max"), f"reduce: fn must be mean, sum or max, got {self.fn!r}")
        self.axis = tuple(_int_list(_get(attrs, "axis", self.name), self.name, "axis"))
        self.keepdims = _get(attrs, "keepdims", self.name)
        _expect(isinstance(self.keepdims, bool), "reduce: keepdims must be true or false")
        _expect(len(self.axis) >= 1 and 0 not in self.axis and len(set(self.axis)) == len(self.axis),
                f"reduce: axis must list distinct non-batch axes, got {self.axis}")

    def output_spec(self, specs):
        self._expect_inputs(specs, ["float32"])
        rank = len(specs[0].shape) + 1
        _expect(all(-rank < a < rank and a % rank != 0 for a in self.axis), f"reduce: axis {self.axis} out of range")
        axes = {a % rank for a in self.axis}
        full = (1,) + specs[0].shape
        shape = tuple(1 if i in axes else s for i, s in enumerate(full)) if self.keepdims else \
            tuple(s for i, s in enumerate(full) if i not in axes)
        return Spec("float32", shape[1:])

    def __call__(self, x):
        axes = sorted(a % x.ndim for a in self.axis)
        if self.fn == "mean" and x.ndim == 4 and axes == [1, 2]:  # global average pooling
            out = np.empty((x.shape[0], x.shape[3]), np.float32)
            _kernels.spatial_mean(np.ascontiguousarray(x), out)
            return out.reshape(x.shape[0], 1, 1, x.shape[3]) if self.keepdims else out
        if self.fn == "mean" and axes == [x.ndim - 1] and x.shape[-1] < 8:  # e.g. averaging channel groups
            out = np.empty(x.shape[:-1], np.float32)
            _kernels.mean_last_axis(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), out.reshape(-1))
            return out[..., None] if self.keepdims else out
        return getattr(np, self.fn)(x, axis=self.axis, keepdims=self.keepdims)


# -- shape ops -----------------------------------------------------------------------------------------


class Concat(Op):
    name = "concat"
    arity = None

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.axis = _int(attrs, "axis", self.name, minimum=-64)

    def output_spec(self, specs):
        _expect(len(specs) >= 1 and len({s.dtype for s in specs}) == 1, "concat: inputs must share one dtype")
        rank = len(specs[0].shape) + 1
        _expect(-rank < self.axis < rank and self.axis % rank != 0, f"concat: bad axis {self.axis}")
        axis = self.axis % rank - 1
        _expect(all(len(s.shape) == rank - 1 and s.shape[:axis] + s.shape[axis + 1:] == specs[0].shape[:axis] + specs[0].shape[axis + 1:]
                    for s in specs), "concat: input shapes differ off the concatenation axis")
        shape = list(specs[0].shape)
        shape[axis] = sum(s.shape[axis] for s in specs)
        return Spec(specs[0].dtype, tuple(shape))

    def __call__(self, *xs):
        return np.concatenate(xs, axis=self.axis)


class Reshape(Op):
    """New shape; entries {"batch": k} mean k times the batch size (the traced model's x.shape[0])."""

    name = "reshape"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.shape = []
        for entry in _get(attrs, "shape", self.name):
            if isinstance(entry, dict) and set(entry) == {"batch"} and isinstance(entry["batch"], int) and entry["batch"] >= 1:
                self.shape.append(("batch", entry["batch"]))
            elif isinstance(entry, int) and not isinstance(entry, bool) and entry >= -1:
                self.shape.append(("int", entry))
            else:
                raise GraphError(f"reshape: bad shape entry {entry!r}")
        _expect(sum(v == -1 for k, v in self.shape if k == "int") <= 1, "reshape: at most one -1")
        _expect(len(self.shape) >= 1 and self.shape[0] == ("batch", 1), "reshape: the first axis must stay the batch")

    def concrete(self, batch):
        return tuple(v * batch if k == "batch" else v for k, v in self.shape)

    def output_spec(self, specs):
        size = math.prod(specs[0].shape)
        rest = [v for _, v in self.shape[1:]]
        known = math.prod(v for v in rest if v != -1)
        _expect(all(v != 0 for v in rest) and (size % known == 0 if -1 in rest else size == known),
                f"reshape: cannot reshape {specs[0].shape} to {rest}")
        return Spec(specs[0].dtype, tuple(size // known if v == -1 else v for v in rest))

    def __call__(self, x):
        return x.reshape(self.concrete(x.shape[0]))


class Transpose(Op):
    name = "transpose"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.axes = _int_list(_get(attrs, "axes", self.name), self.name, "axes")
        _expect(sorted(self.axes) == list(range(len(self.axes))) and self.axes[:1] == [0],
                f"transpose: axes must be a permutation keeping the batch first, got {self.axes}")

    def output_spec(self, specs):
        shape = (1,) + specs[0].shape
        _expect(len(shape) == len(self.axes), f"transpose: {len(self.axes)} axes for rank {len(shape)}")
        return Spec(specs[0].dtype, tuple(shape[a] for a in self.axes[1:]))

    def __call__(self, x):
        return np.ascontiguousarray(np.transpose(x, self.axes))


class Pad(Op):
    name = "pad"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        widths = _get(attrs, "pad_width", self.name)
        _expect(isinstance(widths, list) and all(isinstance(p, list) and len(p) == 2 for p in widths),
                "pad: pad_width must be a list of [before, after] pairs")
        self.pad_width = [tuple(_int_list(p, self.name, "pad_width")) for p in widths]
        _expect(len(self.pad_width) >= 1 and self.pad_width[0] == (0, 0) and min(min(p) for p in self.pad_width) >= 0,
                "pad: widths must be >= 0 and the batch axis unpadded")
        value = _get(attrs, "value", self.name)
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                "pad: value must be a finite number")
        self.value = value

    def output_spec(self, specs):
        _expect(len(specs[0].shape) + 1 == len(self.pad_width), "pad: one pair per axis needed")
        return Spec(specs[0].dtype, tuple(s + a + b for s, (a, b) in zip(specs[0].shape, self.pad_width[1:])))

    def __call__(self, x):
        return np.pad(x, self.pad_width, constant_values=self.value)


class Slice(Op):
    """x[index] with basic slices only: ``index`` is one [start, stop, step] (null = default) per leading
    axis, the batch axis's being [null, null, null]."""

    name = "slice"

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        index = _get(attrs, "index", self.name)
        _expect(isinstance(index, list) and len(index) >= 1 and all(
            isinstance(entry, list) and len(entry) == 3
            and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in entry) for entry in index),
            "slice: index must be a list of [start, stop, step] entries")
        _expect(index[0] == [None, None, None], "slice: the batch axis must be taken whole")
        _expect(all(entry[2] is None or entry[2] != 0 for entry in index), "slice: a step must not be 0")
        self.index = tuple(slice(*entry) for entry in index)

    def output_spec(self, specs):
        _expect(len(self.index) <= len(specs[0].shape) + 1, "slice: more index entries than axes")
        shape = tuple(len(range(*s.indices(n))) for s, n in zip(self.index[1:], specs[0].shape))
        return Spec(specs[0].dtype, shape + specs[0].shape[len(shape):])

    def __call__(self, x):
        return x[self.index]


OPS = {cls.name: cls for cls in (Pack, GatherPack, PackAccumulator, BinaryConv, BinaryConvSteps, BinaryDense, Elementwise, Ufunc, Conv2d, Linear,
                                 AvgPool, MaxPool, Reduce, Concat, Reshape, Transpose, Pad, Slice)}


def register_op(cls):
    """Add an op class to :data:`OPS` (used by modules that define more ops, e.g. the tree head)."""
    OPS[cls.name] = cls
    return cls


def build_op(name: str, attrs: dict, consts: dict) -> Op:
    """The op ``name`` for these attributes and constants; GraphError if anything is wrong."""
    if name not in OPS:
        raise GraphError(f"unknown op {name!r} (known: {', '.join(sorted(OPS))})")
    if not isinstance(attrs, dict):
        raise GraphError(f"{name}: attrs must be an object")
    return OPS[name](attrs, consts)
