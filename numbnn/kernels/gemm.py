"""Matrix products split across threads by numbnn, each part a single-threaded BLAS call.

OpenBLAS's own threads synchronise inside every call by spinning on shared flags. When another
process holds one of the cores (a shared machine, a second training run), the thread that kept
its core spins while its partner waits to be scheduled: on 2 cores with one other busy process,
conv-shaped products took up to 4 times *longer* with 2 BLAS threads than with 1, and a reactnet-a
training step at 2 threads 5 times longer than at 1. So :func:`numbnn.threads.set_threads` runs
BLAS on one thread and sets :data:`threads` here; :func:`matmul` then cuts the output rows into
that many parts and runs them at once on a small thread pool (numpy releases the GIL inside BLAS).
A part whose partner is descheduled just finishes later; nothing spins. Until ``set_threads`` is
called, products go straight to numpy (and OpenBLAS threads as it was configured).
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many multiply-adds a product runs whole: a thread hand-off costs tens of microseconds.
SPLIT_MIN_MACS = 1 << 22

threads = 1
_pool: ThreadPoolExecutor | None = None


def set_gemm_threads(count: int) -> None:
    """Split products into ``count`` parts from now on (1: no splitting)."""
    global threads, _pool
    threads = int(count)
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    if threads > 1:
        _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="numbnn-gemm")


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for 2-d arrays, rows split across :data:`threads`.

    ``out``: a result buffer with unit column stride (C-contiguous, or a block of columns of one, as a
    grouped convolution writes each group's part), which BLAS fills in place.
    """
    rows = a.shape[0]
    if threads == 1 or _pool is None or rows < threads or rows * a.shape[1] * b.shape[1] < SPLIT_MIN_MACS:
        return np.matmul(a, b) if out is None else np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((rows, b.shape[1]), dtype=np.result_type(a, b))
    bounds = [rows * i // threads for i in range(threads + 1)]
    parts = [_pool.submit(np.matmul, a[lo:hi], b, out=out[lo:hi]) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    np.matmul(a[: bounds[1]], b, out=out[: bounds[1]])
    for part in parts:
        part.result()
    return out
