"""numbnn: binary neural networks on ordinary CPUs.

Layers depend one way: ``kernels`` (Numba, numpy in/out) <- ``autograd`` + ``functional`` <- ``nn`` <-
``models`` <- ``train``, ``io``, ``inference``, ``sweep`` <- ``cli`` (the ``numbnn`` command). ``inference`` compiles a model by tracing it through
``autograd`` and ``functional``, but loading and predicting use ``kernels`` and ``io`` only. Attributes below are
resolved lazily so ``import numbnn`` stays fast (Numba compiles nothing until a kernel is called).
"""

import os

# OpenBLAS's worker threads spin for 2^28 cycles (~0.1 s) after each call before sleeping, so in a
# training step that alternates BLAS products with Numba's parallel loops they keep both cores busy
# and slow the Numba threads down (on 2 cores, CPU time per reactnet-a step at 2 threads fell by
# about a third with 2^4). Read when OpenBLAS loads: effective if numbnn is imported before numpy.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from numbnn import errors  # noqa: E402
from numbnn._lazy import lazy_getattr  # noqa: E402
from numbnn._version import __version__  # noqa: E402

_LAZY = {
    "Tensor": ("numbnn.autograd", "Tensor"),
    "no_grad": ("numbnn.autograd", "no_grad"),
    "save": ("numbnn.io", "save"),
    "load": ("numbnn.io", "load"),
    "kernels": ("numbnn.kernels", None),
    "functional": ("numbnn.functional", None),
    "nn": ("numbnn.nn", None),
    "optim": ("numbnn.optim", None),
    "models": ("numbnn.models", None),
    "datasets": ("numbnn.datasets", None),
    "inference": ("numbnn.inference", None),
    "train": ("numbnn.train", None),
    "io": ("numbnn.io", None),
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["__version__", "errors", *_LAZY]
