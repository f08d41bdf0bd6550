"""Keep freed heap memory in the process, so the same large arrays every call do not page-fault.

A training step allocates and frees the same large temporaries each time (activations, gradients,
column blocks), and so does a packed model's batch (one fresh output array per graph node, up to tens of
MB at batch 256). With glibc's defaults, blocks above the mmap threshold (adapting up to 32 MiB) are
unmapped on free and the top of the heap is trimmed, so the next call page-faults the memory back in,
zero-filled by the kernel: on ``reactnet-a`` at batch 128 about 15,000 minor faults and 55 ms of
system time per training step, a tenth of the step; on a packed ``reactnet-a`` at batch 256 about
2,100 faults per batch. Raising both thresholds keeps freed blocks for reuse (resident memory stays at
the peak of a step or batch). Training and packed inference call :func:`retain_freed_memory` first.
Linux with glibc only; elsewhere nothing changes. A process that must hand memory back to the system
after a batch (a long-running service between requests) sets ``NUMBNN_RETAIN_FREED_MEMORY=0``.
"""

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap and are reused
TRIM_THRESHOLD = (1 << 31) - 1  # never hand free heap top back to the kernel below 2 GiB

_done = None


def retain_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory (once per process); True if it took effect (False on other
    C libraries, or when the environment sets ``NUMBNN_RETAIN_FREED_MEMORY=0``)."""
    global _done
    if _done is None:
        _done = os.environ.get("NUMBNN_RETAIN_FREED_MEMORY", "1") != "0" and _set_malloc_thresholds()
    return _done


def _set_malloc_thresholds() -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
