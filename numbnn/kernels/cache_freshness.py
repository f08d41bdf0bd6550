"""Numba's on-disk cache of the kernels, kept fresh across edits and upgrades of any kernel file.

Numba checks a cached function against a hash of its own source file only. A kernel whose callee lives in
another file (the driver in ``binary_conv_driver.py`` calling an epilogue of ``steps.py``) therefore loads its
cached machine code of the *old* callee after the callee's file changes. An upgrade in place leaves the old
``__pycache__/*.nbi`` and ``*.nbc`` files behind (pip removes only the files it installed), so a release whose
callers are unchanged would run the previous release's callees. Here one hash covers every kernel source; when
it differs from the one recorded beside the cache, numbnn's cached kernels are deleted once and compile afresh.
Numba treats an entry that vanished under it as a miss, so another process loading at that moment recompiles
too. A cache directory numbnn cannot write (a read-only install) is left as it is.
"""

import hashlib
import os
from pathlib import Path

MARKER = "numbnn-kernels.sha256"  # beside the cache entries: the sources' hash they were compiled from


def sources_hash(directory: Path) -> str:
    """sha256 of the names and contents of the ``*.py`` files in ``directory`` (sorted by name)."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def drop_stale_caches(cache_dir: Path, digest: str) -> bool:
    """Delete the Numba cache entries (``*.nbi``, ``*.nbc``) in ``cache_dir`` unless its marker holds ``digest``,
    then record ``digest``. Returns whether entries were dropped; on any OSError leaves the rest as it is."""
    cache_dir = Path(cache_dir)
    marker = cache_dir / MARKER
    try:
        if marker.read_text().strip() == digest:
            return False
    except OSError:  # no marker yet (a fresh cache, or one from before the marker existed)
        pass
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for entry in [*cache_dir.glob("*.nbi"), *cache_dir.glob("*.nbc")]:
            entry.unlink(missing_ok=True)
        temporary = cache_dir / f"{MARKER}.{os.getpid()}"
        temporary.write_text(digest + "\n")
        os.replace(temporary, marker)
    except OSError:
        return False
    return True


def keep_kernel_caches_fresh(kernel) -> bool:
    """:func:`drop_stale_caches` for the kernels of this package, in the directory where Numba caches ``kernel``
    (any of them; none if caching is off or NUMBA_DISABLE_JIT left a plain function)."""
    cache_dir = getattr(getattr(kernel, "_cache", None), "_cache_path", None)
    return cache_dir is not None and drop_stale_caches(cache_dir, sources_hash(Path(__file__).resolve().parent))
