"""Fused, parallel Numba loops for flat and per-channel arithmetic: addition, per-channel add and scale,
column copies (concatenation and its gradient, the sum of a self-concatenation's column blocks), channel
shuffles, space-to-depth and its inverse, rolls,
per-image channel gates and chunked per-channel sums.

Conventions: 2-D arrays are [rows, channels] C-contiguous views of NHWC data; per-channel vectors have
length ``channels`` and the dtype of the data. Each function has a plain-numpy twin in ``tests/naive.py``
(checked in ``tests/test_kernels_channels.py``). A chain of numpy ufuncs makes one full pass over memory
(and often one fresh temporary) per step; each loop here touches its data in a single parallel pass.

Reductions split the rows into a fixed number of chunks (:func:`numbnn.kernels.channels.n_chunks`),
sum each chunk into its own float64 row and return the rows [chunks, channels]; the Python callers add
them up, so results do not depend on the thread count (and compile times stay short).
"""

import numba as nb
import numpy as np

_CHUNKS = 64


@nb.njit(parallel=True, cache=True)
def add(a, b, out):
    """out = a + b over flat arrays of one length (numpy's result bit for bit, on every thread)."""
    for i in nb.prange(a.size):
        out[i] = a[i] + b[i]
    return out


@nb.njit(parallel=True, cache=True)
def add_maps(a, b, out):
    """out = a + b for 4-D arrays of one shape and any strides (a broadcast or a sliced view: a spatial mean's
    gradient, a padding's), rows of the first two axes in parallel; numpy's result bit for bit."""
    n, h, w, c = out.shape
    for row in nb.prange(n * h):
        i, y = row // h, row % h
        for x in range(w):
            for j in range(c):
                out[i, y, x, j] = a[i, y, x, j] + b[i, y, x, j]
    return out


@nb.njit(parallel=True, cache=True)
def add_channels(x, v, out):
    """out[i, j] = x[i, j] + v[j]: a per-channel vector broadcast over the rows."""
    rows, c = x.shape
    for i in nb.prange(rows):
        for j in range(c):
            out[i, j] = x[i, j] + v[j]
    return out


@nb.njit(parallel=True, cache=True)
def scale_columns(acc, scale, out, n_chunks):
    """out[i, j] = acc[i, j] * scale[j]: integer sums (a binary conv's) to floats times a per-channel
    scale in one pass. Exact products of int32 and float32 round once, as float32 numpy does; with a scale of
    ones that is the cast itself (int32 to float64 and the product are exact, then one rounding).

    Returns, from the same pass, :func:`numbnn.kernels.norm.chunk_moments`' partial sums of out around its
    first row ([2, n_chunks, C] float64, its chunks and order, so equal to them bit for bit): the statistics
    of a batch norm that reads out next, which then need not read the map again. Per row, the second channel
    loop reads the values the first just wrote, still in the cache."""
    rows, c = acc.shape
    partial = np.zeros((2, n_chunks, c))
    if rows == 0:  # an empty batch: no first row to centre on
        return partial
    center = np.empty(c)
    for j in range(c):
        out[0, j] = acc[0, j] * scale[j]
        center[j] = out[0, j]
    for chunk in nb.prange(n_chunks):
        first, second = np.zeros(c), np.zeros(c)
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                out[i, j] = acc[i, j] * scale[j]
            add_moments(out[i], center, first, second)
        partial[0, chunk], partial[1, chunk] = first, second
    return partial


@nb.njit(inline="always")
def add_moments(row, center, first, second):
    """first += row - center, second += (row - center)^2, per channel in float64: one row of
    :func:`numbnn.kernels.norm.chunk_moments`' sums (shared, so a pass that sums them in passing gives its bits)."""
    for j in range(row.shape[0]):
        d = row[j] - center[j]
        first[j] += d
        second[j] += d * d


@nb.njit(parallel=True, cache=True)
def copy_columns(source, target, first):
    """target[:, first : first + source.shape[1]] = source: one part of a concatenation along channels.
    Through row views indexed from 0 (with ``first + j`` Numba's negative-index test stayed in the loop and
    kept it scalar: 0.29x the time on [25088, 64] into 128 columns, a probe on Zen 4, 2026-12-07)."""
    rows, c = source.shape
    for i in nb.prange(rows):
        part, row = target[i, first:first + c], source[i]
        for j in range(c):
            part[j] = row[j]
    return target


@nb.njit(parallel=True, cache=True)
def take_columns(source, first, target):
    """target = source[:, first : first + target.shape[1]]: one part of a split along channels, contiguous."""
    rows, c = target.shape
    for i in nb.prange(rows):
        part, row = source[i, first:first + c], target[i]  # views from 0, as in copy_columns
        for j in range(c):
            row[j] = part[j]
    return target


@nb.njit(parallel=True, cache=True)
def sum_column_blocks(source, out, pending, with_pending):
    """out[i, j] = source[i, j] + source[i, C + j] + ... over the R blocks of C = out.shape[1] columns of
    ``source`` [rows, R*C], added left to right: the gradient of a tensor concatenated R times with itself,
    summed in the order the autograd engine accumulates the R slices. With ``with_pending`` the sum starts
    from pending [rows, C] (the gradient the tensor's other readers had already sent): pending + block 0 + ...;
    ``pending`` is not read otherwise."""
    rows, c = out.shape
    for i in nb.prange(rows):
        total, row = out[i], source[i]  # row views: an offset index would stop the loop vectorising
        if with_pending:
            earlier = pending[i]
            for j in range(c):
                total[j] = earlier[j] + row[j]
        else:
            for j in range(c):
                total[j] = row[j]
        for block in range(1, row.size // c):
            part = row[block * c:(block + 1) * c]
            for j in range(c):
                total[j] = total[j] + part[j]
    return out


@nb.njit(inline="always")
def _interleave4(source, out, per_group):
    for j in range(per_group):
        out[4 * j] = source[j]
        out[4 * j + 1] = source[per_group + j]
        out[4 * j + 2] = source[2 * per_group + j]
        out[4 * j + 3] = source[3 * per_group + j]


@nb.njit(inline="always")
def _deinterleave4(source, out, per_group):
    for j in range(per_group):
        out[j] = source[4 * j]
        out[per_group + j] = source[4 * j + 1]
        out[2 * per_group + j] = source[4 * j + 2]
        out[3 * per_group + j] = source[4 * j + 3]


@nb.njit(inline="always")
def shuffle_row(source, out, groups, inverse):
    """One row of :func:`shuffle_columns` (``out`` must not be ``source``)."""
    per_group = source.size // groups
    if groups == 4 and inverse:
        _deinterleave4(source, out, per_group)
    elif groups == 4:
        _interleave4(source, out, per_group)
    elif inverse:
        for g in range(groups):  # contiguous writes
            for j in range(per_group):
                out[g * per_group + j] = source[j * groups + g]
    else:
        for g in range(groups):  # contiguous reads
            for j in range(per_group):
                out[j * groups + g] = source[g * per_group + j]


@nb.njit(parallel=True, cache=True)
def shuffle_columns(source, groups, inverse, out):
    """ShuffleNet's channel shuffle of every row (arXiv 1707.01083, Sec. 3.1; the gradient is the inverse):
    out[i, j*G + g] = source[i, g*(C/G) + j], or with ``inverse`` out[i, g*(C/G) + j] = source[i, j*G + g].
    G = 4 (FTBNN's groups) is written out with the group count a constant, which LLVM vectorises as an
    interleave: forward 0.18-0.20x, inverse 0.50x the time of a gather through an index array on [25088, 64]
    and [6272, 128]; other G, with contiguous reads (or writes), 0.49-0.64x (a probe against the gather kernel
    this one replaced, Zen 4, 2 threads: docs/performance.md, 2026-12-07 afternoon)."""
    rows, c = out.shape
    for i in nb.prange(rows):
        shuffle_row(source[i], out[i], groups, inverse)
    return out


@nb.njit(parallel=True, cache=True)
def move_blocks(space, depth, block, to_depth):
    """Between NHWC ``space`` [N, H, W, C] and ``depth`` [N, H/b, W/b, b*b*C] (b = ``block``, TensorFlow's
    space-to-depth order): depth[n, i, j, (dy*b + dx)*C + c] = space[n, i*b + dy, j*b + dx, c], written
    into ``depth`` if ``to_depth``, else the inverse into ``space``. One task per row of ``depth``, each
    pixel's C channels one contiguous run (numpy's reshape-transpose-reshape makes the same copy on one
    thread)."""
    n, ho, wo, _ = depth.shape
    c = space.shape[3]
    for task in nb.prange(n * ho):
        image, i = task // ho, task % ho
        for j in range(wo):
            for dy in range(block):
                for dx in range(block):
                    first = (dy * block + dx) * c
                    for k in range(c):
                        if to_depth:
                            depth[image, i, j, first + k] = space[image, i * block + dy, j * block + dx, k]
                        else:
                            space[image, i * block + dy, j * block + dx, k] = depth[image, i, j, first + k]


@nb.njit(parallel=True, cache=True)
def roll_pixels(x, shift_h, shift_w, out):
    """out[n, (i + shift_h) % H, (j + shift_w) % W, :] = x[n, i, j, :] (np.roll over the rows and columns
    of NHWC x; shifts in [0, H) and [0, W)), one task per input row, each pixel's channels one run."""
    n, h, w, c = x.shape
    for task in nb.prange(n * h):
        image, i = task // h, task % h
        target = (i + shift_h) % h
        for j in range(w):
            column = (j + shift_w) % w
            for k in range(c):
                out[image, target, column, k] = x[image, i, j, k]
    return out


@nb.njit(parallel=True, cache=True)
def gate_channels(x, gate, out):
    """out[n, p, c] = x[n, p, c] * gate[n, c]: one weight per image and channel (a squeeze-excite gate),
    the images in parallel. x, out: [N, pixels, C]; gate: [N, C]."""
    n_img, pixels, c = x.shape
    for n in nb.prange(n_img):
        for p in range(pixels):
            for j in range(c):
                out[n, p, j] = x[n, p, j] * gate[n, j]
    return out


@nb.njit(parallel=True, cache=True)
def gate_channels_grads(g, x, gate, dx, dgate):
    """The gradients of :func:`gate_channels` in one pass over g and x: dx = g * gate (skipped when ``dx``
    has no rows) and dgate[n, c] = sum over pixels of g * x, each product rounded to x's dtype as the
    unfused multiply rounds it, summed in float64 pixel by pixel (one image per task: no dependence on
    the thread count)."""
    n_img, pixels, c = x.shape
    for n in nb.prange(n_img):
        total = np.zeros(c)
        for p in range(pixels):
            for j in range(c):
                total[j] += g[n, p, j] * x[n, p, j]
        for j in range(c):
            dgate[n, j] = total[j]
        if len(dx):
            for p in range(pixels):
                for j in range(c):
                    dx[n, p, j] = g[n, p, j] * gate[n, j]
    return dx, dgate


def n_chunks(rows: int) -> int:
    return min(_CHUNKS, rows)


def chunk_total(partial: np.ndarray) -> np.ndarray:
    """The sum of per-chunk partial sums over the chunk axis (-2), chunk 0 first, one add at a time.

    ``partial.sum(axis=-2)`` would let numpy choose the order from the array's layout (pairwise with eight
    accumulators when the chunk axis is contiguous, as with one channel; row by row otherwise), so two ops
    reducing the same values with different channel counts could differ in the last bit. One compiled
    loop: a numpy add per chunk cost more than the sums themselves on small maps."""
    partial = np.ascontiguousarray(partial)
    rows = partial.reshape(-1, partial.shape[-2], partial.shape[-1])
    return _chunk_total(rows).reshape(partial.shape[:-2] + partial.shape[-1:])


@nb.njit(cache=True)
def _chunk_total(partial):
    lead, chunks, c = partial.shape
    total = partial[:, 0, :].copy()
    for i in range(lead):
        for chunk in range(1, chunks):
            for j in range(c):
                total[i, j] += partial[i, chunk, j]
    return total


@nb.njit(parallel=True, cache=True)
def chunk_sums(x, center, squared, n_chunks):
    """Per chunk of rows, per channel: sum of (x - center), or of (x - center)^2 if ``squared``."""
    rows, c = x.shape
    partial = np.zeros((n_chunks, c))
    for chunk in nb.prange(n_chunks):
        for i in range(chunk * rows // n_chunks, (chunk + 1) * rows // n_chunks):
            for j in range(c):
                d = x[i, j] - center[j]
                partial[chunk, j] += d * d if squared else d
    return partial
