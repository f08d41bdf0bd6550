"""The ops a packed model runs: numpy and Numba only (no autograd), each checking its own description.

Float ops repeat the float model's float32 arithmetic step by step (same operations, same order, same
dtypes), so a packed model reproduces the float simulation's values, not just approximately: the
binary layers are exact integers in both, and every float step is the same IEEE operation.

Value kinds: float32 activations; int32 accumulators of binary layers (exact +-1 dot products);
uint64 packed signs (bit 1 = negative, channels packed along the last axis, per group word-aligned).

One module per family: :mod:`.base` (specs, checks, registry), :mod:`.packing`, :mod:`.binary`,
:mod:`.steps`, :mod:`.layers`, :mod:`.shape`, :mod:`.gates`; the tree head lives in :mod:`numbnn.inference.trees`.
"""

from numbnn.inference.ops.base import OPS, WORD, GraphError, Op, Spec, build_op, register_op
from numbnn.inference.ops.packing import MOVEMENTS, GatherPack, Pack, PackAccumulator, movement_index
from numbnn.inference.ops.steps import STAGES, Elementwise, Ufunc
from numbnn.inference.ops.binary import BinaryConv, BinaryConvSteps, BinaryDense
from numbnn.inference.ops.layers import AvgPool, Conv2d, Conv2dSteps, Linear, MaxPool, Reduce
from numbnn.inference.ops.shape import Concat, Pad, Reshape, Slice, Transpose
from numbnn.inference.ops.gates import SqueezeExcite

__all__ = [
    "MOVEMENTS", "OPS", "STAGES", "WORD", "AvgPool", "BinaryConv", "BinaryConvSteps", "BinaryDense", "Concat",
    "Conv2d", "Conv2dSteps", "Elementwise", "GatherPack", "GraphError", "Linear", "MaxPool", "Op", "Pack", "PackAccumulator", "Pad",
    "Reduce", "Reshape", "Slice", "Spec", "SqueezeExcite", "Transpose", "Ufunc", "build_op", "movement_index", "register_op",
]
