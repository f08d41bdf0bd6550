"""Atomic file replacement shared by every writer in numbnn (IDX files, downloads, HDF5 checkpoints).

A writer fills a hidden sibling ``.<name>.tmp-<pid>-<token>``, which is flushed to disk (fsync) and then
renamed over the target with ``os.replace``. The rename is atomic on POSIX and Windows, so a reader sees
either the previous complete file or the new complete file, never a half-written one. An exception
(including ``KeyboardInterrupt``) deletes the temporary; a SIGKILL can leave one behind, which
:func:`cleanup_stale_temps` removes on the next run.

:func:`write_bytes_atomic` is the strict path for files built in memory (the HDF5 files): every
``write`` is checked, the bytes on disk are read back and compared before the rename, so a full disk
or a lying filesystem raises instead of leaving a file that loads with the wrong content. Only a
regular file (or nothing) is ever replaced: a device node, directory or FIFO in the way is refused.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import secrets
import stat
from pathlib import Path

TEMP_MARK = ".tmp-"
_READ_CHUNK = 1 << 20
# The system call that writes bytes; a test replaces it to simulate a full disk (ENOSPC, short writes).
_os_write = os.write

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
    check_replaceable(path)
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


def check_replaceable(path) -> None:
    """Raise OSError unless ``path`` is absent or a regular file (a symlink counts as what it points to).

    os.replace would swap a device node (a copy of /dev/null, or the real one as root) for a regular
    file; numbnn refuses instead of destroying something that is not its own output.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a missing directory is reported by the writer)
        return
    except OSError as error:
        raise OSError(error.errno, f"cannot inspect it ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise OSError(errno.EISDIR, "it is a directory; give a file path")
    if not stat.S_ISREG(mode):
        raise OSError(errno.EEXIST, f"it exists and is not a regular file (a {_kind(mode)}); numbnn only replaces regular files")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def write_bytes_atomic(path, data) -> None:
    """Replace ``path`` by exactly ``data``: checked writes, fsync, read-back comparison, then rename.

    Any failure (ENOSPC, EIO, a short write that makes no progress, a read-back that differs) deletes
    the temporary and raises OSError; ``path`` keeps its previous content.
    """
    path = Path(path)
    view = memoryview(data).cast("B")
    digest = hashlib.sha256(view).digest()
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            _write_all(fd, view)
            os.fsync(fd)
        finally:
            os.close(fd)
        _verify(tmp, len(view), digest)


def _write_all(fd: int, view: memoryview) -> None:
    done = 0
    while done < len(view):
        written = _os_write(fd, view[done:])
        if not isinstance(written, int) or written <= 0:
            raise OSError(errno.ENOSPC, "the file system accepted no more bytes")
        done += written


def _verify(tmp: Path, size: int, digest: bytes) -> None:
    """Read the written file back: its size and SHA-256 must be those of the bytes we meant to write."""
    if tmp.stat().st_size != size:
        raise OSError(errno.EIO, f"wrote {size} bytes but the file holds {tmp.stat().st_size}")
    check = hashlib.sha256()
    with tmp.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            check.update(chunk)
    if check.digest() != digest:
        raise OSError(errno.EIO, "the bytes read back differ from the bytes written")


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
