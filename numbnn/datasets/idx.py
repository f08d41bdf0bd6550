"""The IDX file format (MNIST, FashionMNIST, KMNIST, EMNIST), raw or gzip-compressed.

Layout: a 4-byte magic number ``00 00 <type> <ndims>``, then ``ndims`` big-endian uint32 dimension sizes,
then the elements in C order, big-endian. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64.

Reading checks every part of that and the exact data length before allocating the array, and reads a
gzip stream only as far as the header says it should go, so a hostile file cannot make numbnn allocate
more than its header declares plus one byte. Every problem is a :class:`numbnn.errors.DataError` that
names the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from numbnn._atomic import atomic_path
from numbnn.errors import DatasetNotFoundError, DataError, InputError

GZIP_MAGIC = b"\x1f\x8b"

# type code -> element dtype as stored (big-endian)
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
_MAX_DIM = 2**32 - 1
_CHUNK = 1 << 24


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or .gz, detected from the content) into a native-endian, writable array."""
    return read_idx_checked(path)[0]


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX content held in memory (raw or gzip-compressed); ``name`` is used in error messages."""
    return _read_stream(io.BytesIO(data), name, bytes(data[:2]) == GZIP_MAGIC)[0]


def read_idx_checked(path) -> tuple[np.ndarray, str]:
    """Read an IDX file and return ``(array, sha256 of the uncompressed IDX bytes)``.

    The digest is the same whether the file is compressed or not, which is what dataset manifests check.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DatasetNotFoundError(f"no such IDX file: {path}") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read IDX file: {error.strerror or error}") from None
    with handle:
        compressed = handle.read(2) == GZIP_MAGIC
        handle.seek(0)
        return _read_stream(handle, str(path), compressed)


def _read_stream(handle, name: str, compressed: bool) -> tuple[np.ndarray, str]:
    stream = gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle
    try:
        return _decode(stream, name)
    except (OSError, EOFError, zlib.error) as error:
        what = "gzip stream" if compressed else "file"
        raise DataError(f"{name}: corrupt or truncated {what}: {error}") from None


def _decode(stream, name: str) -> tuple[np.ndarray, str]:
    digest = hashlib.sha256()
    magic = stream.read(4)
    digest.update(magic)
    if len(magic) < 4:
        raise DataError(f"{name}: not an IDX file: {len(magic)} bytes, shorter than the 4-byte magic number")
    if magic[0] or magic[1]:
        raise DataError(f"{name}: not an IDX file: magic number {magic.hex()} does not start with 0000")
    code, ndims = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{name}: unknown IDX element type 0x{code:02X} in magic number (known: {known})")
    if ndims == 0:
        raise DataError(f"{name}: IDX magic number declares 0 dimensions")
    header = stream.read(4 * ndims)
    digest.update(header)
    if len(header) < 4 * ndims:
        raise DataError(
            f"{name}: truncated IDX header: {ndims} dimensions need {4 * ndims} bytes, found {len(header)}"
        )
    shape = struct.unpack(f">{ndims}I", header)
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    body = _read_exactly(stream, expected)
    if len(body) < expected:
        raise DataError(
            f"{name}: truncated IDX data: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} bytes, "
            f"found {len(body)}"
        )
    if stream.read(1):
        raise DataError(f"{name}: unexpected bytes after the {expected} data bytes that shape {shape} declares")
    digest.update(body)
    array = np.frombuffer(body, dtype=dtype).reshape(shape)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return array, digest.hexdigest()


def _read_exactly(stream, count: int) -> bytearray:
    """Read up to ``count`` bytes in chunks: memory grows with the bytes really present, not the header's claim."""
    body = bytearray()
    while len(body) < count:
        chunk = stream.read(min(_CHUNK, count - len(body)))
        if not chunk:
            break
        body += chunk
    return body


def write_idx(path, array, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically; gzip-compressed if ``compress`` (default: name ends in .gz).

    Supported dtypes: uint8, int8, int16, int32, float32, float64; at least one dimension. The gzip
    header carries no name or time, so equal arrays give byte-identical files.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODE_OF.get(array.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(d.newbyteorder("=").name for d in IDX_DTYPES.values())
        raise InputError(f"array: dtype {array.dtype} cannot be stored in IDX (supported: {names})")
    if array.ndim == 0:
        raise InputError("array: IDX needs at least one dimension, got a 0-d array")
    if max(array.shape) > _MAX_DIM:
        raise InputError(f"array: dimension sizes must fit in uint32, got shape {array.shape}")
    if not path.parent.is_dir():
        raise InputError(f"path: directory {path.parent} does not exist")
    if compress is None:
        compress = path.suffix == ".gz"
    content = (
        bytes([0, 0, code, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    )
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as zipped:
                zipped.write(content)
        else:
            handle.write(content)
    return path
