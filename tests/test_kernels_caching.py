"""Every kernel that asks for Numba's on-disk cache can be cached, and typed kernels load only when used.

A jitted function that reads a dynamic global (``nb.get_num_threads()`` called inside it, a ctypes
pointer, a large global array) compiles and runs, but Numba only warns and recompiles it in every new
process: `numbnn predict` of one image then takes seconds instead of a fraction of one. Every typed
kernel (:mod:`numbnn.kernels.typed`) is built here; the untyped ones are checked for whatever this test
session has compiled so far."""

import importlib
import pickle
import pkgutil
import subprocess
import sys

from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher

import numbnn.kernels
from numbnn.kernels.typed import TypedKernel


def _kernels():
    for info in pkgutil.iter_modules(numbnn.kernels.__path__):
        module = importlib.import_module(f"numbnn.kernels.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, (CPUDispatcher, TypedKernel)) and value.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", value


def _cached_dispatchers():
    for name, kernel in _kernels():
        dispatcher = kernel.dispatcher if isinstance(kernel, TypedKernel) else kernel
        if not isinstance(dispatcher._cache, NullCache):
            yield name, dispatcher


def test_typed_kernels_are_found_and_cached():
    typed = [name for name, dispatcher in _cached_dispatchers() if dispatcher.signatures]
    assert "numbnn.kernels.binary_conv_driver.binary_conv" in typed
    assert "numbnn.kernels.steps.run_stages" in typed


def test_no_cached_kernel_holds_dynamic_globals():
    uncachable = [name for name, dispatcher in _cached_dispatchers()
                  for result in dispatcher.overloads.values() if result.library.has_dynamic_globals]
    assert uncachable == []


def test_importing_the_packed_runtime_loads_no_typed_kernel():
    """Loading happens on first use: a process that predicts with one model does not pay for the others'
    kernels (a fresh interpreter, since this one has built them all above)."""
    code = ("import numbnn.inference.model, numbnn.kernels, pkgutil, importlib\n"
            "from numbnn.kernels.typed import TypedKernel\n"
            "mods = [importlib.import_module('numbnn.kernels.' + m.name) for m in pkgutil.iter_modules(numbnn.kernels.__path__)]\n"
            "typed = [v for m in mods for v in vars(m).values() if isinstance(v, TypedKernel)]\n"
            "print(len(typed), sum(v._dispatcher is not None for v in typed))")
    found, built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(found) >= 10 and int(built) == 0


def test_a_typed_kernel_pickles_by_reference_and_names_its_function():
    from numbnn.kernels import pooling

    kernel = pooling._short_rows_mean
    assert pickle.loads(pickle.dumps(kernel)) is kernel
    assert kernel.__name__ == "_short_rows_mean" and kernel.py_func.__name__ == "_short_rows_mean"
