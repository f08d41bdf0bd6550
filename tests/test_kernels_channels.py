"""numbnn/kernels/channels.py: flat and per-channel addition, column copies, scaling and chunked sums,
each against its naive twin in tests/naive.py."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from channel_cases import rows_channels
from numbnn.kernels import channels as _channel_kernels
from numbnn.kernels import norm as _norm_kernels


@settings(max_examples=25)
@given(rows_channels())
def test_add_and_column_kernels(case):
    x, (a, *_), g = case
    np.testing.assert_array_equal(_channel_kernels.add(x.reshape(-1), g.reshape(-1), np.empty(x.size, x.dtype)),
                                  naive.add(x.reshape(-1), g.reshape(-1)))
    np.testing.assert_array_equal(_channel_kernels.add_channels(x, a, np.empty_like(x)), naive.add_channels(x, a))
    target = g.copy()
    _channel_kernels.copy_columns(x[:, 1:], target, 1)
    np.testing.assert_array_equal(target, naive.copy_columns(x[:, 1:], g, 1))
    width = x.shape[1] // 2
    taken = _channel_kernels.take_columns(x, x.shape[1] - width, np.empty((x.shape[0], width), x.dtype))
    np.testing.assert_array_equal(taken, naive.take_columns(x, x.shape[1] - width, width))
    pending = np.ascontiguousarray(x[::-1] * 3)
    for blocks in (1, 2, 3):
        wide = np.concatenate([x * (b + 1) for b in range(blocks)], axis=1)
        np.testing.assert_array_equal(_channel_kernels.sum_column_blocks(wide, np.empty_like(x), pending, False),
                                      naive.sum_column_blocks(wide, x.shape[1]))
        np.testing.assert_array_equal(_channel_kernels.sum_column_blocks(wide, np.empty_like(x), pending, True),
                                      naive.sum_column_blocks(wide, x.shape[1], pending))


@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3, 32, 33]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_add_maps_of_views(n, h, w, c, dtype, seed):
    """4-D sums with a broadcast (a spatial mean's gradient) or a sliced view (a padding's), and two views."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, h, w, c)).astype(dtype)
    per_image = np.broadcast_to(rng.standard_normal((n, 1, 1, c)).astype(dtype), a.shape)
    sliced = rng.standard_normal((n, h + 2, w + 3, c)).astype(dtype)[:, 1:h + 1, 2:w + 2]
    for b in (per_image, sliced):
        np.testing.assert_array_equal(_channel_kernels.add_maps(a, b, np.empty_like(a)), naive.add_maps(a, b))
    np.testing.assert_array_equal(_channel_kernels.add_maps(sliced, per_image, np.empty_like(a)),
                                  naive.add_maps(sliced, per_image))


@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3, 32, 33]), st.integers(0, 10),
       st.integers(0, 10), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_roll_pixels(n, h, w, c, shift_h, shift_w, dtype, seed):
    x = np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype)
    out = _channel_kernels.roll_pixels(x, shift_h % h, shift_w % w, np.empty_like(x))
    np.testing.assert_array_equal(out, naive.roll_pixels(x, shift_h, shift_w))

@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 3, 32, 33]), st.sampled_from([1, 2, 3]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_space_to_depth_and_back(n, ho, wo, c, block, dtype, seed):
    """Batch 1, odd channel counts, block 1 (a copy) to 3; depth_to_space undoes space_to_depth."""
    x = np.random.default_rng(seed).standard_normal((n, ho * block, wo * block, c)).astype(dtype)
    moved = np.empty((n, ho, wo, block * block * c), dtype)
    _channel_kernels.move_blocks(x, moved, block, True)
    np.testing.assert_array_equal(moved, naive.space_to_depth(x, block))
    back = np.empty_like(x)
    _channel_kernels.move_blocks(back, moved, block, False)
    np.testing.assert_array_equal(back, naive.depth_to_space(moved, block))
    np.testing.assert_array_equal(back, x)


@settings(max_examples=40)
@given(st.sampled_from([1, 2, 63, 65]), st.sampled_from([1, 2, 3, 4, 8]), st.sampled_from([1, 3, 16, 17]),
       st.sampled_from([np.float32, np.float64]), st.booleans(), st.integers(0, 2**16))
def test_shuffle_columns(rows, groups, per_group, dtype, inverse, seed):
    """Both directions against numpy's reshape-transpose-reshape, the written-out G = 4 and the general loops,
    odd group widths included; the shuffle and its inverse undo each other."""
    x = np.random.default_rng(seed).standard_normal((rows, groups * per_group)).astype(dtype)
    out = np.full_like(x, np.nan)
    assert _channel_kernels.shuffle_columns(x, groups, inverse, out) is out
    np.testing.assert_array_equal(out, naive.shuffle_columns(x, groups, inverse))
    back = _channel_kernels.shuffle_columns(out, groups, not inverse, np.empty_like(x))
    np.testing.assert_array_equal(back, x)


@settings(max_examples=25)
@given(rows_channels(), st.sampled_from([1, 2, 3]), st.booleans())
def test_gate_channels_and_grads(case, images, need_dx):
    """Batch 1 included: images x pixels = the case's rows split into ``images`` (when they divide)."""
    x, (a, *_), g = case
    if x.shape[0] % images:
        images = 1
    x3, g3 = x.reshape(images, -1, x.shape[1]), g.reshape(images, -1, x.shape[1])
    gate = np.stack([a * (k + 1) for k in range(images)])
    out = np.full_like(x3, np.nan)
    assert _channel_kernels.gate_channels(x3, gate, out) is out
    np.testing.assert_array_equal(out, naive.gate_channels(x3, gate))
    dx = np.full_like(x3, np.nan) if need_dx else np.empty((0, 0, 0), x.dtype)
    dgate = np.full_like(gate, np.nan)
    _channel_kernels.gate_channels_grads(g3, x3, gate, dx, dgate)
    expected_dx, expected_dgate = naive.gate_channels_grads(g3, x3, gate)
    if need_dx:
        np.testing.assert_array_equal(dx, expected_dx)
    np.testing.assert_allclose(dgate, expected_dgate, rtol=1e-6 if x.dtype == np.float32 else 1e-13, atol=1e-12)


@settings(max_examples=25)
@given(rows_channels())
def test_chunk_sums_give_mean_and_variance(case):
    x = case[0]
    chunks = _channel_kernels.n_chunks(x.shape[0])
    mean = _channel_kernels.chunk_sums(x, np.zeros(x.shape[1]), False, chunks).sum(axis=0) / x.shape[0]
    var = _channel_kernels.chunk_sums(x, mean, True, chunks).sum(axis=0) / x.shape[0]
    np.testing.assert_allclose(mean, naive.chunk_sums(x, 0.0, False) / x.shape[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, naive.chunk_sums(x, mean, True) / x.shape[0], rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(rows_channels())
def test_scale_columns_equals_numpy_cast_then_multiply(case):
    x, (scale, *_), _ = case
    acc = np.round(1000 * x).astype(np.int32)
    acc.flat[:2] = [2**24 - 1, -(2**24) + 3]  # integer sums up to 2^24 are exact in float32
    out = np.full(acc.shape, np.nan, dtype=x.dtype)
    chunks = _channel_kernels.n_chunks(len(acc))
    partial = _channel_kernels.scale_columns(acc, scale, out, chunks)
    np.testing.assert_array_equal(out, naive.scale_columns(acc, scale, x.dtype))
    # the statistics of a batch norm reading out next: chunk_moments' partials around out's first row, exactly
    center = out[0].astype(np.float64)
    np.testing.assert_array_equal(partial, _norm_kernels.chunk_moments(out, center, chunks))
    first, second = naive.chunk_moments(out, center)
    np.testing.assert_allclose(partial.sum(axis=1), [first, second], rtol=1e-10, atol=1e-6)
    # a scale of ones is numpy's cast, also where float32 rounds (beyond 2^24) and at int32's ends
    acc.flat[:3] = [2**24 + 1, -(2**31), 2**31 - 1][: acc.size]
    _channel_kernels.scale_columns(acc, np.ones(acc.shape[1], x.dtype), out, chunks)
    np.testing.assert_array_equal(out, naive.as_floats(acc, x.dtype))


def test_reductions_do_not_depend_on_the_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 Numba threads")
    x = np.random.default_rng(0).standard_normal((5000, 7)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(_channel_kernels.chunk_sums(x, np.zeros(7), True, _channel_kernels.n_chunks(5000)).sum(axis=0))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])


@settings(max_examples=50)
@given(st.integers(1, 20), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_chunk_total_adds_chunks_in_order_whatever_the_channel_count(chunks, extra, seed):
    """One channel's total is the same bits alone (chunk axis contiguous) or beside other channels; numpy's
    sum(axis=-2) is not (pairwise with 8 accumulators in the first case, row by row in the second)."""
    rng = np.random.default_rng(seed)
    partial = rng.standard_normal((4, chunks, 1)) * 10.0 ** rng.integers(-3, 4, (4, chunks, 1))
    wider = np.concatenate([partial, rng.standard_normal((4, chunks, extra))], axis=-1)
    expected = naive.chunk_total(partial)
    np.testing.assert_array_equal(_channel_kernels.chunk_total(partial), expected)
    np.testing.assert_array_equal(_channel_kernels.chunk_total(wider[1]), naive.chunk_total(wider[1]))
    np.testing.assert_array_equal(_channel_kernels.chunk_total(wider)[:, :1], expected)
