"""A disk cache of the teacher's targets, so runs that share a teacher and training set pay its pass once.

``teacher_targets="once"`` runs the teacher over every un-augmented training image before training (85 s
on the full FashionMNIST training set with both cores of an Intel Xeon). Every run with the same teacher
weights, images and batch size computes the very same array, so a sweep of 27 runs, a resumed run or a
second `numbnn train` reads it from ``<cache>/teacher-targets/<key>.h5`` instead, where ``<cache>`` is
numbnn's user cache (:func:`numbnn.datasets.cache_dir`) and ``<key>`` the sha256 of the teacher's state
arrays, the images and the batch size. A file that is missing, damaged or of another shape is recomputed
and rewritten (it is a cache: never an error); files are written atomically, like every numbnn file.
"""

from __future__ import annotations

import hashlib

import numpy as np

from numbnn.datasets import cache_dir
from numbnn.errors import NumbnnError
from numbnn.io.hdf5 import atomic_h5, open_numbnn_file, write_header

FORMAT = "numbnn-teacher-targets"
FORMAT_VERSION = 1


def targets_key(teacher, images: np.ndarray, batch_size: int, *, flip_averaged: bool = False) -> str:
    """sha256 over what fixes the targets: the teacher's state (names, dtypes, shapes, bytes), images, batch,
    and whether each target averages the image with its mirror."""
    digest = hashlib.sha256(f"{FORMAT} v{FORMAT_VERSION} batch {batch_size}{' flip-averaged' * flip_averaged}".encode())
    for name, array in sorted(teacher.state_dict().items()):
        array = np.ascontiguousarray(array)
        digest.update(f"{name} {array.dtype.str} {array.shape}".encode())
        digest.update(array.tobytes())
    images = np.ascontiguousarray(images)
    digest.update(f"images {images.dtype.str} {images.shape}".encode())
    digest.update(images.tobytes())
    return digest.hexdigest()


def cached_targets(key: str, rows: int, compute) -> np.ndarray:
    """The targets stored under ``key`` if a valid file with ``rows`` rows exists, else ``compute()`` stored."""
    path = cache_dir() / "teacher-targets" / f"{key}.h5"
    if path.is_file():
        try:
            with open_numbnn_file(path, FORMAT, FORMAT_VERSION) as (file, _):
                targets = np.asarray(file["targets"], dtype=np.float32)
            if targets.ndim == 2 and len(targets) == rows and np.isfinite(targets).all():
                return targets
        except NumbnnError:
            pass  # damaged or foreign: recompute below and replace it
    targets = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_h5(path) as file:
            write_header(file, FORMAT, FORMAT_VERSION)
            file.create_dataset("targets", data=targets)
    except (OSError, NumbnnError):
        pass  # an unwritable cache only costs the next run the teacher pass
    return targets
