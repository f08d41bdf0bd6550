"""(images, labels) splits from a directory of IDX files: FashionMNIST, MNIST, KMNIST, EMNIST.

A split is two files, ``<prefix>-images-idx3-ubyte`` and ``<prefix>-labels-idx1-ubyte`` (``.gz`` or not;
``<prefix>-images.idx3-ubyte`` is accepted too), with prefix ``train`` and ``t10k`` by default.

Decoded arrays are cached in-process, keyed by the file's resolved path, mtime, size and the checksum
it was verified against: a second load of an unchanged file costs nothing (the first one decompresses
and hashes ~47 MB, about half a second), while a file that changed on disk is read and checked again.
The cached arrays are shared, so they are returned read-only; copy one before writing into it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from numbnn.datasets.idx import read_idx_checked
from numbnn.errors import ChecksumError, DatasetNotFoundError, DataError, InputError

SPLITS = ("train", "test")
KINDS = ("images", "labels")

_CACHE: dict[tuple, np.ndarray] = {}


def check_split(split) -> str:
    """Return ``split`` if it names a split, else raise InputError."""
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    return split


def find_split_files(directory, split: str, *, prefix_train: str = "train", prefix_test: str = "t10k"):
    """The ``{"images": path, "labels": path}`` of a split in ``directory``, or None if either is missing.

    When both a raw and a ``.gz`` copy exist, the raw one is taken (nothing to decompress).
    """
    prefix = prefix_train if check_split(split) == "train" else prefix_test
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return None
    found = {}
    for kind in KINDS:
        pattern = re.compile(rf"{re.escape(prefix)}-{kind}[-.]idx\d-ubyte(\.gz)?")
        matches = [name for name in names if pattern.fullmatch(name)]
        if not matches:
            return None
        found[kind] = Path(directory) / min(matches, key=lambda name: name.endswith(".gz"))
    return found


def load_idx_dataset(
    directory,
    split: str = "train",
    *,
    prefix_train: str = "train",
    prefix_test: str = "t10k",
    content_sha256: dict[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(images, labels)`` of ``split`` ("train" or "test") from the IDX files in ``directory``.

    ``content_sha256`` optionally maps "images"/"labels" to the sha256 of the uncompressed IDX bytes;
    a file that does not match raises ChecksumError. Images and labels must have the same count.
    """
    directory = Path(directory).expanduser()
    files = find_split_files(directory, split, prefix_train=prefix_train, prefix_test=prefix_test)
    if files is None:
        prefix = prefix_train if split == "train" else prefix_test
        raise DatasetNotFoundError(
            f"no {split} split in {directory}: expected {prefix}-images-idx3-ubyte and "
            f"{prefix}-labels-idx1-ubyte (optionally .gz)"
        )
    digests = content_sha256 or {}
    images = load_idx_file(files["images"], digests.get("images"))
    labels = load_idx_file(files["labels"], digests.get("labels"))
    if labels.ndim != 1:
        raise DataError(f"{files['labels']}: labels must have one dimension, found shape {labels.shape}")
    if images.ndim < 2:
        raise DataError(f"{files['images']}: images need at least two dimensions, found shape {images.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{directory}: {len(images)} images in {files['images'].name} but {len(labels)} labels in "
            f"{files['labels'].name}"
        )
    return images, labels


def load_idx_file(path, content_sha256: str | None = None) -> np.ndarray:
    """Read one IDX file through the in-process cache, verifying its content checksum if given.

    Returns a read-only array (it may be shared with other callers).
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"no such IDX file: {path}") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size, content_sha256)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    array, digest = read_idx_checked(path)
    if content_sha256 is not None and digest != content_sha256:
        raise ChecksumError(
            f"{path}: sha256 of the uncompressed data is {digest}, expected {content_sha256}; "
            "the file is corrupt or a different dataset (replace it with a fresh copy)"
        )
    array.setflags(write=False)
    for stale in [k for k in _CACHE if k[0] == key[0]]:
        del _CACHE[stale]  # an older version of the same file
    _CACHE[key] = array
    return array


def clear_cache() -> None:
    """Forget every decoded array (frees their memory once callers drop their references too)."""
    _CACHE.clear()
