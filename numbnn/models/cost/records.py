"""The records of the cost model: a layer's cost row, a model's report, a ``cost_extra()`` hook's answer,
and the conventions and bit prices they are counted in (see :mod:`numbnn.models.cost`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

REAL_BITS = 32  # the bit width of a float operand, as layers report it
ACE_REAL_BITS = 16  # what ACE charges for a float operand (PokeBNN: bf16, so a float MAC is 16 x 16)
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


SUMMED_KEYS = ("binary_params", "real_params", "buffers", "size_bits", "packed_size_bytes", "flops", "bops", "ace",
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
