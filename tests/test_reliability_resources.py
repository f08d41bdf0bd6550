"""Resources: the data pipeline never copies the dataset; an epoch allocates index arrays and one batch.

A training epoch is a plan of index arrays (permutation, crop offsets, flip flags: 8 + 16 + 1 bytes per
image, against 784 bytes per 28 x 28 image) plus one batch at a time. tracemalloc (numpy reports its
allocations to it) bounds what one and two epochs of batching allocate at their peak. The peak RSS of
a whole ``numbnn train`` run is measured by benchmarks/peak_memory.py.
"""

import tracemalloc

import numpy as np

from numbnn.train.data import Augmentation, BatchIterator, load_split

IMAGES = 30_000
BATCH = 128


def _dataset():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (IMAGES, 28, 28), dtype=np.uint8), rng.integers(0, 10, IMAGES)


def _epoch_peak(batches: BatchIterator, epochs: int) -> tuple[int, int]:
    """(peak bytes allocated while batching ``epochs`` epochs, number of images yielded)."""
    seen = 0
    tracemalloc.start()
    try:
        for _ in range(epochs):
            for x, y in batches.batches(batches.plan_epoch()):
                seen += len(y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, seen


def test_an_epoch_of_batches_allocates_far_less_than_the_dataset():
    images, labels = _dataset()
    batches = BatchIterator(images, labels, BATCH, rng=np.random.default_rng(1), augmentation=Augmentation(2, True))
    assert np.shares_memory(batches.images, images)  # held, not copied
    peak, seen = _epoch_peak(batches, epochs=1)
    assert seen == IMAGES
    # the plan and its temporaries (permutation, offsets, uniform draws for the flips: < 64 bytes per
    # image) and a few batch-sized buffers; a copy of the dataset would be 784 bytes per image
    assert peak < IMAGES * 64 + (2 << 20), peak
    assert peak < images.nbytes / 8, (peak, images.nbytes)


def test_tracemalloc_sees_a_dataset_copy():
    """The control: numpy's allocations are traced here, so a copied dataset could not go unnoticed."""
    images, _ = _dataset()
    tracemalloc.start()
    try:
        copy = images[np.arange(len(images))]  # what gathering the whole epoch at once would allocate
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert copy.nbytes == images.nbytes and peak >= images.nbytes


def test_a_second_epoch_does_not_grow_the_peak():
    images, labels = _dataset()
    batches = BatchIterator(images, labels, BATCH, rng=np.random.default_rng(1), augmentation=Augmentation(2, True))
    one, _ = _epoch_peak(batches, epochs=1)
    two, seen = _epoch_peak(batches, epochs=2)
    assert seen == 2 * IMAGES
    assert two < one * 1.5, (one, two)  # the second epoch's plan replaces the first one


def test_limit_and_the_loaded_split_are_views_of_one_cached_array():
    full_images, full_labels = load_split("train")
    images, labels = load_split("train", limit=1000)
    assert np.shares_memory(images, full_images) and np.shares_memory(labels, full_labels)
    again, _ = load_split("train")
    assert again is full_images or np.shares_memory(again, full_images)  # loaded once per process
