"""The training data pipeline: normalisation, augmentation against a per-image loop, seeded batching."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numbnn.datasets.fashion import MEAN, STD
from numbnn.errors import InputError
from numbnn.train.data import Augmentation, BatchIterator, crop_and_flip, normalize


def _images(n, h=28, w=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_normalize_maps_pixels_to_standardised_nhwc_float32():
    images = np.array([[[0, 255], [51, 128]]], dtype=np.uint8)
    x = normalize(images)
    assert x.shape == (1, 2, 2, 1) and x.dtype == np.float32
    expected = (images / 255.0 - MEAN) / STD
    np.testing.assert_allclose(x[..., 0], expected, rtol=1e-6, atol=1e-6)


def test_normalize_rejects_float_input():
    with pytest.raises(InputError, match="uint8"):
        normalize(np.zeros((2, 28, 28), dtype=np.float32))


@given(
    batch=st.integers(1, 5),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    padding=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_crop_equals_shifted_window_and_flip_equals_reversed_columns(batch, height, width, padding, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch, height, width), dtype=np.uint8)
    offsets = rng.integers(0, 2 * padding + 1, size=(batch, 2))
    flips = rng.random(batch) < 0.5
    out = crop_and_flip(images, offsets, flips, padding)
    for b in range(batch):
        padded = np.zeros((height + 2 * padding, width + 2 * padding), dtype=np.uint8)
        padded[padding : padding + height, padding : padding + width] = images[b]
        dy, dx = offsets[b]
        window = padded[dy : dy + height, dx : dx + width]
        expected = window[:, ::-1] if flips[b] else window
        np.testing.assert_array_equal(out[b], expected)


def test_centre_offsets_without_flip_are_the_identity():
    images = _images(4)
    out = crop_and_flip(images, np.full((4, 2), 3), np.zeros(4, dtype=bool), padding=3)
    np.testing.assert_array_equal(out, images)


def _collect(iterator, plan=None, start=0):
    xs, ys = zip(*iterator.batches(plan, start))
    return list(xs), list(ys)


def test_every_image_appears_once_per_epoch_and_the_last_batch_is_partial():
    images, ids = _images(23), np.arange(23)
    it = BatchIterator(images, ids, 5, rng=np.random.default_rng(1))
    xs, ys = _collect(it)
    assert len(it) == 5 and [len(y) for y in ys] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate(ys).tolist()) == list(range(23))
    order = np.concatenate(ys)
    assert not np.array_equal(order, np.arange(23))  # shuffled
    np.testing.assert_array_equal(np.concatenate(xs), normalize(images[order]))  # no augmentation: plain gather
    it_drop = BatchIterator(images, ids, 5, rng=np.random.default_rng(1), drop_last=True)
    assert len(it_drop) == 4 and it_drop.num_images == 20 and [len(y) for y in _collect(it_drop)[1]] == [5] * 4


def test_same_seed_same_batches_and_different_seed_different_batches():
    images, labels = _images(40), np.arange(40) % 10
    aug = Augmentation(crop_padding=2, flip=True)
    first = _collect(BatchIterator(images, labels, 8, rng=np.random.default_rng(7), augmentation=aug))
    again = _collect(BatchIterator(images, labels, 8, rng=np.random.default_rng(7), augmentation=aug))
    other = _collect(BatchIterator(images, labels, 8, rng=np.random.default_rng(8), augmentation=aug))
    for a, b in zip(first[0], again[0]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first[0], other[0]))


def test_successive_epochs_differ_and_augmentation_follows_the_plan():
    images, ids = _images(12), np.arange(12)
    it = BatchIterator(images, ids, 4, rng=np.random.default_rng(3), augmentation=Augmentation(2, True))
    plan1, plan2 = it.plan_epoch(), it.plan_epoch()
    assert not np.array_equal(plan1.order, plan2.order)
    xs, ys = _collect(it, plan1)
    order = np.concatenate(ys)
    np.testing.assert_array_equal(order, plan1.order)
    expected = normalize(crop_and_flip(images[order], plan1.offsets[:12], plan1.flips[:12], 2))
    np.testing.assert_array_equal(np.concatenate(xs), expected)


def test_starting_mid_epoch_gives_the_remaining_batches_of_the_same_plan():
    images, ids = _images(30), np.arange(30)
    rng = np.random.default_rng(11)
    it = BatchIterator(images, ids, 7, rng=rng, augmentation=Augmentation(2, True))
    state = rng.bit_generator.state
    full = _collect(it)
    rng.bit_generator.state = state
    tail = _collect(it, it.plan_epoch(), start=2)
    for a, b in zip(full[0][2:], tail[0]):
        np.testing.assert_array_equal(a, b)
    assert len(tail[0]) == len(full[0]) - 2


def test_evaluation_order_is_fixed_and_needs_no_rng():
    images, ids = _images(10), np.arange(10)
    it = BatchIterator(images, ids, 4, shuffle=False)
    assert np.concatenate(_collect(it)[1]).tolist() == list(range(10))
    assert np.shares_memory(it.images, images)  # the dataset is referenced, not copied


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 4, "rng": None}, "rng"),
        ({"batch_size": 4, "augmentation": Augmentation(-1, False)}, "crop_padding"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs, match):
    kwargs.setdefault("rng", np.random.default_rng(0))
    with pytest.raises(InputError, match=match):
        BatchIterator(_images(5), np.arange(5), **kwargs)


def test_labels_must_match_images():
    with pytest.raises(InputError, match="labels"):
        BatchIterator(_images(5), np.arange(4), 2, shuffle=False)
