"""S^T @ G for a +1/-1 matrix S by table lookup: the weight gradient of a binary layer.

A binary convolution's weight gradient is dW = S^T G, with S [M, K] the +1/-1 columns of sign(x)
(one row per output pixel) and G [M, O] the gradient of the output. BLAS spends one multiply-add
per entry of S. Here the signs of 4 consecutive rows of S form a 4-bit index b, and for a block of
16 output channels those 4 rows contribute one of only 16 vectors,

    T[b] = sum_{i<4} s_i(b) * G[row_i, o:o+16],     s_i(b) = -1 if bit i of b is set, else +1,

so once the table is built each column k costs one vector load and add instead of 4 multiply-adds.
The table takes 15 vector steps, T[b] = T[b - lowbit(b)] - 2 * G[row of that bit], from T[0] = the
sum of the 4 rows. Eight tables cover 32 rows, and one pass over the columns adds the eight looked-
up vectors into column k's accumulator (table-lookup products as in BiQGEMM, Jeon et al. 2020, and
LUT-GEMM, Park et al. 2022, here for +1/-1 matrices and 4-bit indices, whose tables stay in L1).

Work per 32 rows and 16 output channels: 8 x 15 table steps, then 8 loads and adds per column,
against 32 multiply-adds per column for BLAS; the tables pay off from a few hundred columns on (a
3x3 binary conv has K = 9 * C_in). S also arrives as bits, 32 times less memory than floats. Each
parallel task owns 16 output channels and a run of columns: all of them where the channel blocks alone
give every thread the same number of tasks, else as few runs as even that out (:func:`_column_runs`).
A task builds its tables once per 32 rows whatever its run's length, so long runs build fewer of them;
their accumulators outgrow L1 and stream through L2 instead, which cost less: against runs of at most
256-512 columns (an accumulator of 32 KB), 0.86-0.93x the time on the zoo's shapes with 64-256 channels
and the same on the narrow ones (a probe on AMD EPYC Zen 4, 2026-12-07; Intel not measured). Where a group has a multiple of 32 output
channels a task owns two 16-channel blocks, with a table set each, and both blocks' lookups use the
offsets computed once from the column's bits: that scalar work (4 byte loads, 8 nibble offsets), not
the vector adds, bounds the column loop; with it and aligned scratch the product took 0.75-0.80x the
time on reactnet-a's, bnn-small's and ftbnn's wider shapes at 2 threads (`benchmarks/weight_grad_kernels.py`,
Intel Xeon, 2026-12-06; the same sums in the same order).

Layout of S: uint8 [ceil(M/32), 4, K]; byte (j, q, k) has bit i set iff S[32j + 8q + i, k] is -1.
Rows past M have clear bits and count as zero rows of G. :func:`pack_sign_columns` builds it for
the im2col matrix of sign(x) straight from NHWC x (no float columns), with padding taps as +1 (clear
bits); where each group's channels are whole 16-value vectors, a task writes one byte row (8 rows of S)
with one 16-byte store per 16 columns, the 8 rows' values compared and shifted together (FTBNN's 16-
and 32-channel groups: 0.70-0.76x the time of OR-ing in one row's bit per store; the other zoo shapes
1.03-1.14x, within the noise of one series; `benchmarks/weight_grad_kernels.py`, 2026-12-07).
:func:`padding_tap_sums` gives what the padding taps added, for callers whose padding is 0 or -1.
float32 only; the 16-float vectors are LLVM vector IR (one AVX-512 instruction or two AVX2 ones).
Sums run in a different order than BLAS's: results agree to float32 rounding.

Grouped convolutions (``groups=G``): the columns are group-major as in :func:`numbnn.kernels.im2col`
(group g's K_g = K/G columns are the block g*K_g:(g+1)*K_g) and the weight gradient is block-diagonal,
dW_g = S_g^T G_g for the O/G output channels of group g. Each task's 16 channels lie in one group
(the channel count per group is padded to whole vectors if need be), so it reads only its group's
columns: the same work per multiply-add as one group alone, and one call covers every group.
"""

import functools

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from numbnn.errors import InputError
from numbnn.kernels._checks import as_int, require_array
from numbnn.kernels.channels import chunk_total, n_chunks
from numbnn.kernels.geometry import conv_geometry
from numbnn.kernels.intrinsics import F16 as _F16
from numbnn.kernels.intrinsics import LANES, aligned_zeros
from numbnn.kernels.intrinsics import as_int64s as _as_i64
from numbnn.kernels.intrinsics import vector_pointer as _vector_pointer

# LANES (16, numbnn.kernels.intrinsics): output channels per vector and per table
CHUNK = 32  # rows of S per eight tables (one 4-bit table per 4 rows)
PARTIAL_VALUES = 1 << 16  # padding_tap_sums: float64 partial sums per call (512 KB)
PADDING_SOURCE = -(1 << 62)  # _pack_sign_columns: the source offset of a padding tap, negative after any channel offset
PACK_BYTE_ROWS = 16  # _pack_sign_columns: byte rows (8 rows of S each) per parallel task
MIN_TASKS_PER_THREAD = 4  # _column_runs: enough tasks per thread to even out an odd split
_I64 = ir.IntType(64)


def pack_sign_columns(x, kernel_size, stride=1, padding=0, dilation=1, groups=1, shift=None) -> np.ndarray:
    """Bits of S = im2col(sign(x)) ([N*Ho*Wo, KH*KW*C], as :func:`numbnn.kernels.im2col` with the same
    ``groups``) packed along its rows: uint8 [ceil(M/32), 4, K]. Padding taps count as +1 (clear bits).
    ``shift``: None, or one value per channel (x's dtype): the signs of x + shift instead (RSign's threshold,
    as :func:`numbnn.kernels.packing.pack_activations` takes it); padding taps stay +1."""
    x = require_array(x, "x", (np.float32, np.float64), ndim=4)
    groups = as_int(groups, "groups", 1)
    if x.shape[3] % groups:
        raise InputError(f"x has {x.shape[3]} channels, not divisible by groups={groups}")
    if shift is not None:
        shift = require_array(shift, "shift", (x.dtype.type,), ndim=1)
        if shift.shape != (x.shape[3],):
            raise InputError(f"shift must have shape ({x.shape[3]},) (one per channel), got {shift.shape}")
    g = conv_geometry(x.shape[1], x.shape[2], kernel_size, stride, padding, dilation)
    rows, k = x.shape[0] * g.ho * g.wo, g.kh * g.kw * x.shape[3]
    bits = np.empty((-(-rows // CHUNK), 4, k), dtype=np.uint8)
    _pack_sign_columns(x, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo, groups, shift, bits)
    return bits


def padding_tap_sums(g, input_hw, kernel_size, stride=1, padding=0, dilation=1) -> np.ndarray:
    """[KH*KW, O] float64: per kernel tap, the sum of the rows of ``g`` [N*Ho*Wo, O] (output pixels)
    whose tap falls in the padding of an ``input_hw`` = (H, W) input. S^T g over columns whose
    padding taps hold p instead of +1 is then off by (1 - p) * these sums in each of the tap's rows.

    Only the border band of output pixels that have a tap in the padding is read (for a 3x3 conv with
    padding 1 on 28x28 maps, 108 of 784 pixels): those rows of every image are gathered and summed over the
    images (float64, fixed chunks), then each tap adds up the band pixels its padding covers."""
    g = require_array(g, "g", (np.float32, np.float64), ndim=2)
    geom = conv_geometry(input_hw[0], input_hw[1], kernel_size, stride, padding, dilation)
    pixels = geom.ho * geom.wo
    if len(g) % pixels:
        raise InputError(f"g has {len(g)} rows, not a whole number of {geom.ho}x{geom.wo} output maps")
    band, covered = _padding_band(int(input_hw[0]), int(input_hw[1]), geom)
    sums = np.zeros((geom.kh * geom.kw, g.shape[1]))
    if band.size == 0:
        return sums
    # few chunks of wide rows: n_chunks' 64 (made for tall, narrow maps) gave a float64 partial as large as g
    chunks = max(1, min(n_chunks(len(g) // pixels), PARTIAL_VALUES // (band.size * g.shape[1])))
    partial = _band_sums(g, pixels, band, chunks).reshape(chunks, -1)
    maps = chunk_total(partial).reshape(band.size, g.shape[1])  # each band pixel summed over the images
    for tap, pixels_of_tap in enumerate(covered):
        sums[tap] = maps[pixels_of_tap].sum(axis=0)
    return sums


@functools.lru_cache(maxsize=64)
def _padding_band(h: int, w: int, geom) -> tuple[np.ndarray, np.ndarray]:
    """(band, covered) of a conv geometry on an h x w input: the flat output pixels with a tap in the padding,
    and per tap which of them read the padding with it ([KH*KW, band] bool). Cached: a layer asks every step."""
    padded = np.ones((geom.kh * geom.kw, geom.ho, geom.wo), dtype=bool)  # tap t of pixel (y, x) reads the padding
    for i in range(geom.kh):
        y0, y1 = _inside(h, geom.ho, geom.sh, geom.ph, i * geom.dh)
        for j in range(geom.kw):
            x0, x1 = _inside(w, geom.wo, geom.sw, geom.pw, j * geom.dw)
            padded[i * geom.kw + j, y0:y1, x0:x1] = False
    band = np.flatnonzero(padded.any(axis=0))
    covered = padded.reshape(len(padded), -1)[:, band]
    band.setflags(write=False)
    covered.setflags(write=False)
    return band, covered


@nb.njit(parallel=True, cache=True)
def _band_sums(g, pixels, band, n_chunks):
    """partial[chunk, b, o] = the float64 sum of g[image * pixels + band[b], o] over the chunk's images."""
    images, width = len(g) // pixels, g.shape[1]
    partial = np.zeros((n_chunks, band.size, width))
    for chunk in nb.prange(n_chunks):
        for image in range(chunk * images // n_chunks, (chunk + 1) * images // n_chunks):
            for b in range(band.size):
                total, row = partial[chunk, b], g[image * pixels + band[b]]
                for o in range(width):
                    total[o] += row[o]
    return partial


def _inside(size, out, stride, pad, offset):
    """Range [lo, hi) of output positions o whose input o*stride - pad + offset lies in [0, size)."""
    lo = min(out, max(0, -(-(pad - offset) // stride)))
    hi = min(out, max(lo, (size - 1 + pad - offset) // stride + 1))
    return lo, hi


def sign_rows_matmul(bits, g, groups=1) -> np.ndarray:
    """S^T @ g as float32 [K, O], S the +1/-1 matrix of ``bits`` (from :func:`pack_sign_columns`) with
    M = len(g) rows; ``g`` float32 [M, O]. The result is the transpose of a C-contiguous [O, K] array
    (a weight gradient's layout, so ``.T`` of it needs no copy).

    With ``groups`` > 1 (bits packed with the same ``groups``): the per-group products S_g^T g_g, as
    float32 [K/G, O] (column o: output channel o's group); again the transpose of a C-contiguous array."""
    bits = require_array(bits, "bits", (np.uint8,), ndim=3)
    g = require_array(g, "g", (np.float32,), ndim=2)
    groups = as_int(groups, "groups", 1)
    chunks, four, k = bits.shape
    rows, o = g.shape
    if four != 4:
        raise InputError(f"bits must have shape [chunks, 4, K], got {bits.shape}")
    if not CHUNK * (chunks - 1) < rows <= CHUNK * chunks:
        raise InputError(f"g has {rows} rows, but bits hold {chunks} chunks of {CHUNK} rows")
    if k % groups or o % groups:
        raise InputError(f"bits' {k} columns and g's {o} channels must both be divisible by groups={groups}")
    per_group = o // groups
    if per_group % LANES:  # rare: pad each group's channels to whole vectors
        wide = per_group + LANES - per_group % LANES
        padded = np.zeros((rows, groups, wide), dtype=np.float32)
        padded[:, :, :per_group] = g.reshape(rows, groups, per_group)
        full = sign_rows_matmul(bits, padded.reshape(rows, groups * wide), groups).T  # [G*wide, K/G]
        return np.ascontiguousarray(full.reshape(groups, wide, -1)[:, :per_group]).reshape(o, -1).T
    return _sign_rows_matmul(bits, g, groups, nb.get_num_threads())


@intrinsic
def _signs16_of_8_rows(typingctx, bits, at, x, blank, sources, shift, shift_at):
    """bits.flat[at : at+16] = the byte vector whose bit i is (x.flat[sources[i] + v] < 0) for v < 16: eight
    rows' signs in one store. A negative source is a padding tap or a row past M: read from ``blank`` (16
    zeros, so a clear bit) instead of x. ``shift``: None, or an array whose 16 values at ``shift_at`` are
    added to each row's x values before the compare (not to a padding tap's). No bounds checks."""
    if not (isinstance(x, types.Array) and x.dtype in (types.float32, types.float64) and blank == x
            and isinstance(sources, types.UniTuple) and sources.count == 8 and isinstance(sources.dtype, types.Integer)
            and (shift == types.none or (isinstance(shift, types.Array) and shift.dtype == x.dtype and shift.ndim == 1))
            and isinstance(shift_at, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        at_, shift_at_ = _as_i64(context, builder, (args[1], args[6]), (sig.args[1], sig.args[6]))
        element = context.get_data_type(sig.args[2].dtype)
        floats = ir.VectorType(element, LANES)
        bytes16 = ir.VectorType(ir.IntType(8), LANES)
        x_data = context.make_array(sig.args[2])(context, builder, args[2]).data
        blank_data = context.make_array(sig.args[3])(context, builder, args[3]).data
        zero = ir.Constant(floats, [ir.Constant(element, 0.0)] * LANES)
        items = _as_i64(context, builder, cgutils.unpack_tuple(builder, args[4], 8), [sig.args[4].dtype] * 8)
        shifts = None
        if sig.args[5] != types.none:  # the same 16 channels for all eight rows: one load
            shift_data = context.make_array(sig.args[5])(context, builder, args[5]).data
            shifts = builder.load(builder.bitcast(builder.gep(shift_data, [shift_at_]), floats.as_pointer()), align=4)
        result = None
        for i, src in enumerate(items):
            inside = builder.icmp_signed(">=", src, ir.Constant(_I64, 0))
            pointer = builder.select(inside, builder.gep(x_data, [src]), blank_data)
            values = builder.load(builder.bitcast(pointer, floats.as_pointer()), align=4)
            if shifts is not None:
                values = builder.select(inside, builder.fadd(values, shifts), values)
            negative = builder.zext(builder.fcmp_ordered("<", values, zero), bytes16)
            shifted = builder.shl(negative, ir.Constant(bytes16, [ir.Constant(ir.IntType(8), i)] * LANES)) if i else negative
            result = shifted if result is None else builder.or_(result, shifted)
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        builder.store(result, builder.bitcast(builder.gep(data, [at_]), bytes16.as_pointer()), align=1)
        return context.get_dummy_value()

    return types.none(bits, at, x, blank, sources, shift, shift_at), codegen


@nb.njit(parallel=True, cache=True)
def _pack_sign_columns(x, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, groups, shift, bits):
    n_img, h, w, c = x.shape
    cg = c // groups
    group_len = kh * kw * cg  # columns per group
    rows = n_img * ho * wo
    flat = x.reshape(-1)
    flat_bits = bits.reshape(-1)
    k = bits.shape[2]
    if cg % LANES == 0:  # each group's run of a tap is whole 16-value vectors: 8 rows per byte store
        blank = np.zeros(LANES, dtype=x.dtype)
        byte_rows = bits.shape[0] * 4
        for block in nb.prange((byte_rows + PACK_BYTE_ROWS - 1) // PACK_BYTE_ROWS):
            image, top, left = np.empty(8, np.int64), np.empty(8, np.int64), np.empty(8, np.int64)
            for task in range(block * PACK_BYTE_ROWS, min(byte_rows, (block + 1) * PACK_BYTE_ROWS)):
                row_at = task * k  # bits.flat offset of byte row (chunk, q): 8 rows of S
                for t in range(8):  # each row's image and the input row and column of its first tap
                    r = task * 8 + t  # (chunk * CHUNK + 8 * q + t)
                    image[t] = r // (ho * wo) if r < rows else -1
                    top[t], left[t] = (r // wo) % ho * sh - ph, r % wo * sw - pw
                for i in range(kh):
                    for j in range(kw):
                        at = (i * dh, j * dw)
                        s0, s1 = _tap_source(image, top, left, 0, at, h, w, c), _tap_source(image, top, left, 1, at, h, w, c)
                        s2, s3 = _tap_source(image, top, left, 2, at, h, w, c), _tap_source(image, top, left, 3, at, h, w, c)
                        s4, s5 = _tap_source(image, top, left, 4, at, h, w, c), _tap_source(image, top, left, 5, at, h, w, c)
                        s6, s7 = _tap_source(image, top, left, 6, at, h, w, c), _tap_source(image, top, left, 7, at, h, w, c)
                        for grp in range(groups):
                            dst = row_at + grp * group_len + (i * kw + j) * cg - grp * cg
                            for v in range(grp * cg, (grp + 1) * cg, LANES):
                                _signs16_of_8_rows(flat_bits, dst + v, flat, blank,
                                                   (s0 + v, s1 + v, s2 + v, s3 + v, s4 + v, s5 + v, s6 + v, s7 + v),
                                                   shift, v)
        return
    for chunk in nb.prange(bits.shape[0]):
        bits[chunk] = 0
        for r in range(chunk * CHUNK, min(rows, (chunk + 1) * CHUNK)):
            q, bit = (r % CHUNK) // 8, np.uint8(r % 8)
            row_at = (chunk * 4 + q) * k  # bits.flat offset of byte row (chunk, q)
            n, oy, ox = r // (ho * wo), (r // wo) % ho, r % wo
            for i in range(kh):
                iy = oy * sh - ph + i * dh
                if iy < 0 or iy >= h:
                    continue  # padding: +1, a clear bit
                for j in range(kw):
                    ix = ox * sw - pw + j * dw
                    if ix < 0 or ix >= w:
                        continue
                    for grp in range(groups):  # unsigned offsets: no negative-index wraparound, so LLVM vectorises the run
                        src = np.uint64(((n * h + iy) * w + ix) * c + grp * cg)
                        dst = np.uint64(grp * group_len + (i * kw + j) * cg)
                        if shift is None:
                            for ch in range(np.uint64(cg)):  # contiguous in x and in the bit row
                                bits[chunk, q, dst + ch] |= np.uint8(flat[src + ch] < 0) << bit
                        else:
                            first = np.uint64(grp * cg)  # the run's first channel
                            for ch in range(np.uint64(cg)):
                                bits[chunk, q, dst + ch] |= np.uint8(flat[src + ch] + shift[first + ch] < 0) << bit


@nb.njit(inline="always")
def _tap_source(image, top, left, t, at, h, w, c):
    """x.flat offset of the first channel that row t reads at tap offset ``at`` = (dy, dx); PADDING_SOURCE for
    a padding tap or a row past M (image -1)."""
    iy, ix = top[t] + at[0], left[t] + at[1]
    if image[t] < 0 or iy < 0 or iy >= h or ix < 0 or ix >= w:
        return PADDING_SOURCE
    return ((image[t] * h + iy) * w + ix) * c


@intrinsic
def _table_first(typingctx, table, at, g, row, stride):
    """table.flat[at : at+16] = sum_{i<4} g.flat[row + i*stride : +16] (no bounds checks)."""

    def codegen(context, builder, sig, args):
        at_, row_, stride_ = _as_i64(context, builder, (args[1], args[3], args[4]), (sig.args[1], sig.args[3], sig.args[4]))
        total = None
        for i in range(4):
            offset = builder.add(row_, builder.mul(stride_, ir.Constant(_I64, i)))
            vector = builder.load(_vector_pointer(context, builder, sig.args[2], args[2], offset), align=4)
            total = vector if total is None else builder.fadd(total, vector)
        builder.store(total, _vector_pointer(context, builder, sig.args[0], args[0], at_), align=4)
        return context.get_dummy_value()

    return types.none(table, at, g, row, stride), codegen


@intrinsic
def _table_step(typingctx, table, at, source, g, row):
    """table.flat[at : at+16] = table.flat[source : +16] - 2 * g.flat[row : +16]."""

    def codegen(context, builder, sig, args):
        at_, source_, row_ = _as_i64(context, builder, (args[1], args[2], args[4]), (sig.args[1], sig.args[2], sig.args[4]))
        previous = builder.load(_vector_pointer(context, builder, sig.args[0], args[0], source_), align=4)
        value = builder.load(_vector_pointer(context, builder, sig.args[3], args[3], row_), align=4)
        two = ir.Constant(_F16, [ir.Constant(ir.FloatType(), 2.0)] * LANES)
        result = builder.fsub(previous, builder.fmul(two, value))
        builder.store(result, _vector_pointer(context, builder, sig.args[0], args[0], at_), align=4)
        return context.get_dummy_value()

    return types.none(table, at, source, g, row), codegen


@nb.njit(inline="always")
def build_table(tables, at, g, row, stride):
    """tables.flat[at + 16b : +16] = T[b] for b < 16: the signed sums of the 4 rows g.flat[row + i*stride : +16]
    (module docstring), T[0] first, then each from the entry without its lowest set bit."""
    _table_first(tables, at, g, row, stride)
    for b in range(1, 16):
        low = 0 if b & 1 else (1 if b & 2 else (2 if b & 4 else 3))
        _table_step(tables, at + b * LANES, at + (b ^ (1 << low)) * LANES, g, row + low * stride)


@intrinsic
def _add_lookups(typingctx, acc, at, table, offsets, shift):
    """acc.flat[at : at+16] += the sum of the 8 table vectors at ``offsets`` (a UniTuple of 8 ints) + ``shift``."""

    def codegen(context, builder, sig, args):
        at_, shift_ = _as_i64(context, builder, (args[1], args[4]), (sig.args[1], sig.args[4]))
        items = cgutils.unpack_tuple(builder, args[3], 8)
        offsets_ = [builder.add(o, shift_) for o in _as_i64(context, builder, items, [sig.args[3].dtype] * 8)]
        v = [builder.load(_vector_pointer(context, builder, sig.args[2], args[2], o), align=4) for o in offsets_]
        pairs = [builder.fadd(v[i], v[i + 1]) for i in range(0, 8, 2)]
        total = builder.fadd(builder.fadd(pairs[0], pairs[1]), builder.fadd(pairs[2], pairs[3]))
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], at_)
        builder.store(builder.fadd(builder.load(pointer, align=4), total), pointer, align=4)
        return context.get_dummy_value()

    if not (isinstance(offsets, types.UniTuple) and offsets.count == 8 and isinstance(offsets.dtype, types.Integer)):
        return None
    return types.none(acc, at, table, offsets, shift), codegen


@nb.njit(inline="always")
def _lookup_offsets(flat_bits, at, k, size):
    """Offsets into eight 4-bit tables of the nibbles of column ``at``'s four bytes (one per 8 rows, k apart)."""
    b0, b1 = np.int64(flat_bits[at]), np.int64(flat_bits[at + k])
    b2, b3 = np.int64(flat_bits[at + 2 * k]), np.int64(flat_bits[at + 3 * k])
    return ((b0 & 15) * LANES, size + (b0 >> 4) * LANES, 2 * size + (b1 & 15) * LANES,
            3 * size + (b1 >> 4) * LANES, 4 * size + (b2 & 15) * LANES, 5 * size + (b2 >> 4) * LANES,
            6 * size + (b3 & 15) * LANES, 7 * size + (b3 >> 4) * LANES)


@nb.njit(inline="always")
def _column_runs(channel_tasks, columns, threads):
    """Runs of columns per block of output channels: 1 where the channel blocks alone give every thread
    the same number of tasks (or at least MIN_TASKS_PER_THREAD each), else the fewest that do."""
    runs = 1
    while (channel_tasks * runs) % threads and channel_tasks * runs < MIN_TASKS_PER_THREAD * threads and runs < columns:
        runs += 1
    return runs


@nb.njit(parallel=True, cache=True)
def _sign_rows_matmul(bits, g, groups, threads):
    chunks, _, k = bits.shape
    rows, o = g.shape
    group_len, per_group = k // groups, o // groups  # per_group: a multiple of LANES
    out = np.empty((o, group_len), dtype=np.float32)  # (S^T g)^T: written column by column by each task
    flat_bits = bits.reshape(-1)
    size = 16 * LANES  # one 4-bit table
    vectors = 2 if per_group % (2 * LANES) == 0 else 1  # 16-channel blocks per task (module docstring)
    width = vectors * LANES
    column_blocks = _column_runs(o // width, group_len, threads)
    block = (group_len + column_blocks - 1) // column_blocks  # balanced blocks
    column_blocks = (group_len + block - 1) // block  # none left empty (5 columns in 4 runs of 2: 3 runs)
    for task in nb.prange((o // width) * column_blocks):
        o0, k0 = (task // column_blocks) * width, (task % column_blocks) * block
        k1 = min(group_len, k0 + block)
        base = (o0 // per_group) * group_len  # the first bit column of channel o0's group
        acc = aligned_zeros((k1 - k0) * width)  # aligned: each vector one cache line (numbnn.kernels.intrinsics)
        tables = aligned_zeros(8 * size * vectors)
        tail = np.zeros((CHUNK, width), dtype=np.float32)  # this task's part of a partial last chunk
        for chunk in range(chunks):
            source, first, stride, col0 = g, chunk * CHUNK, o, o0
            if first + CHUNK > rows:
                tail[: rows - first] = g[first:rows, o0 : o0 + width]
                source, first, stride, col0 = tail, 0, width, 0
            flat = source.reshape(-1)
            for v in range(vectors):
                for t in range(8):  # table t of block v: rows 4t .. 4t+3 of the chunk
                    row0 = (first + 4 * t) * stride + col0 + v * LANES
                    table = (v * 8 + t) * size
                    build_table(tables, table, flat, row0, stride)
            at = chunk * 4 * k + base
            if vectors == 2:  # one loop per case: a test inside the column loop cost the 1-block case ~5%
                for col in range(k0, k1):
                    offsets = _lookup_offsets(flat_bits, at + col, k, size)
                    _add_lookups(acc, (col - k0) * width, tables, offsets, 0)
                    _add_lookups(acc, (col - k0) * width + LANES, tables, offsets, 8 * size)
            else:
                for col in range(k0, k1):
                    _add_lookups(acc, (col - k0) * LANES, tables, _lookup_offsets(flat_bits, at + col, k, size), 0)
        for lane in range(width):
            for col in range(k0, k1):
                out[o0 + lane, col] = acc[(col - k0) * width + lane]
    return out.T
