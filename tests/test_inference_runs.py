"""numbnn.inference.runs: how many images one run of a packed program takes, and predict's runs."""

import math

import numpy as np
import pytest

from numbnn.inference import compile, runs
from numbnn.models import build_model


def test_runs_are_the_largest_power_of_two_that_fits_the_cache_share():
    budget = runs.CACHE_SHARE * (32 << 20)  # 12 MiB of a 32 MiB cache
    assert runs.images_per_run(53_312, 32 << 20) == 128  # 128 * 53 KB = 6.8 MB fits, 256 would not
    assert runs.images_per_run(int(budget) // 64, 32 << 20) == 64  # exactly at the budget still fits
    assert runs.images_per_run(int(budget) // 64 + 1, 32 << 20) == 32
    assert runs.images_per_run(1, 32 << 20) == runs.MAX_IMAGES  # tiny maps: never more than the old default
    assert runs.images_per_run(1 << 30, 32 << 20) == runs.MIN_IMAGES  # maps beyond any cache: the floor
    assert runs.images_per_run(100_000, 1 << 40) == runs.MAX_IMAGES  # a host-sized cache changes nothing


@pytest.mark.parametrize("text, size", [("32768K", 32 << 20), ("2M", 2 << 20), ("1G", 1 << 30), ("512", 512), ("64k", 64 << 10)])
def test_sysfs_cache_sizes_are_parsed(text, size):
    assert runs._size_bytes(text) == size


def test_the_machines_cache_size_is_read_or_the_fallback():
    size = runs.last_level_cache_bytes()
    assert isinstance(size, int) and size >= 1 << 16


def test_program_bytes_per_image_is_its_largest_nodes_inputs_and_written_outputs():
    packed = compile(build_model("bnn-small", widths=(8, 8, 16)).eval())
    program = packed.program
    specs = program.specs

    def nbytes(value):
        return math.prod(specs[value].shape) * np.dtype(specs[value].dtype).itemsize

    read = {v for node in packed.graph.nodes for v in node.inputs} | {packed.graph.output}
    expected = max(sum(nbytes(v) for v in set(node.inputs) | (set(node.outputs) & read)) for node in packed.graph.nodes)
    assert program.bytes_per_image == expected
    assert program.bytes_per_image >= 28 * 28 * 8 * 4  # the stem's float map is read by the first block
    assert packed.cache_batch_size == runs.images_per_run(expected)


def test_predict_in_cache_sized_runs_gives_the_logits_of_one_run(monkeypatch):
    packed = compile(build_model("bnn-small", widths=(8, 8, 16)).eval())
    images = np.random.default_rng(0).integers(0, 256, (21, 28, 28), dtype=np.uint8)
    whole = packed.predict(images)  # one run: the default batch_size is larger
    monkeypatch.setattr(runs, "CACHE_SHARE", 0.0)  # no run fits: the floor, three runs, the last of 5 images
    assert packed.cache_batch_size == runs.MIN_IMAGES == 8
    np.testing.assert_array_equal(packed.predict(images, packed.cache_batch_size), whole)
    np.testing.assert_array_equal(packed.predict_proba(images, packed.cache_batch_size), packed.predict_proba(images))
