"""How many images one run of a packed program may take to keep its largest node's maps in the cache.

A packed node reads and writes float maps of tens of KB per image (bnn-small's 28x28x32 map is 100 KB), so at
batch 256 one node's inputs and outputs are tens of MB, more than the last-level cache, and every node
streams its maps through DRAM. In runs whose largest node touches at most CACHE_SHARE of the last-level
cache, the next node finds its input still in the cache; each run also pays the program's per-node
dispatch once more (about its batch-1 latency). :attr:`numbnn.inference.model.PackedModel.cache_batch_size`
offers this run size as a ``batch_size`` for ``predict``; it is not the default.

Measured on an AMD EPYC (Zen 4, 32 MB L3, 2 threads, 2026-12-07), `python3 benchmarks/run_sizes.py --model M
... --sizes auto,32,64,128 --rounds 40`, each size against one run of 256 images, medians of the paired ratios
(`benchmarks/results/run-sizes-zen4-2026-12-07.json`): on an otherwise idle machine reactnet-a 0.878 (runs of
128), reactxgb 0.901 (128), bnn-small 0.937 (64), pokebnn 0.859 (32), ftbnn 0.957 (64), rb-net 0.908 (128),
each the best of 32 / 64 / 128 or within 1% of it (a first series of 30 rounds agreed except pokebnn, 4% off
its best there). The largest node's bytes per image (:attr:`numbnn.inference.graph.Program.bytes_per_image`:
53, 53, 138, 226, 113 and 75 KB) do not order these optima exactly; 3/8 of the L3 is the share that fits
them. But with one busy process beside numbnn's two threads (`run-sizes-under-load-zen4-2026-12-07.json`),
every run adds parallel regions that wait on a descheduled thread: runs of 128 took 1.12-1.29x the time of
one run, runs of 64 1.44-1.80x, pokebnn's runs of 32 2.16x. So predict keeps one run of up to 256 images
unless asked. Other CPUs were not measured; a larger cache gives larger runs, up to :data:`MAX_IMAGES`. The
logits do not depend on the run size (each image's arithmetic is the same in any batch; the tests compare
them).
"""

from __future__ import annotations

import functools
from pathlib import Path

CACHE_SHARE = 0.375  # of the last-level cache a run's largest node may touch
MAX_IMAGES = 256  # images per run at most (predict's default batch_size)
MIN_IMAGES = 8  # a floor: runs of 8 took 1.2-1.5x the time of runs of 32 (a probe), per-node dispatch dominating
FALLBACK_CACHE_BYTES = 32 << 20  # where the OS does not say (the L3 of the machines measured)


@functools.cache
def last_level_cache_bytes() -> int:
    """The largest data or unified cache Linux reports for CPU 0 (sysfs), else :data:`FALLBACK_CACHE_BYTES`."""
    largest = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            largest = max(largest, _size_bytes((index / "size").read_text().strip()))
        except (OSError, ValueError):
            continue
    return largest or FALLBACK_CACHE_BYTES


def _size_bytes(text: str) -> int:
    """'32768K' -> 33554432 (sysfs writes sizes with a K or M suffix)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def images_per_run(bytes_per_image: int, cache_bytes: int | None = None) -> int:
    """The largest power of two n in [MIN_IMAGES, MAX_IMAGES] with n * ``bytes_per_image`` at most
    CACHE_SHARE of ``cache_bytes`` (default: :func:`last_level_cache_bytes`); MIN_IMAGES if none fits."""
    budget = CACHE_SHARE * (last_level_cache_bytes() if cache_bytes is None else cache_bytes)
    n = MAX_IMAGES
    while n > MIN_IMAGES and n * bytes_per_image > budget:
        n //= 2
    return n
