"""Read images to predict on: IDX files, ``.npy`` arrays, PNG (own decoder) and, with Pillow, other formats.

- IDX (raw or .gz, e.g. FashionMNIST's ``t10k-images-idx3-ubyte``): uint8 [N, H, W] as stored.
- ``.npy``: uint8 [N, H, W] / [H, W] / [N, H, W, C] images, or float32/float64 NHWC already normalised
  (read with ``allow_pickle=False``: an array file can never run code).
- PNG: decoded here with zlib (8- or 16-bit grayscale, RGB, palette, with or without alpha; not
  interlaced), converted to one 8-bit gray channel: luma 0.299 R + 0.587 G + 0.114 B, alpha composited
  over black. FashionMNIST pictures are light garments on a black background, 28 x 28; pictures must
  look like that, nothing is resized or inverted.
- Other image formats (JPEG, BMP, ...) are read with Pillow if it is installed, converted to gray ("L").

Every problem is an :class:`~numbnn.errors.InputError` naming the file.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from numbnn.errors import InputError, MissingDependencyError, NumbnnError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDX_MAGIC_PREFIX = b"\x00\x00"
MAX_PIXELS = 1 << 20  # 1024 x 1024: far above any input a model takes (28 x 28), decoded in well under a second
MAX_RAW_BYTES = 1 << 23  # decompressed PNG rows (16-bit RGBA at 1024 x 1024)
ZIP_SIGNATURE = b"PK\x03\x04"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def read_images(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The images in ``path``: uint8 [N, H, W] (or [N, H, W, C]) or a float NHWC array (module docstring).

    ``size``: the (height, width) the caller needs; a picture of another size is refused from its header,
    before anything is decoded (a small PNG can declare millions of pixels).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input: no such file {path}")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(PNG_SIGNATURE):
        return decode_png(path.read_bytes(), str(path), size)[None]
    if head.startswith(ZIP_SIGNATURE):
        raise InputError(f"input: {path} is a zip archive (an .npz file?), not a .npy array; save one array with np.save")
    if path.suffix.lower() == ".npy" or head.startswith(b"\x93NUMPY"):
        return _read_npy(path)
    if head.startswith(IDX_MAGIC_PREFIX) or head.startswith(b"\x1f\x8b"):
        from numbnn.datasets.idx import read_idx

        try:
            array = read_idx(path)
        except NumbnnError as error:
            raise InputError(f"input: {error}") from None
        return _as_batch(array, path)
    return _read_with_pillow(path, size)


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
    from numpy.lib import format as npy

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


def _read_with_pillow(path: Path, size=None) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(f"input: {path} is not PNG, IDX or .npy; reading other image formats "
                                     "needs Pillow (pip install pillow)") from None
    try:
        with Image.open(path) as image:  # opening reads the header only
            if size is not None and image.size != (size[1], size[0]):
                raise InputError(f"input: {path}: image of {image.size[0]}x{image.size[1]} pixels; the model takes images of "
                                 f"{size[1]}x{size[0]} (nothing is resized)")
            return np.asarray(image.convert("L"), dtype=np.uint8)[None]
    except OSError as error:
        raise InputError(f"input: {path} is not an image Pillow can read ({error})") from None


# -- PNG -----------------------------------------------------------------------------------------------


def decode_png(data: bytes, name: str = "<png>", size: tuple[int, int] | None = None) -> np.ndarray:
    """One PNG image as uint8 gray [H, W] (see the module docstring for the conversion).

    ``size``: the (height, width) required; another size is refused before decompressing anything.
    """
    header, palette, compressed = _png_chunks(data, name)
    width, height, depth, color, interlace = header
    if size is not None and (height, width) != tuple(size):
        raise InputError(f"input: {name}: PNG of {width}x{height} pixels; the model takes images of {size[1]}x{size[0]} "
                         "(nothing is resized)")
    if interlace != 0:
        raise InputError(f"input: {name}: interlaced PNG is not supported")
    samples = _CHANNELS[color]
    bits_per_pixel = samples * depth
    stride = (width * bits_per_pixel + 7) // 8
    try:
        raw = zlib.decompressobj().decompress(b"".join(compressed), height * (stride + 1) + 1)
    except zlib.error as error:
        raise InputError(f"input: {name}: corrupt PNG image data ({error})") from None
    if len(raw) < height * (stride + 1):
        raise InputError(f"input: {name}: PNG image data is truncated")
    rows = _unfilter(np.frombuffer(raw[: height * (stride + 1)], np.uint8).reshape(height, stride + 1),
                     max(1, bits_per_pixel // 8), name)
    pixels = _samples(rows, width, samples, depth)
    if color == 3:
        if palette is None:
            raise InputError(f"input: {name}: palette PNG without a PLTE chunk")
        if pixels.max(initial=0) >= len(palette):
            raise InputError(f"input: {name}: palette index out of range")
        pixels = palette[pixels[..., 0]]
        samples = 3
    elif depth != 8:
        pixels = (pixels.astype(np.float64) * (255 / (2**depth - 1)) + 0.5).astype(np.uint8) if depth < 8 else \
            (pixels >> 8).astype(np.uint8)
    return _to_gray(pixels.astype(np.float64), samples)


def _png_chunks(data: bytes, name: str):
    if not data.startswith(PNG_SIGNATURE):
        raise InputError(f"input: {name} is not a PNG file")
    position, header, palette, compressed = len(PNG_SIGNATURE), None, None, []
    while True:
        if position + 8 > len(data):
            raise InputError(f"input: {name}: PNG ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        crc = data[position + 8 + length:position + 12 + length]
        if len(body) != length or len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise InputError(f"input: {name}: corrupt PNG chunk {kind!r}")
        position += 12 + length
        if kind == b"IHDR":
            header = _png_header(body, name)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
    if header is None or not compressed:
        raise InputError(f"input: {name}: PNG without IHDR or image data")
    return header, palette, compressed


def _png_header(body: bytes, name: str):
    if len(body) != 13:
        raise InputError(f"input: {name}: malformed PNG header")
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
    valid_depths = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
    if color not in valid_depths or depth not in valid_depths[color]:
        raise InputError(f"input: {name}: unsupported PNG colour type {color} with bit depth {depth}")
    if not 1 <= width * height <= MAX_PIXELS or height * (width * _CHANNELS[color] * depth // 8 + 1) > MAX_RAW_BYTES:
        raise InputError(f"input: {name}: PNG of {width}x{height} pixels is empty or too large")
    return width, height, depth, color, interlace


def _unfilter(rows: np.ndarray, bpp: int, name: str) -> np.ndarray:
    """Undo PNG's per-row filters (None, Sub, Up, Average, Paeth) on the raw bytes."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height + 1, stride + bpp), np.int32)  # row 0 and the first bpp columns are the zero border
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        up = out[y, bpp:]
        current = out[y + 1]
        if kind == 0:
            current[bpp:] = line
        elif kind == 2:
            current[bpp:] = (line + up) & 0xFF
        elif kind in (1, 3, 4):
            for x in range(stride):  # depends on the byte just decoded on the left: sequential
                left, above, corner = current[x], up[x], out[y, x]
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + above) // 2
                else:
                    p = left + above - corner
                    pa, pb, pc = abs(p - left), abs(p - above), abs(p - corner)
                    predictor = left if pa <= pb and pa <= pc else (above if pb <= pc else corner)
                current[bpp + x] = (line[x] + predictor) & 0xFF
        else:
            raise InputError(f"input: {name}: unknown PNG filter type {kind}")
    return out[1:, bpp:].astype(np.uint8)


def _samples(rows: np.ndarray, width: int, samples: int, depth: int) -> np.ndarray:
    """[H, W, samples] integers from the unfiltered byte rows."""
    height = rows.shape[0]
    if depth == 16:
        values = rows[:, : width * samples * 2].reshape(height, width * samples, 2).astype(np.uint16)
        return ((values[..., 0] << 8) | values[..., 1]).reshape(height, width, samples)
    if depth == 8:
        return rows[:, : width * samples].reshape(height, width, samples)
    bits = np.unpackbits(rows, axis=1)[:, : width * depth].reshape(height, width, depth)
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    return (bits * weights).sum(axis=2, dtype=np.uint8)[..., None]


def _to_gray(pixels: np.ndarray, samples: int) -> np.ndarray:
    if samples in (2, 4):  # alpha over a black background
        color, alpha = pixels[..., :-1], pixels[..., -1:] / 255.0
        pixels = color * alpha
        samples -= 1
    gray = pixels[..., 0] if samples == 1 else pixels[..., :3] @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
