"""Mini-batches for training and evaluation: normalisation, seeded shuffling, batched augmentation.

The dataset stays as the uint8 array it was loaded as; an epoch is only a *plan* of index arrays
(a permutation plus per-image crop offsets and flip flags), drawn all at once from the caller's
``np.random.Generator`` at the start of the epoch. A batch gathers its uint8 images, crops and
flips them in one vectorised fancy-index, then normalises to float32 NHWC. Because every random
number of an epoch is drawn up front, the generator's state at the start of an epoch plus a step
index pin down the rest of the epoch exactly: this is what makes mid-epoch resume bit-exact.
"""

from dataclasses import dataclass

import numpy as np

from numbnn.checks import check_int
from numbnn.datasets import fashion_mnist
from numbnn.datasets.fashion import MEAN, STD
from numbnn.errors import InputError


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 images [N, H, W] -> float32 NHWC [N, H, W, 1], standardised with the FashionMNIST mean/std."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise InputError(f"images must be uint8 [N, H, W], got {images.dtype} {images.shape}")
    scale = np.float32(1.0 / (255.0 * STD))
    shift = np.float32(MEAN / STD)
    return (images[..., None].astype(np.float32) * scale - shift).astype(np.float32, copy=False)


def crop_and_flip(images: np.ndarray, offsets: np.ndarray, flips: np.ndarray, padding: int) -> np.ndarray:
    """Random-crop-with-padding and horizontal flip of a whole batch in one gather.

    ``images`` [B, H, W] is zero-padded by ``padding`` pixels on every side (zero = the black
    background of FashionMNIST); image b becomes the H x W window whose top-left corner is
    ``offsets[b] = (dy, dx)`` in the padded image, with its columns reversed where ``flips[b]``.
    ``offsets`` lie in [0, 2 * padding]; (padding, padding) is the identity crop.
    """
    batch, height, width = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding))) if padding else images
    rows = offsets[:, 0, None] + np.arange(height)  # [B, H]
    columns = np.where(flips[:, None], np.arange(width - 1, -1, -1), np.arange(width))
    columns = offsets[:, 1, None] + columns  # [B, W]
    return padded[np.arange(batch)[:, None, None], rows[:, :, None], columns[:, None, :]]


@dataclass(frozen=True)
class Augmentation:
    """Random crop with ``crop_padding`` pixels of zero padding, and a horizontal flip with probability 1/2."""

    crop_padding: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip


@dataclass(frozen=True)
class EpochPlan:
    """Every random choice of one epoch: image order, crop offsets [N, 2] and flip flags [N]."""

    order: np.ndarray
    offsets: np.ndarray | None
    flips: np.ndarray | None


class BatchIterator:
    """Mini-batches of (float32 NHWC images, int64 labels) over a uint8 dataset.

    ``shuffle=True`` draws a new permutation (and the augmentation choices) from ``rng`` each time
    :meth:`plan_epoch` is called; ``shuffle=False`` keeps the stored order and never touches the
    generator (evaluation). The last batch holds the remainder (``N % batch_size`` images) unless
    ``drop_last``. Nothing is copied per epoch except the index arrays and the current batch.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        rng: np.random.Generator | None = None,
        shuffle: bool = True,
        augmentation: Augmentation = Augmentation(),
        drop_last: bool = False,
    ):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise InputError(f"images must be uint8 [N, H, W], got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise InputError(f"labels must have shape ({len(images)},), got {labels.shape}")
        if len(images) == 0:
            raise InputError("the dataset is empty")
        check_int(batch_size, "batch_size")
        if augmentation.crop_padding < 0:
            raise InputError(f"crop_padding must be >= 0, got {augmentation.crop_padding}")
        if (shuffle or augmentation.active) and rng is None:
            raise InputError("shuffling or augmenting needs an rng (np.random.Generator)")
        self.images, self.labels = images, labels.astype(np.int64, copy=False)
        self.batch_size = int(batch_size)
        self.rng, self.shuffle, self.augmentation, self.drop_last = rng, shuffle, augmentation, drop_last

    def __len__(self) -> int:
        full, rest = divmod(len(self.images), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    @property
    def num_images(self) -> int:
        """Images per epoch (fewer than the dataset when ``drop_last`` drops a remainder)."""
        return len(self.images) if not self.drop_last else len(self) * self.batch_size

    def plan_epoch(self) -> EpochPlan:
        """Draw one epoch's random choices, in a fixed order: permutation, crop offsets, flips."""
        n = len(self.images)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        aug = self.augmentation
        offsets = self.rng.integers(0, 2 * aug.crop_padding + 1, size=(n, 2)) if aug.crop_padding else None
        flips = self.rng.random(n) < 0.5 if aug.flip else None
        return EpochPlan(order, offsets, flips)

    def batches(self, plan: EpochPlan | None = None, start: int = 0):
        """Yield (x [B, H, W, 1] float32, y [B] int64) for batches ``start``, ``start + 1``, ... of ``plan``."""
        plan = plan if plan is not None else self.plan_epoch()
        for step in range(start, len(self)):
            picked = slice(step * self.batch_size, (step + 1) * self.batch_size)
            indices = plan.order[picked]
            images = self.images[indices]
            if plan.offsets is not None or plan.flips is not None:
                count = len(indices)
                padding = self.augmentation.crop_padding
                offsets = plan.offsets[picked] if plan.offsets is not None else np.full((count, 2), padding)
                flips = plan.flips[picked] if plan.flips is not None else np.zeros(count, dtype=bool)
                images = crop_and_flip(images, offsets, flips, padding)
            yield normalize(images), self.labels[indices]

    def __iter__(self):
        return self.batches()


def load_split(split: str, limit: int | None = None, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """FashionMNIST ``split`` ("train" or "test") as (uint8 images [N, 28, 28], labels [N]), the first
    ``limit`` images only if given (a view, not a copy)."""
    images, labels = fashion_mnist(split, data_dir=data_dir)
    if limit is not None:
        check_int(limit, "limit")
        images, labels = images[:limit], labels[:limit]
    return images, labels
