"""Packed model files: round trip, sizes against summarize()'s packed size, and hostile files.

A hostile file below is rewritten with a valid envelope (checksum) and header, so each check inside
the loader is reached; every one must end in a CheckpointError naming the file, never in a crash or
in running anything from the file.
"""

import copy
import json

import h5py
import numpy as np
import pytest

from numbnn.errors import CheckpointError, FormatVersionError
from numbnn.inference import compile, load
from numbnn.inference.export import payload_bytes
from numbnn.inference.format import FORMAT, FORMAT_VERSION, is_packed_model
from numbnn.io import atomic_h5, write_header
from numbnn.io import save as save_checkpoint
from numbnn.models import available_models, build_model
from numbnn.models.cost import summarize

# HDF5 structure (superblock, object headers, the 512-byte numbnn envelope) on top of the constants and
# the graph's JSON; a handful of datasets keeps it small and independent of the model's size.
FILE_OVERHEAD_BYTES = 16 * 1024


def small_reactxgb():
    model = build_model("reactxgb", trees=2, max_depth=3)
    rng = np.random.default_rng(0)
    model.fit_trees(rng.standard_normal((200, 256)).astype(np.float32), rng.integers(0, 10, 200), threads=1)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("packed") / "bnn.h5"
    packed = compile(build_model("bnn-small", widths=(8, 8, 16)))
    packed.save(path)
    return packed, path


def read_raw(path):
    with h5py.File(path, "r") as file:
        meta = json.loads(file.attrs["meta"])
        graph = json.loads(file["graph"].asstr()[()])
        blobs = {name: dataset[()] for name, dataset in file["constants"].items()}
    return graph, blobs, meta


def write_raw(path, graph, blobs, meta, version=FORMAT_VERSION, graph_text=None):
    with atomic_h5(path) as file:
        write_header(file, FORMAT, version)
        file.attrs["meta"] = json.dumps(meta)
        file.create_dataset("graph", data=graph_text if graph_text is not None else json.dumps(graph),
                            dtype=h5py.string_dtype())
        group = file.create_group("constants")
        for name, data in blobs.items():
            group.create_dataset(name, data=data)


def test_round_trip_predicts_identically(saved, tmp_path):
    packed, path = saved
    loaded = load(path)
    images = np.random.default_rng(0).integers(0, 256, (9, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.predict(images), packed.predict(images))
    assert loaded.meta == packed.meta and loaded.op_counts() == packed.op_counts()
    assert is_packed_model(path) and not is_packed_model(tmp_path / "missing.h5")
    loaded.save(tmp_path / "again.h5")
    (graph_a, blobs_a, _), (graph_b, blobs_b, _) = read_raw(tmp_path / "again.h5"), read_raw(path)
    assert graph_a == graph_b and blobs_a.keys() == blobs_b.keys()
    for name in blobs_a:
        np.testing.assert_array_equal(blobs_a[name], blobs_b[name])


@pytest.mark.parametrize("name", [spec.name for spec in available_models()])
def test_file_size_follows_the_summarys_packed_size(name, tmp_path):
    model = small_reactxgb() if name == "reactxgb" else build_model(name)
    packed = compile(model)
    path = tmp_path / "m.h5"
    packed.save(path)
    estimate = summarize(model).total.packed_size_bytes
    payload = payload_bytes(packed)
    graph_json = len(json.dumps(read_raw(path)[0]))
    binary_weight_bytes = sum(n.consts["weight"].nbytes for n in packed.graph.nodes
                              if n.op in ("bconv", "bconv_steps", "bdense"))
    assert binary_weight_bytes <= payload <= estimate
    assert payload + graph_json <= path.stat().st_size <= payload + graph_json + FILE_OVERHEAD_BYTES
    assert path.stat().st_size <= estimate + graph_json + FILE_OVERHEAD_BYTES


# ---- hostile files ------------------------------------------------------------------------------------------


def _first(graph, op):
    ops = ("bconv", "bconv_steps") if op == "bconv" else (op,)
    return next(node for node in graph["nodes"] if node["op"] in ops)


def _mutations():
    def unknown_op(g, b, m):
        _first(g, "reduce")["op"] = "exec"

    def code_in_ufunc(g, b, m):
        node = _first(g, "reduce")
        node.update(op="ufunc", attrs={"fn": "__import__", "operands": ["input:0"]}, consts={})

    def offset_outside(g, b, m):
        ref = _first(g, "bconv")["consts"]["weight"]
        ref["offset"] = int(b[ref["dtype"]].size)

    def read_before_written(g, b, m):
        g["nodes"][0]["inputs"] = [g["nodes"][-1]["output"]]

    def weight_words_mismatch(g, b, m):
        _first(g, "bconv")["attrs"]["in_channels"] = 200

    def wrong_blob_dtype(g, b, m):
        b["uint64"] = b["uint64"].astype(np.int64)

    def missing_blob(g, b, m):
        del b["float32"]

    def extra_node_key(g, b, m):
        g["nodes"][0]["code"] = "print(1)"

    def class_count(g, b, m):
        m["classes"] = ["a", "b"]

    def batch_changing_reshape(g, b, m):
        node = _first(g, "reduce")
        node.update(op="reshape", attrs={"shape": [-1]}, consts={})

    def bad_stage(g, b, m):
        _first(g, "elementwise")["attrs"]["stages"] = ["os.system"]

    def negative_shape(g, b, m):
        _first(g, "bconv")["consts"]["weight"]["shape"][0] = -8

    def input_shape(g, b, m):
        m["input_shape"] = [32, 32, 1]

    def no_output(g, b, m):
        g["output"] = 10_000

    def second_output_written_twice(g, b, m):
        node = next(n for n in g["nodes"] if "extra_outputs" in n)
        node["extra_outputs"] = [g["input"]]

    def second_output_of_a_one_value_op(g, b, m):
        _first(g, "reduce")["extra_outputs"] = [10_000]

    def second_output_not_a_number(g, b, m):
        next(n for n in g["nodes"] if "extra_outputs" in n)["extra_outputs"] = "all"

    def shuffle_that_moves_pixels(g, b, m):  # a packed output's "channel shuffle" that transposes the image
        node = next(n for n in g["nodes"] if n["op"] == "bconv_steps" and "extra_outputs" in n)
        node["attrs"]["pack_moves"] = [{"op": "transpose", "inputs": [0], "attrs": {"axes": [0, 2, 1, 3]}}]
        node["attrs"]["pack_source_shape"] = [5, 5, 3]

    def pool_of_three(g, b, m):  # fused pooling takes 2x2 windows only
        next(n for n in g["nodes"] if n["op"] == "bconv_steps")["attrs"]["pool_size"] = 3

    return [unknown_op, code_in_ufunc, offset_outside, read_before_written, weight_words_mismatch,
            wrong_blob_dtype, missing_blob, extra_node_key, class_count, batch_changing_reshape, bad_stage,
            negative_shape, input_shape, no_output, second_output_written_twice, second_output_of_a_one_value_op,
            second_output_not_a_number, shuffle_that_moves_pixels, pool_of_three]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_hostile_graphs_are_refused(saved, tmp_path, mutate):
    graph, blobs, meta = (copy.deepcopy(part) for part in read_raw(saved[1]))
    mutate(graph, blobs, meta)
    path = tmp_path / "hostile.h5"
    write_raw(path, graph, blobs, meta)
    with pytest.raises(CheckpointError, match="hostile.h5"):
        load(path)


def test_malformed_tree_arrays_are_refused(tmp_path):
    packed = compile(small_reactxgb())
    path = tmp_path / "trees.h5"
    packed.save(path)
    graph, blobs, meta = read_raw(path)
    ref = _first(graph, "trees")["consts"]["feature"]
    features = blobs["int16"]
    features[ref["offset"] + ref["shape"][0] - 1] = 0  # the last node of the last tree becomes a split
    write_raw(path, graph, blobs, meta)
    with pytest.raises(CheckpointError, match="pre-order"):
        load(path)


def test_unreadable_files_are_refused(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="no such file"):
        load(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not a model" * 100)
    with pytest.raises(CheckpointError):
        load(junk)
    corrupt = tmp_path / "corrupt.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load(corrupt)
    graph, blobs, meta = read_raw(path)
    write_raw(tmp_path / "text.h5", graph, blobs, meta, graph_text="{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        load(tmp_path / "text.h5")


def test_a_checkpoint_or_a_future_file_is_not_a_packed_model(saved, tmp_path):
    checkpoint = tmp_path / "ckpt.h5"
    save_checkpoint(build_model("bnn-small", widths=(8, 8)), checkpoint)
    with pytest.raises(CheckpointError, match="numbnn-packed-model"):
        load(checkpoint)
    graph, blobs, meta = read_raw(saved[1])
    write_raw(tmp_path / "future.h5", graph, blobs, meta, version=FORMAT_VERSION + 1)
    with pytest.raises(FormatVersionError, match="newer"):
        load(tmp_path / "future.h5")


def as_version_1(graph):
    """The graph as format version 1 stored it: each pack and each pool a node of its own, no node with two
    outputs."""
    nodes = []
    for node in graph["nodes"]:
        nodes.append(node)
        extra = node.pop("extra_outputs", None) or []
        if node["attrs"].pop("pool_size", None):  # the pooled value is the last output
            nodes.append({"op": "avg_pool", "inputs": [node["output"]], "output": extra.pop(), "consts": {},
                          "attrs": {"kernel_size": [2, 2], "stride": [2, 2], "padding": "same"}})
        if extra:
            threshold, groups = node["consts"].pop("pack_threshold"), node["attrs"].pop("pack_groups")
            nodes.append({"op": "pack", "inputs": [node["output"]], "output": extra[0], "attrs": {"groups": groups},
                          "consts": {"threshold": threshold}})
    return {**graph, "nodes": nodes}


def test_version_1_files_still_load_and_version_1_refuses_two_outputs(saved, tmp_path):
    packed, path = saved
    graph, blobs, meta = read_raw(path)
    assert FORMAT_VERSION == 2 and any("extra_outputs" in node for node in graph["nodes"])
    write_raw(tmp_path / "v1.h5", as_version_1(copy.deepcopy(graph)), blobs, meta, version=1)
    old = load(tmp_path / "v1.h5")
    fused = sum("pack_groups" in n.attrs for n in packed.graph.nodes)
    assert fused >= 1 and old.op_counts()["pack"] == packed.op_counts().get("pack", 0) + fused
    images = np.random.default_rng(3).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(old.predict(images), packed.predict(images))
    write_raw(tmp_path / "v1_two_outputs.h5", graph, blobs, meta, version=1)
    with pytest.raises(CheckpointError, match="exactly the keys"):
        load(tmp_path / "v1_two_outputs.h5")
