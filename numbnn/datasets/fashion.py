"""FashionMNIST (Xiao, Rasul & Vollgraf 2017; MIT licence, Zalando SE): 28x28 grey images of 10 clothing classes.

:func:`fashion_mnist` looks for the four IDX files, in this order:

1. ``data_dir`` if given (and only there: a wrong explicit directory is an error, not a fallback);
2. ``$NUMBNN_DATA``;
3. the repository's ``data/`` directory (the copy committed with numbnn);
4. ``/usr/share/datasets`` (Debian's package ``dataset-fashion-mnist``);
5. the user cache ``$XDG_CACHE_HOME/numbnn`` (default ``~/.cache/numbnn``), downloading the missing
   files there if ``download`` is true (``$NUMBNN_DATA_MIRROR`` replaces the download base URL).

In each directory the files may sit in a ``fashion-mnist/`` subdirectory or directly inside, gzipped or
not. Whatever copy is found, the sha256 of its uncompressed content must match :data:`MANIFEST` (the
same values as ``data/fashion-mnist/MANIFEST.json``, which also records the .gz checksums).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import numbnn
from numbnn.datasets.download import download as download_file
from numbnn.datasets.idx_dataset import check_split, find_split_files, load_idx_dataset
from numbnn.errors import DatasetNotFoundError

NAME = "fashion-mnist"
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DATA_ENV = "NUMBNN_DATA"
MIRROR_ENV = "NUMBNN_DATA_MIRROR"
REPO_DATA_DIR = Path(numbnn.__file__).resolve().parents[1] / "data"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Per-pixel statistics of the 60,000 training images scaled to [0, 1]: training normalises with them, and a
# packed model stores them so it normalises its input the same way.
MEAN = 0.2860406
STD = 0.3530242


@dataclass(frozen=True)
class ManifestEntry:
    """One file of the dataset: the committed .gz, the upstream .gz at ``url``, and their common content."""

    name: str
    split: str
    kind: str
    size: int
    sha256: str
    upstream_size: int
    upstream_sha256: str
    content_sha256: str

    @property
    def url(self) -> str:
        return BASE_URL + self.name


MANIFEST = {
    entry.name: entry
    for entry in (
        ManifestEntry(
            "train-images-idx3-ubyte.gz", "train", "images",
            26421856, "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        ManifestEntry(
            "train-labels-idx1-ubyte.gz", "train", "labels",
            29491, "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        ManifestEntry(
            "t10k-images-idx3-ubyte.gz", "test", "images",
            4422079, "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        ManifestEntry(
            "t10k-labels-idx1-ubyte.gz", "test", "labels",
            5125, "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    )
}


def fashion_mnist(split: str = "train", data_dir=None, download: bool = True,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 [N, 28, 28], labels uint8 [N])`` of the "train" (60000) or "test" (10000) split.

    Both arrays are read-only and shared between calls (the decoded split is cached in-process).
    """
    directory = find_fashion_mnist(split, data_dir)
    if directory is None and data_dir is not None:
        raise DatasetNotFoundError(f"data_dir: no FashionMNIST {split} files in {data_dir} or {Path(data_dir) / NAME}")
    if directory is None:
        if not download:
            looked = ", ".join(str(root) for root in search_roots())
            raise DatasetNotFoundError(
                f"FashionMNIST {split} files not found (looked in {looked}, each also with /{NAME}) "
                f"and download=False; pass data_dir or set ${DATA_ENV}"
            )
        directory = _download_split(split, progress)
    expected = {entry.kind: entry.content_sha256 for entry in MANIFEST.values() if entry.split == split}
    return load_idx_dataset(directory, split, content_sha256=expected)


def find_fashion_mnist(split: str = "train", data_dir=None) -> Path | None:
    """The first directory in lookup order that holds both files of ``split``, or None (no download)."""
    check_split(split)
    roots = [Path(data_dir)] if data_dir is not None else search_roots()
    return next(filter(None, (_locate(root, split) for root in roots)), None)


def search_roots() -> list[Path]:
    """Directories searched when no ``data_dir`` is given, in order (the cache comes last)."""
    roots = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    return [*roots, REPO_DATA_DIR, SYSTEM_DATA_DIR, cache_dir()]


def cache_dir() -> Path:
    """numbnn's download cache: ``$XDG_CACHE_HOME/numbnn``, by default ``~/.cache/numbnn``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "numbnn"


def _locate(root: Path, split: str) -> Path | None:
    """The directory under ``root`` (``root/fashion-mnist`` first, then ``root``) holding the split."""
    root = root.expanduser()
    for directory in (root / NAME, root):
        if find_split_files(directory, split) is not None:
            return directory
    return None


def _download_split(split: str, progress: bool) -> Path:
    """Download the split's missing files into the cache and return the directory."""
    directory = cache_dir() / NAME
    mirror = os.environ.get(MIRROR_ENV)
    for entry in MANIFEST.values():
        if entry.split == split and not (directory / entry.name).exists():
            download_file(
                mirror.rstrip("/") + "/" + entry.name if mirror else entry.url,
                directory / entry.name,
                accept_sha256={entry.sha256, entry.upstream_sha256},
                size_hint=entry.upstream_size,
                progress=progress,
            )
    return directory
