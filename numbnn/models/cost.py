"""One cost model for every network: parameters, size, FLOPs, BOPs, OPs and ACE per layer.

``summarize(model)`` runs ONE eval-mode forward pass under ``no_grad`` on a zero image, recorded as ops
by :func:`numbnn.autograd.function.trace` (the op stream the packed compiler traces), and reads what
each layer's ops did: a convolution's output size, a linear layer's output rows, and the
``weight_bits``/``act_bits`` of the layer. No model has hand-written formulas, so a new model is
priced correctly as soon as it is built from numbnn's layers.

Conventions (:data:`CONVENTIONS` prints them with every summary). OPs follow ReActNet (arXiv 2003.03488,
its ImageNet comparison; Bi-Real Net's convention); ACE follows PokeBNN (arXiv 2112.00133; google/aqt
``aqt/jax_legacy/jax/imagenet/pokebnn.py``, ``size_stats``). The 16-bit price of a float operand is our
reading, checked in ``tests/test_cost.py``: it reproduces the abstract's 7.9 ACE for ReActNet-A.

- A *MAC* of a ``Conv2d``/``BinaryConv2d`` is one of N*Ho*Wo * KH*KW*C_in/groups * C_out; of a
  ``Linear``/``BinaryLinear`` one of rows * in * out. Counts are per image (divided by the batch).
- **BOPs**: MACs whose weight and activation are both 1-bit. **FLOPs**: every other MAC (float
  convolutions, the classifier, ReActNet's step-1 convs with real weights on binary activations,
  8-bit fake-quantized layers), plus a tree ensemble's comparisons (see :func:`tree_ensemble_cost`).
- **OPs = BOPs/64 + FLOPs** (Bi-Real Net / ReActNet).
- **ACE** = sum over MACs of weight bits x activation bits (PokeBNN), a real operand (32-bit float
  here) priced at 16 bits as PokeBNN prices bf16: a float MAC costs 256, a binary MAC 1, an int4 x int4
  MAC 16, a real weight on a binary activation (ReActNet step 1) 16 x 1 = 16. BN, activations,
  residual adds, pooling and tree comparisons are not MACs and are not in ACE.
- A layer's activation bits are its ``act_bits`` (1 for binary layers), lowered when the input of its
  MAC op is the output of a quantizing op: a fake quantization (its ``bits``: :class:`~numbnn.nn.FakeQuant`,
  PokeBNN's SE and 8-bit stem/head) or a sign :class:`~numbnn.functional.quantizers.Quantizer`
  (:class:`~numbnn.nn.RSign`'s, 1 bit).
  Weight bits are the layer's ``weight_bits``; a model that fake-quantizes weights sets that attribute.
- **params** are trainable parameters (the paper convention); BN running statistics are *buffers*,
  listed separately and not in params or ``size_bytes``. **size_bytes**: binary weights at 1 bit,
  weights quantized to b < 32 bits at b bits, every other parameter at 32 bits (rounded up to bytes).
- **packed_size_bytes**, the payload of a packed export: each binary weight tensor packed by
  :func:`numbnn.kernels.pack_bits` along its last (input-channel) axis into uint64 words, padded to
  64 bits per output channel and tap, plus a float32 per-output-channel scale when the layer has one
  (alpha = mean|W_o|), plus float32 for every other parameter and every buffer.

Hook for models whose deployed form differs from their layers (ReActXGB's tree head): a model may
define ``cost_extra(self) -> CostExtra``; it is called after the forward pass. ``CostExtra.exclude``
names module paths whose rows (parameters and MACs, descendants included) are dropped, e.g. the FC
classifier the trees replace; ``CostExtra.rows`` are added, e.g. ``tree_ensemble_cost("trees", ...)``.
A model without the attribute is priced from its layers alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.autograd.function import trace
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.functional import binary, conv, quantizers
from numbnn.functional.linear import Linear as LinearOp
from numbnn.kernels import pack_bits
from numbnn.nn import BinaryConv2d, BinaryLinear, Conv2d, Linear, Module

REAL_BITS = 32  # the bit width of a float operand, as layers report it
ACE_REAL_BITS = 16  # what ACE charges for a float operand (PokeBNN: bf16, so a float MAC is 16 x 16)
MAX_INPUT_SIZE = 1024  # pricing traces a real forward pass; ImageNet models are priced at 224
FLOAT32_BYTES = 4

CONVENTIONS = (
    "counts are per image; params are trainable parameters, BN running statistics are buffers "
    "(not in params or size, float32 in the packed size)",
    "size: binary weights at 1 bit, weights quantized to b bits at b bits, other parameters at 32 bits",
    "packed size: binary weights as uint64 words along the input-channel axis (padded to 64) per output "
    "channel and tap, + float32 per-channel scales, parameters and buffers",
    "BOPs: 1-bit x 1-bit MACs; FLOPs: all other MACs (+ tree comparisons); OPs = BOPs/64 + FLOPs",
    "ACE: sum over MACs of weight bits x activation bits, a float operand priced at 16 bits "
    "(float MAC 256, binary MAC 1, real weight x binary activation 16)",
)

_CONV_LAYERS = (Conv2d, BinaryConv2d)
_LINEAR_LAYERS = (Linear, BinaryLinear)


@dataclass
class LayerCost:
    """The cost of one module (or of the whole model, for ``CostReport.total``).

    ``size_bits`` is exact; ``size_bytes`` rounds it up. ``weight_bits``/``act_bits``/``output_shape``
    describe the layer's first call in the forward pass (``None`` for modules without MACs).
    """

    name: str
    kind: str
    binary_params: int = 0
    real_params: int = 0
    buffers: int = 0
    size_bits: int = 0
    packed_size_bytes: int = 0
    flops: int = 0
    bops: int = 0
    ace: int = 0
    comparisons: int = 0
    calls: int = 0
    weight_bits: int | None = None
    act_bits: int | None = None
    output_shape: tuple | None = None
    note: str = ""

    @property
    def params(self) -> int:
        return self.binary_params + self.real_params

    @property
    def size_bytes(self) -> int:
        return math.ceil(self.size_bits / 8)

    @property
    def ops(self) -> float:
        """OPs = BOPs/64 + FLOPs (Bi-Real Net / ReActNet)."""
        return self.bops / 64 + self.flops

    def as_dict(self) -> dict:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        row.update(params=self.params, size_bytes=self.size_bytes, ops=self.ops)
        return row


_SUMMED = ("binary_params", "real_params", "buffers", "size_bits", "packed_size_bytes", "flops", "bops", "ace",
           "comparisons")
TOTAL_KEYS = ("params", "binary_params", "real_params", "buffers", "size_bytes", "size_bits", "packed_size_bytes",
              "flops", "bops", "ops", "ace", "comparisons")


@dataclass
class CostReport:
    """Per-layer costs in forward order of the module tree, their total, and the conventions used."""

    model: str
    input_shape: tuple
    layers: list[LayerCost]
    total: LayerCost
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        total = self.total.as_dict()
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "conventions": list(CONVENTIONS),
            "notes": list(self.notes),
            "layers": [layer.as_dict() for layer in self.layers],
            "total": {key: total[key] for key in TOTAL_KEYS},
        }


@dataclass
class CostExtra:
    """What a model's ``cost_extra()`` returns: rows to add and module paths to leave out."""

    rows: list[LayerCost] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


def summarize(model: Module, input_shape: Sequence[int] = (1, 28, 28, 1)) -> CostReport:
    """Price ``model`` (see the module docstring) with one eval-mode forward pass on zeros of ``input_shape``.

    The model's train/eval flags are restored afterwards; its parameters and buffers are not changed
    (eval-mode BN does not update its running statistics).
    """
    if not isinstance(model, Module):
        raise InputError(f"model must be a numbnn Module, got {type(model).__name__}")
    input_shape = _check_input_shape(input_shape)
    calls = _trace_forward(model, input_shape)
    batch = input_shape[0]

    owned: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    for name, tensor in model.named_parameters():
        owned[_owner(name)].append((name.rpartition(".")[2], tensor.data))
    buffers: dict[str, int] = defaultdict(int)
    for name, array in model.named_buffers():
        buffers[_owner(name)] += array.size

    rows, notes = [], []
    for path, module in model.named_modules():
        is_mac_layer = isinstance(module, _CONV_LAYERS + _LINEAR_LAYERS)
        if not (is_mac_layer or owned[path] or buffers[path]):
            continue
        row = _price_parameters(path, module, owned[path], is_mac_layer)
        row.buffers = buffers[path]
        row.packed_size_bytes += FLOAT32_BYTES * row.buffers
        if is_mac_layer:
            _price_calls(row, calls.get(id(module), []), batch)
        elif any(array.ndim >= 2 for _, array in owned[path]):
            notes.append(f"{row.name} ({row.kind}) holds a weight matrix but is not a Conv2d/Linear layer: "
                         "its MACs are not counted")
        rows.append(row)

    extra = _cost_extra(model)
    dropped = [row for row in rows if _excluded(row.name, extra.exclude)]
    rows = [row for row in rows if not _excluded(row.name, extra.exclude)] + list(extra.rows)
    if extra.exclude:  # what was left out, to set a head against the one it replaces (its MACs may never run)
        params, size = sum(row.params for row in dropped), sum(row.size_bytes for row in dropped)
        notes.append(f"excluded by the model's cost_extra(): {', '.join(extra.exclude)} "
                     f"({params:,} params, {size:,} bytes)")
    total = LayerCost("total", type(model).__name__)
    for row in rows:
        for key in _SUMMED:
            setattr(total, key, getattr(total, key) + getattr(row, key))
    name = getattr(model, "config", {}).get("name", type(model).__name__)
    return CostReport(name, input_shape, rows, total, notes)


def default_input_shape(model: Module, size: int = 28) -> tuple[int, int, int, int]:
    """(1, size, size, C) with C the model's ``in_channels`` config argument (1, FashionMNIST, if absent).

    At most MAX_INPUT_SIZE: the costs come from a real forward pass, whose activations must fit in memory.
    """
    check_int(size, "input size", 1, MAX_INPUT_SIZE)
    channels = getattr(model, "config", {}).get("args", {}).get("in_channels", 1)
    return (1, size, size, int(channels))


def tree_ensemble_cost(name: str, trees: Iterable[tuple[Sequence[int], Sequence[int]]], n_classes: int,
                       leaf_size: int = 1, kind: str = "trees") -> LayerCost:
    """The cost row of a tree ensemble with a base margin per class, for a model's ``cost_extra()`` (ReActXGB).

    ``trees`` gives each tree as ``(left_children, right_children)`` in xgboost's JSON layout (node 0
    is the root, -1 marks a leaf). ``leaf_size`` is the number of values in each leaf: 1 for per-class
    trees, ``n_classes`` for vector-leaf trees (each leaf holds a margin for every class). Per image a
    tree makes at most ``depth`` comparisons (its longest root-to-leaf path), whatever its leaves hold;
    the row's ``comparisons`` and ``flops`` are the sum of these upper bounds.
    Size (an assumption; the ReActXGB paper's accounting was not available): a split node holds a
    feature index and a threshold, a leaf ``leaf_size`` values, the ensemble ``n_classes`` base margins,
    32 bits each; thresholds, leaf values and base margins are the ensemble's (real) params. The packed
    size is what numbnn's ``trees`` op stores (:mod:`numbnn.inference.trees`): 6 bytes and a bit per
    node, 4 bytes per value of a vector leaf, 4 x (trees + 1) + 2 x trees for the trees' node ranges
    and classes, 4 per class.
    """
    check_int(n_classes, "n_classes", 1)
    check_int(leaf_size, "leaf_size", 1)
    if leaf_size not in (1, n_classes):
        raise InputError(f"leaf_size must be 1 (per-class trees) or n_classes = {n_classes}, got {leaf_size}")
    row = LayerCost(str(name), str(kind))
    splits = leaves = n_trees = 0
    for index, (left, right) in enumerate(trees):
        tree_splits, tree_leaves, depth = _tree_shape(left, right, f"{name}[{index}]")
        splits, leaves, n_trees = splits + tree_splits, leaves + tree_leaves, n_trees + 1
        row.comparisons += depth
    nodes, vector_values = splits + leaves, (leaves * leaf_size if leaf_size > 1 else 0)
    row.real_params = splits + leaf_size * leaves + n_classes
    row.size_bits = REAL_BITS * (2 * splits + leaf_size * leaves + n_classes)
    row.packed_size_bytes = (6 * nodes + math.ceil(nodes / 8) + FLOAT32_BYTES * vector_values
                             + 4 * (n_trees + 1) + 2 * n_trees + FLOAT32_BYTES * n_classes)
    row.flops = row.comparisons
    row.calls = 1
    leaf_text = f"leaves of {leaf_size} values" if leaf_size > 1 else "one value per leaf"
    row.note = f"{n_trees} trees, {nodes} nodes, {leaf_text}; <= depth comparisons per tree"
    return row


# -- the traced forward pass ----------------------------------------------------------------------------

# The ops that multiply-accumulate; each takes (x, w, ...): the activations, then the weights.
_MAC_OPS = (conv.Conv2d, conv.DepthwiseConv2d, binary.BinaryConv2d, LinearOp, binary.BinaryLinear)


@dataclass(frozen=True)
class _Call:
    macs: int
    weight_bits: int
    act_bits: int
    output_shape: tuple


def _trace_forward(model: Module, input_shape: tuple) -> dict[int, list[_Call]]:
    """Record one eval-mode forward pass on zeros as ops (:func:`numbnn.autograd.function.trace`, the
    stream the packed compiler traces too) and return each MAC layer's calls, keyed by the layer's id.

    A MAC op belongs to the layer whose weight it multiplies by: the ``weight`` itself, or what ops made
    of it with no other layer's weight (sign(W), a fake-quantized W). Its activation bits are lowered
    when its input is the output of a quantizing op: a fake quantization (its bits) or a
    :class:`Quantizer` (RSign's sign: 1 bit). Arrays in the tables are kept alive so no id is reused.
    """
    layers = [module for module in model.modules() if isinstance(module, _CONV_LAYERS + _LINEAR_LAYERS)]
    weight_of = {id(layer.weight.data): (layer.weight.data, layer) for layer in layers}
    quantized: dict[int, tuple[np.ndarray, int]] = {}  # id(output) -> (output, bits) of quantizing ops
    calls: dict[int, list[_Call]] = defaultdict(list)

    def hook(fn, arrays, kwargs, out):
        if fn in _MAC_OPS and id(arrays[1]) in weight_of:
            x, layer = arrays[0], weight_of[id(arrays[1])][1]
            act_bits = min(layer.act_bits, quantized[id(x)][1]) if id(x) in quantized else layer.act_bits
            calls[id(layer)].append(_Call(_macs(layer, out), layer.weight_bits, act_bits, tuple(out.shape)))
            return
        owners = {weight_of[id(a)][1] for a in arrays if a is not None and id(a) in weight_of}
        if len(owners) == 1:  # made from one layer's weight: still that layer's weight
            weight_of[id(out)] = (out, owners.pop())
        if fn is quantizers.FakeQuant:
            quantized[id(out)] = (out, kwargs["bits"])
        elif fn is quantizers.Quantize:
            quantized[id(out)] = (out, kwargs["quantizer"].bits)

    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with trace(hook), no_grad():
            model(Tensor(np.zeros(input_shape, np.float32)))
    finally:
        for module, training in modes:
            module.training = training
    return calls


def _macs(module, y) -> int:
    """MACs of one call with output ``y``, for the whole batch."""
    if isinstance(module, _CONV_LAYERS):
        ho, wo = y.shape[1:3]
        kh, kw = module.kernel_size
        return y.shape[0] * ho * wo * kh * kw * (module.in_channels // module.groups) * module.out_channels
    rows = y.size // module.out_features
    return rows * module.in_features * module.out_features


# -- pricing -----------------------------------------------------------------------------------------

def _ace_bits(bits: int) -> int:
    return min(bits, ACE_REAL_BITS)


def _price_parameters(path: str, module: Module, params, is_mac_layer: bool) -> LayerCost:
    """Counts, paper size and packed size of the parameters ``module`` owns directly."""
    row = LayerCost(path or "(model)", type(module).__name__)
    for leaf, array in params:
        bits = module.weight_bits if is_mac_layer and leaf == "weight" else REAL_BITS
        row.size_bits += array.size * bits
        if bits == 1:
            row.binary_params += array.size
            row.packed_size_bytes += pack_bits(array, axis=-1).nbytes
            if getattr(module, "scale", None) is not None:
                row.packed_size_bytes += FLOAT32_BYTES * array.shape[0]  # alpha_o, one per output channel
        else:
            row.real_params += array.size
            row.packed_size_bytes += FLOAT32_BYTES * array.size
    return row


def _price_calls(row: LayerCost, calls: list[_Call], batch: int) -> None:
    """Add the MACs of every call of a MAC layer (per image) to ``row``."""
    row.calls = len(calls)
    if not calls:
        row.note = "not run by forward()"
        return
    first = calls[0]
    row.weight_bits, row.act_bits, row.output_shape = first.weight_bits, first.act_bits, first.output_shape
    for call in calls:
        macs = call.macs // batch
        if call.weight_bits == 1 and call.act_bits == 1:
            row.bops += macs
        else:
            row.flops += macs
        row.ace += macs * _ace_bits(call.weight_bits) * _ace_bits(call.act_bits)
    if len({(c.weight_bits, c.act_bits) for c in calls}) > 1:
        row.note = "bit widths differ between calls; weight_bits/act_bits show the first"


def _cost_extra(model: Module) -> CostExtra:
    hook = getattr(model, "cost_extra", None)
    if hook is None:
        return CostExtra()
    extra = hook()
    if not isinstance(extra, CostExtra):
        raise InputError(f"{type(model).__name__}.cost_extra() must return a CostExtra, got {type(extra).__name__}")
    paths = {path for path, _ in model.named_modules()}
    for path in extra.exclude:
        if path not in paths:
            raise InputError(f"{type(model).__name__}.cost_extra() excludes {path!r}, which is not a module path")
    for row in extra.rows:
        if not isinstance(row, LayerCost):
            raise InputError(f"{type(model).__name__}.cost_extra() rows must be LayerCost, got {type(row).__name__}")
    return extra


def _excluded(name: str, exclude: list[str]) -> bool:
    return any(name == path or name.startswith(path + ".") for path in exclude)


def _owner(dotted: str) -> str:
    return dotted.rpartition(".")[0]


def _check_input_shape(shape) -> tuple:
    try:
        shape = tuple(shape)
    except TypeError:
        raise InputError(f"input_shape must be (N, H, W, C), got {shape!r}") from None
    if len(shape) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                  for v in shape):
        raise InputError(f"input_shape must be four positive integers (N, H, W, C), got {shape!r}")
    return tuple(int(v) for v in shape)


def _tree_shape(left, right, where: str) -> tuple[int, int, int]:
    """(split nodes, leaves, depth in comparisons) of one tree given its child arrays."""
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    if left.ndim != 1 or left.shape != right.shape or left.size == 0:
        raise InputError(f"{where}: left and right children must be equal-length, non-empty 1-d sequences")
    n = left.size
    if ((left < -1) | (left >= n) | (right < -1) | (right >= n)).any() or ((left == -1) != (right == -1)).any():
        raise InputError(f"{where}: child indices must be -1 (leaf, both sides) or a node index below {n}")
    depth_of = {0: 0}
    stack, seen = [0], set()
    while stack:
        node = stack.pop()
        if node in seen:
            raise InputError(f"{where}: node {node} is reached twice; not a tree")
        seen.add(node)
        if left[node] != -1:
            for child in (left[node], right[node]):
                depth_of[int(child)] = depth_of[node] + 1
                stack.append(int(child))
    if len(seen) != n:
        raise InputError(f"{where}: {n - len(seen)} node(s) are not reachable from the root")
    leaves = int((left == -1).sum())
    return n - leaves, leaves, max(depth_of.values())
