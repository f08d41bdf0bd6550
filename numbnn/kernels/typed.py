"""Kernels with explicit Numba signatures, compiled (or loaded from Numba's on-disk cache) on first use.

``nb.njit(signature)`` compiles when its module is imported, so every typed kernel of the package, used
or not, cost its cache load in every process: 25 loads and 0.26 s of a 1.0 s `numbnn predict` of one
image on reactnet-a (AMD EPYC Zen 4, 2026-12-07), which runs five of them. :func:`typed_njit` takes the
same arguments as ``nb.njit`` and builds the dispatcher on the kernel's first call (or the first look at
an attribute of the dispatcher, such as ``signatures`` or ``py_func``): a process loads what it runs.

The typed kernels are entry points called from Python with arrays their callers checked; a jitted
function cannot call one (Numba cannot type the wrapper), and none does.
"""

import functools
import importlib
import threading

import numba as nb


class TypedKernel:
    """A kernel decorated with :func:`typed_njit`: calls go to its Numba dispatcher, built on first use."""

    def __init__(self, function, signatures, options: dict):
        functools.update_wrapper(self, function)
        self._function, self._signatures, self._options = function, signatures, options
        self._dispatcher = None
        self._lock = threading.Lock()  # Dask sweeps run kernels from several threads

    @property
    def dispatcher(self):
        """The ``nb.njit`` dispatcher with every signature compiled (or loaded from the cache)."""
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    self._dispatcher = nb.njit(self._signatures, **self._options)(self._function)
        return self._dispatcher

    def __call__(self, *args):
        return (self._dispatcher or self.dispatcher)(*args)

    def __reduce__(self):  # pickled by reference, as a module-level function is
        return _module_attribute, (self.__module__, self.__qualname__)

    def __getattr__(self, name):  # signatures, overloads, py_func, inspect_asm, ...
        if name.startswith("_"):  # not the dispatcher's: e.g. _dispatcher itself on a copy made without __init__
            raise AttributeError(name)
        return getattr(self.dispatcher, name)


def _module_attribute(module: str, name: str):
    """The kernel a pickled :class:`TypedKernel` names (its module's attribute)."""
    return getattr(importlib.import_module(module), name)


def typed_njit(signatures, **options):
    """``nb.njit(signatures, **options)`` deferred to the kernel's first use (module docstring)."""
    return lambda function: TypedKernel(function, signatures, options)
