"""Pricing a model from its layers: one eval-mode forward pass traced as ops, each MAC op counted for the
layer whose weight it multiplies by, and each layer's parameters, buffers and MACs made into a cost row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.autograd.function import trace
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.functional import binary, conv, quantizers
from numbnn.functional.linear import Linear as LinearOp
from numbnn.kernels import pack_bits
from numbnn.models.cost.records import (ACE_REAL_BITS, FLOAT32_BYTES, REAL_BITS, SUMMED_KEYS, CostExtra, CostReport,
                                        LayerCost)
from numbnn.nn import BinaryConv2d, BinaryLinear, Conv2d, Linear, Module

MAX_INPUT_SIZE = 1024  # pricing traces a real forward pass; ImageNet models are priced at 224

_CONV_LAYERS = (Conv2d, BinaryConv2d)
_LINEAR_LAYERS = (Linear, BinaryLinear)


def summarize(model: Module, input_shape: Sequence[int] = (1, 28, 28, 1)) -> CostReport:
    """Price ``model`` (conventions: :mod:`numbnn.models.cost`) with one eval-mode forward pass on zeros of ``input_shape``.

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
        for key in SUMMED_KEYS:
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
    if len(shape) != 4:
        raise InputError(f"input_shape must be four positive integers (N, H, W, C), got {shape!r}")
    return tuple(check_int(v, f"input_shape {axis}") for axis, v in zip("NHWC", shape))


