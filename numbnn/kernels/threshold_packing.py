"""Sign bits of a layer's output through per-channel thresholds, packed as the next binary layer reads them.

Float rows: bit = x[r, c] < t[c] (a preceding per-channel add, e.g. RSign's bias, folded into
the threshold: x + b < 0 exactly when x < -b). x < t exactly when x - t < 0 (a float difference is 0
only for equal operands, and NaN compares false both ways), so a row's differences go through the
vector sign-mask of 64 elements (:func:`numbnn.kernels.intrinsics.sign_bits64`).

int32 accumulators: bit = (acc[r, c] < t[c]) XOR flip[c], batch norm + sign folded into integer
thresholds (Larq Compute Engine's bitpacked output; ``flip`` where the folded scale is negative).

Channels are packed per group: group g's C/groups channels start a fresh word, bits past the group
are 0. Rows are parallel in blocks of ROW_BLOCK; the entry points have explicit signatures and no
bounds checks (callers check shapes).
"""

import numba as nb
import numpy as np

from numbnn.kernels.channels import shuffle_row
from numbnn.kernels.intrinsics import sign_bits64
from numbnn.kernels.steps import ROW_BLOCK, ROWS
from numbnn.kernels.typed import typed_njit

WORDS = "uint64[:, ::1]"  # packed rows
NO_SHUFFLE = 1  # pack_rows_below's shuffle: one group, the channels as they are


@nb.njit(inline="always")
def difference_scratch(rows, channels):
    """float32 [rows, channels + 64], zero past ``channels``: room for a full 64-lane read at a row's tail.
    Only the tail is zeroed, the rest is always written before it is read (zeroing all of it cost as
    much as the differences: 48 KB per block of 64 rows of 128 channels)."""
    scratch = np.empty((rows, channels + 64), np.float32)
    scratch[:, channels:] = 0.0
    return scratch


@nb.njit(inline="always")
def _pack_signs_row(difference, groups, words, per_group, out):
    """out[g*words + j] = sign bits of group g's 64-lane run j of ``difference`` (bits past the group: 0)."""
    for g in range(groups):
        for j in range(words):
            start = g * per_group + 64 * j
            count = min(64, per_group - 64 * j)
            word = sign_bits64(difference, start)
            if count < 64:
                word &= (np.uint64(1) << np.uint64(count)) - np.uint64(1)
            out[g * words + j] = word


@nb.njit(cache=True)
def pack_rows_below(x, row0, first, last, thresholds, shuffle, groups, difference, packed):
    """Rows first .. last-1 of :func:`pack_below`, row r read from x[r - row0] (``difference``: float32
    scratch [>= last - first, C + 64], zero past C). All the rows' differences are written before any is
    read back as 64 lanes: a wide read right after the narrow writes of the same row waits for them (3x
    slower per row at 32 channels).

    ``shuffle`` > 1 packs the channels after ShuffleNet's channel shuffle in that many groups (FTBNN's
    shuffle before the next binary conv, done on the row while it is in the cache): channel j*G + g of
    the packed row is x[r, g*(C/G) + j] (:func:`numbnn.kernels.channels.shuffle_columns`; its inverse is
    the shuffle in C/G groups). G = 4 is an interleave LLVM vectorises; a gather through an index
    array cost FTBNN's 14x14 convs about 0.5 ms each at batch 256 (a probe on Zen 4, 2026-12-07)."""
    channels = x.shape[1]
    per_group = channels // groups
    words = (per_group + 63) // 64
    for r in range(first, last):
        row = difference[r - first, :channels]
        if shuffle > 1:
            shuffle_row(x[r - row0], row, shuffle, False)
            for c in range(channels):
                row[c] = row[c] - thresholds[c]
        else:
            for c in range(channels):
                row[c] = x[r - row0, c] - thresholds[c]
    for r in range(first, last):
        _pack_signs_row(difference[r - first], groups, words, per_group, packed[r])


@nb.njit(parallel=True, cache=True)
def _pack_short_rows(x, thresholds, packed):
    """:func:`pack_below` for one group of C channels, C a divisor of 64: x's rows read as one flat run,
    64 values (64 / C rows) per vector sign-mask, the word then cut into the rows' words. A row of 32
    channels no longer pays a whole row's loop and a half-empty 64-lane read."""
    rows, channels = x.shape
    flat = x.reshape(-1)
    tiled = np.empty(64, np.float32)  # thresholds repeated along 64 lanes
    for i in range(64):
        tiled[i] = thresholds[i % channels]
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - channels)
    per_read = 64 // channels
    reads = (rows + per_read - 1) // per_read
    for block in nb.prange((reads + ROW_BLOCK - 1) // ROW_BLOCK):
        difference = np.empty(64, np.float32)
        for read in range(block * ROW_BLOCK, min(reads, (block + 1) * ROW_BLOCK)):
            first_row = read * per_read
            count = min(per_read, rows - first_row)
            values = flat[first_row * channels:(first_row + count) * channels]
            for i in range(values.size):
                difference[i] = values[i] - tiled[i]
            word = sign_bits64(difference, 0)  # lanes past the values are never used
            for q in range(count):
                packed[first_row + q, 0] = (word >> np.uint64(q * channels)) & mask


@typed_njit(f"void({ROWS}, float32[::1], int64, int64, {WORDS})", parallel=True, cache=True)
def pack_below(x, thresholds, groups, shuffle, packed):
    """packed[r] bit i of group g's word j = x[r, g*Cg + 64*j + i] < thresholds[...] (tail bits 0); with ``shuffle``
    > 1, of x's row after ShuffleNet's channel shuffle in that many groups, as :func:`pack_rows_below` takes it
    (a packed model's shuffle of a map no fused conv wrote: FTBNN's stem, as a ``gather_pack`` reads it)."""
    rows, channels = x.shape
    if groups == 1 and 64 % channels == 0 and shuffle == NO_SHUFFLE:
        _pack_short_rows(x, thresholds, packed)
        return
    n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    for block in nb.prange(n_blocks):
        difference = difference_scratch(ROW_BLOCK, channels)
        pack_rows_below(x, 0, block * ROW_BLOCK, min(rows, (block + 1) * ROW_BLOCK), thresholds, shuffle, groups, difference,
                        packed)


@typed_njit(f"void(int32[:, ::1], int32[::1], boolean[::1], int64, {WORDS})", parallel=True, cache=True)
def pack_acc_below(acc, thresholds, flip, groups, packed):
    """Like :func:`pack_below` for int32 ``acc``: bit = (acc < thresholds[c]) XOR flip[c]."""
    rows, channels = acc.shape
    per_group = channels // groups
    words = (per_group + 63) // 64
    for r in nb.prange(rows):
        for g in range(groups):
            for j in range(words):
                start = g * per_group + 64 * j
                stop = min(start + 64, (g + 1) * per_group)
                word = np.uint64(0)
                for c in range(start, stop):
                    bit = (acc[r, c] < thresholds[c]) != flip[c]
                    word |= np.uint64(bit) << np.uint64(c - start)
                packed[r, g * words + j] = word


def gather_runs(index: np.ndarray, channels: int, source_channels: int) -> tuple[int, np.ndarray]:
    """(run, first_channel) for :func:`gather_pack`: the longest run L (a divisor of ``channels``) such that
    every aligned L-element chunk of every rearranged row is L consecutive elements of one source pixel,
    or L padding constants; first_channel int32 [index.size / L], each chunk's first source channel (0
    for padding). Space-to-depth moves whole pixels (L = C), a channel shuffle single channels (L = 1)."""
    for run in range(channels, 0, -1):
        if channels % run:
            continue
        chunks = index.reshape(-1, run).astype(np.int64)
        first = chunks[:, 0]
        consecutive = (chunks == first[:, None] + np.arange(run)).all(axis=1) & (first % source_channels + run <= source_channels)
        padding = (chunks < 0).all(axis=1)
        if (((first >= 0) & consecutive) | padding).all():
            return run, np.where(first >= 0, first % source_channels, 0).astype(np.int32)
    raise AssertionError("unreachable: runs of 1 always qualify")


@typed_njit(f"void({ROWS}, int32[::1], int64, int32[::1], float32[::1], float32[::1], float32[::1], int64, {WORDS})",
         parallel=True, cache=True)
def gather_pack(x, index, run, first_channel, shift, fill, thresholds, groups, packed):
    """Like :func:`pack_below` for a rearranged view of x: element e of an image's rearranged slice is
    float32(x_image.flat[index[e]] + shift[its source channel]), or fill[-1 - index[e]] where index is
    negative (a padding constant). ``shift`` [source channels, or 0 for none] is a per-channel add before
    the rearrangement (RB-Net's activation shift), done here instead of in a pass of its own: the same
    float32 sum.
    ``run``/``first_channel`` (:func:`gather_runs`) let whole runs of consecutive elements be read as
    one contiguous (vector) loop. ``x`` [N, S] (one flattened image per row), ``packed`` [N * rows, words]
    with rows * C = index.size. As in :func:`pack_rows_below`, a block's differences are all written
    before any row is packed."""
    n = x.shape[0]
    channels = thresholds.size
    rows = index.size // channels
    chunks = channels // run
    per_group = channels // groups
    words = (per_group + 63) // 64
    tasks = n * rows
    shifted = shift.size > 0
    for block in nb.prange((tasks + ROW_BLOCK - 1) // ROW_BLOCK):
        first, last = block * ROW_BLOCK, min(tasks, (block + 1) * ROW_BLOCK)
        difference = difference_scratch(ROW_BLOCK, channels)
        for task in range(first, last):
            b, row = task // rows, task % rows
            image, out = x[b], difference[task - first]
            if run == 1:  # element by element (a channel shuffle): the run loop below took 2.3x as long here
                for c in range(channels):
                    source = index[row * channels + c]
                    if source >= 0:
                        value = image[source] + shift[first_channel[row * channels + c]] if shifted else image[source]
                    else:
                        value = fill[-1 - source]
                    out[c] = value - thresholds[c]
                continue
            for k in range(chunks):  # views from index 0: Numba proves their indices non-negative, so it vectorises
                c0, element = k * run, row * channels + k * run
                source = index[element]
                chunk, limits = out[c0:c0 + run], thresholds[c0:c0 + run]
                if source >= 0:
                    values = image[source:source + run]
                    if shifted:
                        s0 = first_channel[row * chunks + k]
                        shifts = shift[s0:s0 + run]
                        for j in range(run):
                            chunk[j] = values[j] + shifts[j] - limits[j]
                    else:
                        for j in range(run):
                            chunk[j] = values[j] - limits[j]
                else:
                    for j in range(run):
                        chunk[j] = fill[-1 - index[element + j]] - limits[j]
        for task in range(first, last):
            _pack_signs_row(difference[task - first], groups, words, per_group, packed[task])
