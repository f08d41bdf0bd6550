"""HDF5 files numbnn writes and reads: written atomically, checksummed, verified before HDF5 parses them.

Every numbnn file is ordinary HDF5 with a 512-byte user block (a standard HDF5 feature: space at the
start of the file that HDF5 skips; the superblock follows at offset 512). numbnn fills it with::

    numbnn-hdf5\\n{"size": <file size in bytes>, "sha256": "<hex digest of bytes 512..size>"}\\n

and zero padding. Reading checks this envelope *before* the HDF5 library sees the file: a truncated,
corrupted or foreign file is refused with a precise message, and never reaches HDF5's parser, which can
hang or misread on damaged metadata (HDF5 does not checksum raw data or the global heap at all).
Consequently a read yields exactly the bytes that were written, or an error.

Inside, root attributes ``format`` (e.g. "numbnn-checkpoint"), ``format_version`` (int),
``numbnn_version`` and ``created`` (UTC, ISO 8601) say what the file is. Files are written with
``libver=("v110", "v110")`` (readable by HDF5 >= 1.10) and creation-order tracking, so groups list
entries in the order written.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
from pathlib import Path

import h5py
import numpy as np

from numbnn._atomic import check_replaceable, write_bytes_atomic
from numbnn._version import __version__
from numbnn.errors import CheckpointError, FormatVersionError, InputError, NumbnnError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ENVELOPE_MAGIC = b"numbnn-hdf5\n"
USERBLOCK_SIZE = 512
LIBVER = ("v110", "v110")
_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_h5(path):
    """Yield an ``h5py.File`` open for writing; on success it replaces ``path`` atomically.

    The file is built in memory, not on disk: libhdf5 does not report a full disk reliably while it
    writes (it can write zeros under a later valid checksum, fail to flush, or crash). After the block
    the finished image is stamped with its size and checksum and handed to
    :func:`numbnn._atomic.write_bytes_atomic` (checked writes, fsync, read-back, rename). On any
    exception (Ctrl-C included) nothing is left on disk and ``path`` is untouched. An OS error (full
    disk, unwritable directory, ``path`` a directory or device) becomes one CheckpointError naming ``path``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"path: directory {path.parent} does not exist")
    try:
        check_replaceable(path)  # fail before building anything
        buffer = io.BytesIO()
        with h5py.File(buffer, "w", userblock_size=USERBLOCK_SIZE, libver=LIBVER, track_order=True) as file:
            yield file
        image = bytearray(buffer.getbuffer())
        del buffer
        _stamp_envelope(image)
        write_bytes_atomic(path, image)
    except OSError as error:
        reason = error.strerror or (os.strerror(error.errno) if error.errno else str(error))
        raise CheckpointError(f"cannot write {path}: {reason}") from None


def write_header(file: h5py.File, format_name: str, format_version: int) -> None:
    """Set the identifying root attributes every numbnn file starts with."""
    file.attrs["format"] = format_name
    file.attrs["format_version"] = int(format_version)
    file.attrs["numbnn_version"] = __version__
    file.attrs["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _stamp_envelope(image: bytearray) -> None:
    """Fill the user block of an in-memory HDF5 image with its size and the SHA-256 of the rest."""
    digest = hashlib.sha256(memoryview(image)[USERBLOCK_SIZE:]).hexdigest()
    header = ENVELOPE_MAGIC + json.dumps({"size": len(image), "sha256": digest}).encode() + b"\n"
    image[:USERBLOCK_SIZE] = header.ljust(USERBLOCK_SIZE, b"\0")


def _sha256_rest(handle) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def verify_envelope(path) -> None:
    """Check that ``path`` is a complete, unmodified numbnn HDF5 file, without parsing it as HDF5.

    Raises CheckpointError saying what the file is instead: missing, empty, not HDF5, HDF5 from another
    program, truncated, or corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    try:
        with path.open("rb") as handle:
            head = handle.read(USERBLOCK_SIZE)
            if not head.startswith(ENVELOPE_MAGIC):
                raise CheckpointError(f"{path}: {_describe_foreign(head, handle)}")
            expected = _parse_envelope(head, path)
            size = path.stat().st_size
            if size < expected["size"]:
                raise CheckpointError(f"{path}: truncated file: {size} of {expected['size']} bytes")
            if size > expected["size"]:
                raise CheckpointError(f"{path}: {size - expected['size']} unexpected bytes after the end of the file")
            handle.seek(USERBLOCK_SIZE)
            if _sha256_rest(handle) != expected["sha256"]:
                raise CheckpointError(f"{path}: corrupt file: checksum mismatch")
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read file: {error.strerror or error}") from None


def _parse_envelope(head: bytes, path: Path) -> dict:
    line = head[len(ENVELOPE_MAGIC):].split(b"\n", 1)[0]
    try:
        envelope = json.loads(line)
        size, digest = envelope["size"], envelope["sha256"]
    except (ValueError, TypeError, KeyError):
        raise CheckpointError(f"{path}: corrupt numbnn header") from None
    if type(size) is not int or not isinstance(digest, str):
        raise CheckpointError(f"{path}: corrupt numbnn header")
    return envelope


def _describe_foreign(head: bytes, handle) -> str:
    """What a file without a numbnn header is (HDF5 looks for its signature at 0, 512, 1024, ...)."""
    if not head:
        return "empty file (0 bytes), not an HDF5 file"
    offset = 0
    while True:
        handle.seek(offset)
        signature = handle.read(len(HDF5_SIGNATURE))
        if signature == HDF5_SIGNATURE:
            return "HDF5 file not written by numbnn (no numbnn header)"
        if len(signature) < len(HDF5_SIGNATURE):
            return "not an HDF5 file"
        offset = max(2 * offset, USERBLOCK_SIZE)


@contextlib.contextmanager
def open_numbnn_file(path, format_name: str, supported_version: int):
    """Open a numbnn HDF5 file for reading after verifying it; yield ``(file, format_version)``.

    Raises CheckpointError for a missing, empty, non-HDF5, foreign, truncated or corrupt file or one of
    another numbnn format, and FormatVersionError for a format newer than ``supported_version``. Any
    error while the caller reads inside the block becomes a CheckpointError naming the file.
    """
    path = Path(path)
    verify_envelope(path)
    with reading_errors(path):
        file = h5py.File(path, "r")
    with file, reading_errors(path):
        found = file.attrs.get("format")
        if found != format_name:
            raise CheckpointError(f"{path}: is a {found!r} file, not a {format_name} file")
        version = file.attrs.get("format_version")
        if not isinstance(version, np.integer) or version < 1:
            raise CheckpointError(f"{path}: invalid format_version {version!r}")
        if version > supported_version:
            raise FormatVersionError(
                f"{path}: file format version {int(version)} is newer than this numbnn ({__version__}) "
                f"supports ({supported_version}); upgrade numbnn to read it"
            )
        yield file, int(version)


@contextlib.contextmanager
def reading_errors(path):
    """Turn any non-numbnn exception raised while reading ``path`` into a CheckpointError."""
    try:
        yield
    except NumbnnError:
        raise
    except Exception as error:  # a damaged file can provoke any h5py/numpy/json error: explain, never crash
        raise CheckpointError(f"{path}: unreadable file ({type(error).__name__}: {error})") from error
