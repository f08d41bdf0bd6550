"""Packed model files: one HDF5 file with the graph as JSON and every constant in a few flat datasets.

Layout (format "numbnn-packed-model", version 2, inside the checksummed envelope of :mod:`numbnn.io.hdf5`)::

    /             attrs: format, format_version, numbnn_version, created,
                         meta (JSON: source model config, input_shape [H, W, C], mean, std, classes, report)
    /graph        JSON string: {"input": id, "output": id, "input_spec": {"dtype", "shape"},
                                "nodes": [{"op", "inputs", "output", "attrs",
                                           "consts": {name: {"dtype", "offset", "shape"}},
                                           "extra_outputs" (only on a node that writes several values)}]}
    /constants/<dtype>   one 1-D dataset per dtype (uint64 packed weights, float32, int32, int16, uint8);
                         a constant is ``shape``'s product of elements from ``offset``

Everything a prediction needs and nothing else: packed weights, thresholds, folded per-channel
parameters, float layers, the tree arrays. Few datasets keep the HDF5 overhead to a few kilobytes,
so the file size is the payload (see :func:`numbnn.models.cost.summarize`'s ``packed_size_bytes``).

Loading validates everything before building anything (format, version, checksum, JSON structure,
every constant reference, every op and shape: :meth:`numbnn.inference.graph.Graph.check`); a bad file
raises :class:`~numbnn.errors.CheckpointError` (or :class:`~numbnn.errors.FormatVersionError`) and
no code from a file is ever executed.

Versions: 2 added ``extra_outputs`` (a node writing several values; the fused conv that packs its own
output). Version 1 files still load (their nodes write one value each); a version 1 reader refuses a
version 2 file with :class:`~numbnn.errors.FormatVersionError`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np

from numbnn.errors import CheckpointError, InputError
from numbnn.inference.graph import Graph, Node
from numbnn.inference.ops import Spec
from numbnn.io.hdf5 import atomic_h5, open_numbnn_file, verify_envelope, write_header

FORMAT = "numbnn-packed-model"
FORMAT_VERSION = 2
DTYPES = ("uint64", "float32", "int32", "int16", "uint8", "bool")
_STORED_AS = {"bool": "uint8"}  # h5py has no plain bool dataset; bools are stored as 0/1 bytes
_NODE_KEYS = {"op", "inputs", "output", "attrs", "consts"}
_EXTRA_OUTPUTS_SINCE = 2  # the format version that added a node's "extra_outputs"


def write_graph(path, graph: Graph, meta: dict) -> Path:
    """Write a packed model's ``graph`` and ``meta`` to ``path`` atomically (a failure leaves any previous
    file intact)."""
    blobs: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, int] = {}
    nodes = []
    for node in graph.nodes:
        refs = {}
        for name, array in node.consts.items():
            dtype = array.dtype.name
            if dtype not in DTYPES:
                raise InputError(f"{node.op}: constant {name!r} has dtype {dtype}, which packed files do not store")
            refs[name] = {"dtype": dtype, "offset": sizes.get(dtype, 0), "shape": list(array.shape)}
            blobs.setdefault(dtype, []).append(array.reshape(-1))
            sizes[dtype] = sizes.get(dtype, 0) + array.size
        entry = {"op": node.op, "inputs": node.inputs, "output": node.output, "attrs": node.attrs, "consts": refs}
        if node.extra_outputs:
            entry["extra_outputs"] = node.extra_outputs
        nodes.append(entry)
    layout = {"input": graph.input, "output": graph.output,
              "input_spec": {"dtype": graph.input_spec.dtype, "shape": list(graph.input_spec.shape)},
              "nodes": nodes}
    path = Path(path)
    with atomic_h5(path) as file:
        write_header(file, FORMAT, FORMAT_VERSION)
        file.attrs["meta"] = json.dumps(meta, allow_nan=False)
        file.create_dataset("graph", data=json.dumps(layout, allow_nan=False), dtype=h5py.string_dtype())
        group = file.create_group("constants", track_order=True)
        for dtype, parts in blobs.items():
            data = np.concatenate(parts).astype(_STORED_AS.get(dtype, dtype))
            group.create_dataset(dtype, data=data)
    return path


def read_graph(path) -> tuple[Graph, dict]:
    """The checked graph and meta of a packed model file (see the module docstring)."""
    with open_numbnn_file(path, FORMAT, FORMAT_VERSION) as (file, version):
        meta = _json_attr(file, "meta", path)
        if "graph" not in file or not isinstance(file["graph"], h5py.Dataset) or not h5py.check_string_dtype(file["graph"].dtype):
            raise CheckpointError(f"{path}: /graph is missing or not a JSON string")
        graph = _parse_json(file["graph"].asstr()[()], path, "graph")
        blobs = _read_blobs(file, path)
    graph, meta = _build_graph(graph, blobs, path, version), _check_meta(meta, path)
    if tuple(meta["input_shape"]) != graph.input_spec.shape:
        raise CheckpointError(f"{path}: meta input_shape {meta['input_shape']} differs from the graph's {graph.input_spec.shape}")
    return graph, meta


def is_packed_model(path) -> bool:
    """True if ``path`` is an intact numbnn file whose header says it is a packed model.

    The checksum is verified first: HDF5 itself can loop forever on damaged metadata.
    """
    try:
        verify_envelope(path)
        with h5py.File(path, "r") as file:
            return file.attrs.get("format") == FORMAT
    except (CheckpointError, OSError, ValueError):
        return False


def _json_attr(file, name, path):
    text = file.attrs.get(name)
    if not isinstance(text, str):
        raise CheckpointError(f"{path}: root attribute {name!r} is missing or not a string")
    return _parse_json(text, path, name)


def _parse_json(text, path, what):
    try:
        return json.loads(text)
    except ValueError as error:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({error})") from None


def _read_blobs(file, path) -> dict[str, np.ndarray]:
    group = file.get("constants")
    if not isinstance(group, h5py.Group):
        raise CheckpointError(f"{path}: /constants is missing")
    blobs = {}
    for name, dataset in group.items():
        expected = np.dtype(_STORED_AS.get(name, name)) if name in DTYPES else None
        if expected is None or not isinstance(dataset, h5py.Dataset) or dataset.dtype != expected or dataset.ndim != 1:
            raise CheckpointError(f"{path}: /constants/{name} is not a 1-D {name} dataset")
        blobs[name] = dataset[()]
        if blobs[name].dtype.kind == "f" and not np.isfinite(blobs[name]).all():
            raise CheckpointError(f"{path}: /constants/{name} holds NaN or inf values (weights must be finite)")
    return blobs


def _build_graph(graph, blobs, path, version) -> Graph:
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise CheckpointError(f"{path}: graph must be an object with a node list")
    spec = graph.get("input_spec")
    if (not isinstance(spec, dict) or spec.get("dtype") != "float32" or not isinstance(spec.get("shape"), list)
            or not all(_is_int(v) and v >= 1 for v in spec["shape"])):
        raise CheckpointError(f"{path}: graph input_spec must be float32 with a positive integer shape")
    nodes = []
    optional = {"extra_outputs"} if version >= _EXTRA_OUTPUTS_SINCE else set()
    for index, entry in enumerate(graph["nodes"]):
        where = f"{path}: graph node {index}"
        if not isinstance(entry, dict) or not _NODE_KEYS <= set(entry) <= _NODE_KEYS | optional:
            raise CheckpointError(f"{where}: must have exactly the keys {sorted(_NODE_KEYS)}"
                                  + (f" (and optionally {sorted(optional)})" if optional else ""))
        if not isinstance(entry["op"], str) or not isinstance(entry["attrs"], dict) or not isinstance(entry["consts"], dict):
            raise CheckpointError(f"{where}: op must be a string, attrs and consts objects")
        if not isinstance(entry["inputs"], list) or not all(_is_int(v) for v in entry["inputs"]) or not _is_int(entry["output"]):
            raise CheckpointError(f"{where}: inputs and output must be value numbers")
        extra = entry.get("extra_outputs", [])
        if not isinstance(extra, list) or not all(_is_int(v) for v in extra):
            raise CheckpointError(f"{where}: extra_outputs must be a list of value numbers")
        consts = {name: _constant(ref, blobs, f"{where} constant {name!r}") for name, ref in entry["consts"].items()}
        nodes.append(Node(entry["op"], entry["inputs"], entry["output"], entry["attrs"], consts, extra))
    if not _is_int(graph.get("input")) or not _is_int(graph.get("output")):
        raise CheckpointError(f"{path}: graph input/output must be value numbers")
    return Graph(nodes, graph["input"], graph["output"], Spec("float32", tuple(spec["shape"])))


def _constant(ref, blobs, where) -> np.ndarray:
    if not isinstance(ref, dict) or set(ref) != {"dtype", "offset", "shape"}:
        raise CheckpointError(f"{where}: must be {{dtype, offset, shape}}")
    dtype, offset, shape = ref["dtype"], ref["offset"], ref["shape"]
    if not isinstance(dtype, str) or dtype not in blobs:
        raise CheckpointError(f"{where}: no /constants/{dtype} dataset")
    if not _is_int(offset) or offset < 0 or not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
        raise CheckpointError(f"{where}: offset and shape must be non-negative integers")
    count = math.prod(shape)
    blob = blobs[dtype]
    if offset + count > blob.size:
        raise CheckpointError(f"{where}: elements {offset}..{offset + count} lie outside /constants/{dtype} ({blob.size})")
    return blob[offset:offset + count].astype(dtype, copy=False).reshape(shape)


def _check_meta(meta, path) -> dict:
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta must be a JSON object")
    shape, mean, std = meta.get("input_shape"), meta.get("mean"), meta.get("std")
    if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) and v >= 1 for v in shape):
        raise CheckpointError(f"{path}: meta input_shape must be three positive integers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (mean, std)) or std <= 0:
        raise CheckpointError(f"{path}: meta mean/std must be finite numbers, std > 0")
    config = meta.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise CheckpointError(f"{path}: meta config must be an object with a model name")
    classes = meta.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise CheckpointError(f"{path}: meta classes must be a list of strings")
    return meta


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
