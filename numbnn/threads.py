"""Set how many threads numbnn's compute uses: Numba's parallel kernels and the float products.

Numba's pool is set with ``numba.set_num_threads``; every BLAS library loaded in the process (numpy's
and scipy's OpenBLAS, or MKL, BLIS) through ``threadpoolctl``, which finds them on every platform.

By default (``blas="split"``) OpenBLAS runs on one thread and numbnn's convolution products are cut
into ``threads`` row blocks run side by side (:mod:`numbnn.kernels.gemm`): OpenBLAS's own threads
spin-wait inside every call and slow down several-fold when another process shares the cores.
``blas="native"`` gives OpenBLAS the threads instead (benchmarks of BLAS itself use it).
Integer XNOR-popcount results do not depend on the thread count; float BLAS sums may round
differently with a different count, so bit-identical runs need the same ``threads``.
"""

import numba
from threadpoolctl import ThreadpoolController

from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.kernels.gemm import set_gemm_threads

_configured = False


def set_threads(threads: int, blas: str = "split") -> dict:
    """Use ``threads`` threads; returns ``{"numba": n, "blas": BLAS threads or None if BLAS could not
    be set, "gemm_parts": row blocks per product}`` (see the module docstring for ``blas``)."""
    global _configured
    threads = check_int(threads, "threads", 1, numba.config.NUMBA_NUM_THREADS)
    if blas not in ("split", "native"):
        raise InputError(f"blas must be 'split' or 'native', got {blas!r}")
    numba.set_num_threads(threads)
    blas_threads = 1 if blas == "split" else threads
    parts = threads if blas == "split" else 1
    set_gemm_threads(parts)
    _configured = True
    return {"numba": threads, "blas": blas_threads if _set_blas_threads(blas_threads) else None, "gemm_parts": parts}


def current_threads() -> int:
    """The thread count training computes with now (Numba's, which is also the products' row blocks)."""
    return numba.get_num_threads()


def default_threads() -> None:
    """Unless :func:`set_threads` was called, use all of Numba's threads with split products (training
    and packed inference call this first: OpenBLAS threads beside Numba's spinning workers slowed a packed
    reactnet-a at batch 256 from 11.9 to 26 ms on the 2-core Intel Xeon)."""
    if not _configured:
        set_threads(numba.get_num_threads())


def _set_blas_threads(threads: int) -> bool:
    """Limit every loaded BLAS library to ``threads`` (until changed again); False if none is loaded."""
    blas = ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        return False
    blas.limit(limits=threads)
    return True
