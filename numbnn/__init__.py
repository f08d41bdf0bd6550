"""numbnn: binary neural networks on ordinary CPUs.

Layers depend one way: ``kernels`` (Numba, numpy in/out) <- ``autograd`` + ``functional`` <- ``nn`` <-
``models`` <- ``train``, ``io``; ``inference`` uses ``kernels`` and ``io`` only. Attributes below are
resolved lazily so ``import numbnn`` stays fast (Numba compiles nothing until a kernel is called).
"""

from importlib import import_module

from numbnn import errors
from numbnn._version import __version__

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


def __getattr__(name: str):
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'numbnn' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


__all__ = ["__version__", "errors", *_LAZY]
