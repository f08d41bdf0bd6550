"""What the kernels run on: versions, CPU, vector features, Numba threads and cache (``numbnn env``)."""

import os
import platform
import sys
import time
from pathlib import Path

import llvmlite
import numba as nb
import numpy as np
from llvmlite import binding as llvm

from numbnn import __version__
from numbnn.kernels.intrinsics import popcount

# Flags reported, by their /proc/cpuinfo names, with LLVM's name for the same feature.
_FEATURES = {"avx2": "avx2", "avx512f": "avx512f", "avx512_vpopcntdq": "avx512vpopcntdq"}
_CHAIN_CYCLES = 5  # shift + xor (1 cycle each) + 64-bit multiply (3 cycles) per step of _dependent_chain


def environment() -> dict:
    """A copy-paste description of the machine and libraries for bug reports and benchmark records."""
    host_features = llvm.get_host_cpu_features()
    target_cpu = nb.config.CPU_NAME or llvm.get_host_cpu_name()
    return {
        "numbnn": __version__,
        "numba": nb.__version__,
        "llvmlite": llvmlite.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_flags": {name: bool(host_features.get(llvm_name, False)) for name, llvm_name in _FEATURES.items()},
        "numba_target_cpu": target_cpu,
        "numba_target_features": nb.config.CPU_FEATURES or "host",
        "vector_popcount_in_generated_code": target_has_vector_popcount(),
        "threading_layer": threading_layer(),
        "threads": nb.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "cache_dir": numba_cache_dir(),
    }


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def target_has_vector_popcount() -> bool:
    """True if the code Numba generates here (host CPU, or NUMBA_CPU_NAME/FEATURES) uses AVX-512 VPOPCNTQ.

    Compiles a small popcount loop and reads its assembly, which is what actually runs.
    """
    def total_popcount(words):
        total = 0
        for i in range(words.size):
            total += popcount(words[i])
        return total

    probe = nb.njit(total_popcount)  # not cached: cached code cannot be inspected
    probe(np.zeros(8, dtype=np.uint64))
    return "vpopcntq" in probe.inspect_asm(probe.signatures[0])


def threading_layer() -> str:
    """Numba's threading layer; it is only chosen at the first parallel call, so make one."""
    try:
        return nb.threading_layer()
    except ValueError:
        _touch_thread_pool(np.zeros(4))
        return nb.threading_layer()


def numba_cache_dir() -> str:
    """Where compiled kernels are cached: $NUMBA_CACHE_DIR, else __pycache__ beside the kernel sources."""
    if nb.config.CACHE_DIR:
        return str(Path(nb.config.CACHE_DIR).resolve())
    return str(Path(__file__).resolve().parent / "__pycache__")


def cpu_frequency_ghz(steps: int = 20_000_000) -> float:
    """Measured core clock: a chain of dependent operations of known latency, best of three runs.

    Timed in this thread's CPU time, so time spent descheduled on a busy machine does not count."""
    _dependent_chain(10, np.uint64(1))
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        _dependent_chain(steps, np.uint64(3))
        best = min(best, time.thread_time() - start)
    return _CHAIN_CYCLES * steps / best / 1e9


@nb.njit(cache=True)
def _dependent_chain(steps, seed):
    # Each step needs the previous result, so the loop runs at one step per 5 cycles whatever the CPU's
    # width; the multiply keeps LLVM from folding steps together.
    x = seed
    for _ in range(steps):
        x = (x ^ (x >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
    return x


@nb.njit(parallel=True, cache=True)
def _touch_thread_pool(x):
    for i in nb.prange(x.size):
        x[i] += 1.0
