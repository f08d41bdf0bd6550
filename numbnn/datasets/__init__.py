"""Datasets: the IDX format, FashionMNIST (shipped, verified, downloadable) and any IDX directory.

>>> images, labels = fashion_mnist("train")   # uint8 [60000, 28, 28], uint8 [60000]
>>> images, labels = load_idx_dataset("~/mnist", "test")
"""

from numbnn.datasets.fashion import CLASSES as FASHION_MNIST_CLASSES
from numbnn.datasets.fashion import MANIFEST as FASHION_MNIST_MANIFEST
from numbnn.datasets.fashion import cache_dir, fashion_mnist, find_fashion_mnist
from numbnn.datasets.idx import parse_idx, read_idx, write_idx
from numbnn.datasets.idx_dataset import SPLITS, clear_cache, load_idx_dataset

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MANIFEST",
    "SPLITS",
    "cache_dir",
    "clear_cache",
    "fashion_mnist",
    "find_fashion_mnist",
    "load_idx_dataset",
    "parse_idx",
    "read_idx",
    "write_idx",
]
