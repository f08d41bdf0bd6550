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


def test_a_changed_kernel_source_drops_every_cached_kernel(tmp_path):
    """Numba checks a cached kernel against its own file only; one hash of all kernel sources, recorded beside
    the cache, drops every entry once when any file changed (an edited callee, an upgrade in place)."""
    from numbnn.kernels.cache_freshness import MARKER, drop_stale_caches, sources_hash

    sources = tmp_path / "kernels"
    sources.mkdir()
    (sources / "caller.py").write_text("def caller(): return callee()\n")
    (sources / "callee.py").write_text("def callee(): return 1\n")
    before = sources_hash(sources)
    cache = tmp_path / "cache"
    cache.mkdir()
    entries = [cache / "caller.caller-1.py311.nbi", cache / "caller.caller-1.py311.1.nbc"]
    for entry in entries:
        entry.write_bytes(b"old")
    (cache / "caller.cpython-311.pyc").write_bytes(b"bytecode")
    assert drop_stale_caches(cache, before)  # no marker yet: dropped
    assert not any(entry.exists() for entry in entries) and (cache / "caller.cpython-311.pyc").exists()
    assert (cache / MARKER).read_text().strip() == before
    for entry in entries:
        entry.write_bytes(b"compiled from these sources")
    assert not drop_stale_caches(cache, sources_hash(sources))  # nothing changed: kept
    assert all(entry.exists() for entry in entries)
    (sources / "callee.py").write_text("def callee(): return 2\n")  # only the callee's file
    assert sources_hash(sources) != before and drop_stale_caches(cache, sources_hash(sources))
    assert not any(entry.exists() for entry in entries)


def test_an_unwritable_cache_is_left_alone(tmp_path, monkeypatch):
    import os

    from numbnn.kernels.cache_freshness import drop_stale_caches

    (tmp_path / "a.nbi").write_bytes(b"x")

    def refuse(*args):
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", refuse)
    assert drop_stale_caches(tmp_path, "digest") is False  # no exception, nothing recorded
    assert not (tmp_path / "numbnn-kernels.sha256").exists()


def test_the_package_cache_records_the_current_sources():
    from pathlib import Path

    from numbnn.kernels.cache_freshness import MARKER, sources_hash
    from numbnn.kernels.packing import _pack_parallel

    marker = Path(_pack_parallel._cache._cache_path) / MARKER
    assert marker.read_text().strip() == sources_hash(Path(numbnn.kernels.__file__).parent)
