"""Every kernel that asks for Numba's on-disk cache can be cached.

A jitted function that reads a dynamic global (``nb.get_num_threads()`` called inside it, a ctypes
pointer, a large global array) compiles and runs, but Numba only warns and recompiles it in every new
process: `numbnn predict` of one image then takes seconds instead of a fraction of one. The kernels
with explicit signatures compile on import, so the check below sees all of them; the lazily typed
ones are checked for whatever this test session has compiled so far."""

import importlib
import pkgutil

from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher

import numbnn.kernels


def _cached_dispatchers():
    for info in pkgutil.iter_modules(numbnn.kernels.__path__):
        module = importlib.import_module(f"numbnn.kernels.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.__module__ == module.__name__ and not isinstance(value._cache, NullCache):
                yield f"{module.__name__}.{name}", value


def test_explicitly_typed_kernels_exist_and_are_cached():
    typed = [name for name, dispatcher in _cached_dispatchers() if dispatcher.signatures]
    assert "numbnn.kernels.binary_conv_driver.binary_conv" in typed


def test_no_cached_kernel_holds_dynamic_globals():
    uncachable = [name for name, dispatcher in _cached_dispatchers()
                  for result in dispatcher.overloads.values() if result.library.has_dynamic_globals]
    assert uncachable == []
