"""Set how many threads numbnn's compute uses: Numba's parallel kernels and numpy's BLAS.

Numba's pool is set with ``numba.set_num_threads``. numpy's bundled OpenBLAS has no Python API for
this, so its ``*_set_num_threads*`` C function is called through ctypes when the library is loaded
(Linux; elsewhere only Numba is set and the environment variable ``OPENBLAS_NUM_THREADS`` applies).
Integer XNOR-popcount results do not depend on the thread count; float BLAS sums may round
differently with a different count, so bit-identical runs need the same ``threads``.
"""

import ctypes

import numba

from numbnn.errors import InputError


def set_threads(threads: int) -> dict:
    """Use ``threads`` threads; returns ``{"numba": n, "blas": n or None if BLAS could not be set}``."""
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise InputError(f"threads must be an integer in [1, {limit}], got {threads!r}")
    numba.set_num_threads(threads)
    return {"numba": threads, "blas": threads if _set_openblas_threads(threads) else None}


def _set_openblas_threads(threads: int) -> bool:
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line and line.rstrip().endswith(".so")})
    except OSError:
        return False
    done = False
    for path in paths:
        library = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            function = getattr(library, symbol, None)
            if function is not None:
                function(ctypes.c_int(threads))
                done = True
                break
    return done
