"""retain_freed_memory: freed large arrays are reused without page faults (Linux glibc)."""

import resource
import sys

import numpy as np
import pytest

from numbnn.train.memory import retain_freed_memory


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
