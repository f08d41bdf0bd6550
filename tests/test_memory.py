"""retain_freed_memory: freed large arrays are reused without page faults (Linux glibc)."""

import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from numbnn.inference import compile
from numbnn.memory import retain_freed_memory
from numbnn.models import build_model


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_reallocating_a_freed_large_array_does_not_fault():
    assert retain_freed_memory() is True
    assert retain_freed_memory() is True  # idempotent
    size = 48 << 20  # above glibc's largest default mmap threshold (32 MiB)
    block = np.ones(size // 4, dtype=np.float32)
    del block
    before = _minor_faults()
    block = np.empty(size // 4, dtype=np.float32)
    block.fill(2.0)  # touch every page
    faults = _minor_faults() - before
    # Unmapped and faulted back in, even with 2 MiB transparent huge pages, this is >= 24 faults.
    assert faults < size // (2 << 20) // 2, f"{faults} minor faults re-touching a reused {size >> 20} MiB block"
    assert block[::4096].sum() == 2.0 * len(block[::4096])


_REUSE_AFTER_PREDICT = (
    "import resource, sys, numpy as np, numbnn.inference as inference; "
    "inference.load(sys.argv[1]).predict(np.zeros((2, 28, 28), np.uint8)); "
    "block = np.ones(12 << 20, np.float32); del block; "
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; "
    "block = np.empty(12 << 20, np.float32); block.fill(2.0); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
@pytest.mark.parametrize("setting, retained", [(None, True), ("0", False)])
def test_packed_inference_keeps_freed_memory_too(tmp_path, setting, retained):
    """A packed model's first batch sets the same malloc thresholds as training (in a fresh process,
    where nothing else has set them): a freed 48 MiB array is then reused without page faults, unless
    NUMBNN_RETAIN_FREED_MEMORY=0 keeps glibc's defaults (the block is unmapped and faulted back in)."""
    path = tmp_path / "m.h5"
    compile(build_model("bnn-small", widths=(8, 8))).save(path)
    env = {k: v for k, v in os.environ.items() if k != "NUMBNN_RETAIN_FREED_MEMORY"}
    if setting is not None:
        env["NUMBNN_RETAIN_FREED_MEMORY"] = setting
    run = subprocess.run([sys.executable, "-c", _REUSE_AFTER_PREDICT, str(path)], capture_output=True, text=True,
                         check=True, env=env)
    faults = int(run.stdout.strip())
    assert (faults < 12) == retained, f"{faults} minor faults re-touching a freed 48 MiB block"
