"""Read images to predict on: IDX files, ``.npy`` arrays, and pictures (PNG, JPEG, BMP, GIF, WebP) via Pillow.

- IDX (raw or .gz, e.g. FashionMNIST's ``t10k-images-idx3-ubyte``): uint8 [N, H, W] as stored.
- ``.npy``: uint8 [N, H, W] / [H, W] / [N, H, W, C] images, or float32/float64 NHWC already normalised
  (read with ``allow_pickle=False``: an array file can never run code).
- Pictures: decoded by Pillow, converted to one 8-bit gray channel: luma 0.299 R + 0.587 G + 0.114 B
  (Pillow's "L"), alpha composited over black, 16-bit samples scaled to 8 bits (v >> 8). FashionMNIST
  pictures are light garments on a black background, 28 x 28; pictures must look like that, nothing
  is resized or inverted.

A picture is untrusted input: only the formats above are tried, and its size is read from the header
and checked against :data:`MAX_PIXELS` before any pixel is decoded (a small file can claim, and
decompress to, gigabytes). Every problem is an :class:`~numbnn.errors.InputError` naming the file.
"""

from __future__ import annotations

import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy
from PIL import Image

from numbnn.datasets.idx import read_idx
from numbnn.errors import InputError, NumbnnError

IDX_MAGIC_PREFIX = b"\x00\x00"
MAX_PIXELS = 1 << 20  # 1024 x 1024: far above any input a model takes (a FashionMNIST picture has 784)
PICTURE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
# What a damaged or hostile file can raise from Pillow's parsers and decoders.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error,
                  Image.DecompressionBombError, Image.DecompressionBombWarning)
ZIP_SIGNATURE = b"PK\x03\x04"


def read_images(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The images in ``path``: uint8 [N, H, W] (or [N, H, W, C]) or a float NHWC array (module docstring).

    ``size``: the (height, width) the caller needs; a picture of another size is refused from its header,
    before anything is decoded (a small PNG can declare millions of pixels).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input: no such file {path}")
    with path.open("rb") as file:
        head = file.read(8)
    if head.startswith(ZIP_SIGNATURE):
        raise InputError(f"input: {path} is a zip archive (an .npz file?), not a .npy array; save one array with np.save")
    if path.suffix.lower() == ".npy" or head.startswith(b"\x93NUMPY"):
        return _read_npy(path)
    if head.startswith(IDX_MAGIC_PREFIX) or head.startswith(b"\x1f\x8b"):
        try:
            array = read_idx(path)
        except NumbnnError as error:
            raise InputError(f"input: {error}") from None
        return _as_batch(array, path)
    return read_picture(path, size)[None]


def read_picture(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """One picture as uint8 gray [H, W] (module docstring), its size checked before it is decoded.

    ``size``: the (height, width) required; a picture of another size is refused from its header.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PICTURE_FORMATS) as image:  # reads the header only
                width, height = image.size
                if not 1 <= width * height <= MAX_PIXELS:
                    raise InputError(f"input: {path}: a picture of {width}x{height} pixels is empty or too large "
                                     f"(more than {MAX_PIXELS} pixels)")
                if size is not None and (height, width) != tuple(size):
                    raise InputError(f"input: {path}: a picture of {width}x{height} pixels; the model takes images of "
                                     f"{size[1]}x{size[0]} (nothing is resized)")
                return _to_gray(image)
    except InputError:
        raise
    except Image.UnidentifiedImageError:
        raise InputError(f"input: {path} is not IDX, .npy or a picture ({', '.join(PICTURE_FORMATS)})") from None
    except _DECODE_ERRORS as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InputError(f"input: {path}: damaged or unreadable picture ({reason})") from None


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:  # Pillow's "L" conversion would clip these at 255
        return (np.clip(np.asarray(image, np.int64), 0, 65535) >> 8).astype(np.uint8)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _read_npy(path: Path) -> np.ndarray:
    _check_npy_header(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"input: {path} is not a readable .npy array ({error})") from None
    return _as_batch(array, path)


def _check_npy_header(path: Path) -> None:
    """Compare the size the header declares with the bytes the file holds, before numpy allocates it.

    A 2 KB file may declare 1e11 images; numpy would try to allocate them all and fail with MemoryError.
    """
    try:
        with path.open("rb") as handle:
            version = npy.read_magic(handle)
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read_header(handle, max_header_size=10_000)
            offset = handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as error:
        raise InputError(f"input: {path} is not a readable .npy array ({error})") from None
    if dtype.hasobject:
        raise InputError(f"input: {path} holds Python objects; only numeric arrays are read (no pickles)")
    declared = math.prod(shape) * dtype.itemsize
    held = path.stat().st_size - offset
    if declared != held:
        raise InputError(f"input: {path} declares {dtype} {shape} ({declared:,} bytes) but holds {held:,} bytes of data")


def _as_batch(array: np.ndarray, path) -> np.ndarray:
    if array.dtype == np.uint8:
        if array.ndim == 2:
            return array[None]
        if array.ndim in (3, 4):
            return array
    elif array.dtype.kind == "f" and array.ndim == 4:
        return array
    raise InputError(f"input: {path} holds {array.dtype} {array.shape}; expected uint8 [N, H, W] images "
                     "(or [H, W], [N, H, W, C]) or float NHWC [N, H, W, C]")
