"""numbnn.io.images: the images `numbnn predict` reads (IDX, .npy, pictures through Pillow).

The PNG writer at the top builds PNG files byte by byte (a chosen filter per row, any bit depth, a forged
header), so the reader is checked on files Pillow did not write.
"""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from numbnn.datasets.idx import write_idx
from numbnn.errors import InputError
from numbnn.io.images import MAX_PIXELS, read_images, read_picture

# ---- naive PNG writer ------------------------------------------------------------------------------------


def png_bytes(samples: np.ndarray, color: int, depth: int = 8, filters=(0,), palette=None) -> bytes:
    """PNG of ``samples`` [H, W, S] (integers of ``depth`` bits); row y uses filter filters[y % len]."""
    height, width, _ = samples.shape
    if depth == 16:
        raw = samples.astype(">u2").view(np.uint8).reshape(height, -1)
    elif depth == 8:
        raw = samples.astype(np.uint8).reshape(height, -1)
    else:
        bits = ((samples[..., 0, None] >> np.arange(depth - 1, -1, -1)) & 1).reshape(height, -1).astype(np.uint8)
        raw = np.packbits(bits, axis=1)
    bpp = max(1, samples.shape[2] * depth // 8)
    lines, previous = [], np.zeros(raw.shape[1], np.int64)
    for y, row in enumerate(raw.astype(np.int64)):
        kind = filters[y % len(filters)]
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int64), previous[:-bpp]])
        if kind == 0:
            predictor = np.zeros_like(row)
        elif kind == 1:
            predictor = left
        elif kind == 2:
            predictor = previous
        elif kind == 3:
            predictor = (left + previous) // 2
        else:
            p = left + previous - corner
            pa, pb, pc = abs(p - left), abs(p - previous), abs(p - corner)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, corner))
        lines.append(bytes([kind]) + ((row - predictor) & 0xFF).astype(np.uint8).tobytes())
        previous = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    chunks = chunk(b"IHDR", header)
    if palette is not None:
        chunks += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    return b"\x89PNG\r\n\x1a\n" + chunks + chunk(b"IDAT", zlib.compress(b"".join(lines))) + chunk(b"IEND", b"")


# ---- input readers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4)])
def test_gray_png_reads_exactly(tmp_path, filters):
    gray = np.random.default_rng(sum(filters)).integers(0, 256, (9, 28, 1))
    (tmp_path / "gray.png").write_bytes(png_bytes(gray, 0, filters=filters))
    np.testing.assert_array_equal(read_images(tmp_path / "gray.png"), gray[None, ..., 0])


@pytest.mark.parametrize("depth", [1, 2, 4, 16])
def test_png_bit_depths_scale_to_8_bits(tmp_path, depth):
    values = np.random.default_rng(depth).integers(0, 2**depth, (5, 11, 1))
    expected = np.rint(values[..., 0] * 255 / (2**depth - 1)) if depth < 8 else values[..., 0] >> 8
    (tmp_path / "deep.png").write_bytes(png_bytes(values, 0, depth, filters=(0, 4)))
    np.testing.assert_array_equal(read_picture(tmp_path / "deep.png"), expected)


def test_colour_is_luma_and_alpha_is_composited_over_black(tmp_path):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (6, 7, 3))
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    (tmp_path / "rgb.png").write_bytes(png_bytes(rgb, 2, filters=(1, 4)))
    assert np.abs(read_picture(tmp_path / "rgb.png") - luma).max() <= 1
    palette = rng.integers(0, 256, (4, 3))
    indices = rng.integers(0, 4, (6, 7, 1))
    (tmp_path / "palette.png").write_bytes(png_bytes(indices, 3, depth=2, palette=palette))
    assert np.abs(read_picture(tmp_path / "palette.png") - (palette @ [0.299, 0.587, 0.114])[indices[..., 0]]).max() <= 1
    rgba = np.concatenate([rgb, rng.integers(0, 256, (6, 7, 1))], axis=2)
    (tmp_path / "rgba.png").write_bytes(png_bytes(rgba, 6))
    assert np.abs(read_picture(tmp_path / "rgba.png") - luma * rgba[..., 3] / 255.0).max() <= 1


def test_jpeg_reads_close_to_the_original(tmp_path):
    gray = np.zeros((28, 28), np.uint8)
    gray[6:22, 8:20] = 200  # a light garment on black
    Image.fromarray(gray).save(tmp_path / "shirt.jpg", quality=95)
    got = read_images(tmp_path / "shirt.jpg")
    assert got.shape == (1, 28, 28) and np.abs(got[0].astype(int) - gray).mean() < 3


def test_damaged_png_is_one_line_input_error(tmp_path):
    data = bytearray(png_bytes(np.zeros((4, 4, 1)), 0))
    data[20] ^= 1  # inside IHDR: its CRC no longer matches
    (tmp_path / "crc.png").write_bytes(bytes(data))
    noise = np.random.default_rng(0).integers(0, 256, (30, 30, 1))
    (tmp_path / "cut.png").write_bytes(png_bytes(noise, 0)[:400])  # image data cut off
    (tmp_path / "text.txt").write_text("not a picture")
    for name in ("crc.png", "cut.png", "text.txt"):
        with pytest.raises(InputError, match=name) as error:
            read_images(tmp_path / name)
        assert "\n" not in str(error.value)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose (valid) header claims width x height pixels over the data of one pixel."""
    one = png_bytes(np.zeros((1, 1, 1)), 0)
    header = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))
    return one[:8] + ihdr + one[8 + len(ihdr):]


@pytest.mark.parametrize("side", [3000, 40000])  # above our limit; 40000 is above Pillow's own bomb limit too
def test_huge_picture_is_refused_before_decoding(tmp_path, monkeypatch, side):
    (tmp_path / "bomb.png").write_bytes(png_claiming(side, side))
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self))
    with pytest.raises(InputError, match="bomb.png") as error:
        read_images(tmp_path / "bomb.png")
    assert decoded == [] and "\n" not in str(error.value)
    if side == 3000:
        assert f"3000x3000 pixels is empty or too large (more than {MAX_PIXELS} pixels)" in str(error.value)


def test_array_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "batch.npy", images)
    np.save(tmp_path / "one.npy", images[0])
    write_idx(tmp_path / "images-idx3-ubyte.gz", images)
    np.testing.assert_array_equal(read_images(tmp_path / "batch.npy"), images)
    np.testing.assert_array_equal(read_images(tmp_path / "one.npy"), images[:1])
    np.testing.assert_array_equal(read_images(tmp_path / "images-idx3-ubyte.gz"), images)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="objects.npy"):
        read_images(tmp_path / "objects.npy")
    np.save(tmp_path / "ints.npy", images.astype(np.int32))
    with pytest.raises(InputError, match="expected uint8"):
        read_images(tmp_path / "ints.npy")
