"""Atomic file replacement shared by every writer in numbnn (IDX files, downloads, HDF5 checkpoints).

A writer fills a hidden sibling ``.<name>.tmp-<pid>-<token>``, which is flushed to disk (fsync) and then
renamed over the target with ``os.replace``. The rename is atomic on POSIX and Windows, so a reader sees
either the previous complete file or the new complete file, never a half-written one. An exception
(including ``KeyboardInterrupt``) deletes the temporary; a SIGKILL can leave one behind, which
:func:`cleanup_stale_temps` removes on the next run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from pathlib import Path

TEMP_MARK = ".tmp-"

# Temporaries this process is writing right now: never reclaimed by cleanup_stale_temps.
_ACTIVE: set[Path] = set()


def temp_path_for(path: Path) -> Path:
    """The hidden temporary next to ``path`` that a writer fills before the rename."""
    return path.parent / f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; on success fsync it and rename it to ``path``.

    On any exception the temporary is deleted and ``path`` keeps its previous content (or stays absent).
    """
    path = Path(path)
    tmp = temp_path_for(path)
    _ACTIVE.add(tmp)
    try:
        yield tmp
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        _ACTIVE.discard(tmp)
    # Make the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cleanup_stale_temps(directory, name: str) -> list[Path]:
    """Delete temporaries of ``directory/name`` left by killed writers; return the paths removed.

    A temporary is stale when the process id in its name no longer runs. Temporaries of live processes
    (including this one's open writers) are kept, so a concurrent writer is never disturbed.
    """
    removed = []
    for candidate in Path(directory).glob(f".{glob.escape(name)}{TEMP_MARK}*"):
        if candidate in _ACTIVE or _writer_alive(candidate, name):
            continue
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed.append(candidate)
    return removed


def _writer_alive(candidate: Path, name: str) -> bool:
    pid_text = candidate.name[len(name) + 1 + len(TEMP_MARK) :].split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # our own writers are in _ACTIVE; anything else with our pid is a leftover
    if os.name != "posix":
        return True  # os.kill(pid, 0) is not a probe on Windows; keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot tell): keep it
    return True
