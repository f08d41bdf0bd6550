"""Datasets: the IDX format, FashionMNIST (shipped, verified, downloadable) and any IDX directory.

>>> images, labels = fashion_mnist("train")   # uint8 [60000, 28, 28], uint8 [60000]
>>> images, labels = load_idx_dataset("~/mnist", "test")

Names resolve lazily, as in ``numbnn``: reading one IDX file (``numbnn predict``) does not import the
downloader and its progress bars.
"""

from numbnn._lazy import lazy_getattr

_LAZY = {
    "FASHION_MNIST_CLASSES": ("numbnn.datasets.fashion", "CLASSES"),
    "FASHION_MNIST_MANIFEST": ("numbnn.datasets.fashion", "MANIFEST"),
    "cache_dir": ("numbnn.datasets.fashion", "cache_dir"),
    "fashion_mnist": ("numbnn.datasets.fashion", "fashion_mnist"),
    "find_fashion_mnist": ("numbnn.datasets.fashion", "find_fashion_mnist"),
    "parse_idx": ("numbnn.datasets.idx", "parse_idx"),
    "read_idx": ("numbnn.datasets.idx", "read_idx"),
    "write_idx": ("numbnn.datasets.idx", "write_idx"),
    "SPLITS": ("numbnn.datasets.idx_dataset", "SPLITS"),
    "clear_cache": ("numbnn.datasets.idx_dataset", "clear_cache"),
    "load_idx_dataset": ("numbnn.datasets.idx_dataset", "load_idx_dataset"),
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
