"""``numbnn export``: a training checkpoint in, a packed model file out, with the sizes that matter."""

from __future__ import annotations

import os

import numbnn.io
from numbnn._outputs import check_output_path
from numbnn.inference.compiler import compile
from numbnn.inference.model import PackedModel
from numbnn.models.cost import default_input_shape, summarize


def export_checkpoint(checkpoint, out) -> dict:
    """Compile the checkpoint's model, write it to ``out``; return a JSON-ready report.

    ``packed_size_bytes`` is :func:`numbnn.models.cost.summarize`'s estimate of a packed export; the file
    holds ``payload_bytes`` of constants (never more than that estimate: batch norm is stored folded to
    two values per channel) plus the graph JSON and a few kilobytes of HDF5 structure.
    """
    check_output_path(out, {"the checkpoint being exported": checkpoint})
    model = numbnn.io.load(checkpoint)
    packed = compile(model)
    path = packed.save(out)
    return {
        "model": packed.meta["config"]["name"],
        "checkpoint": str(checkpoint),
        "out": str(path),
        "file_bytes": os.path.getsize(path),
        "checkpoint_bytes": os.path.getsize(checkpoint),
        "payload_bytes": payload_bytes(packed),
        "packed_size_bytes": summarize(model, default_input_shape(model)).total.packed_size_bytes,
        "ops": packed.op_counts(),
        "max_abs_difference_on_trace": packed.meta["report"]["max_abs_difference_on_trace"],
    }


def payload_bytes(packed: PackedModel) -> int:
    """Bytes of all constants of the packed model (weights, thresholds, parameters, trees)."""
    return sum(array.nbytes for node in packed.graph.nodes for array in node.consts.values())

