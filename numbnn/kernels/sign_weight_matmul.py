"""G @ (scale * S) for a +1/-1 matrix S by table lookup: the input gradient of a binary layer.

A binary convolution's input gradient starts from dcols = G diag(scale) S, with G [M, O] the gradient
of the output (one row per output pixel), scale the per-output-channel alpha and S = sign(W) [O, K]
(K = KH*KW*C_in); col2im then scatters dcols onto dx. BLAS spends one multiply-add per entry of S.
The table-lookup product of :mod:`numbnn.kernels.sign_matmul` does S^T G with vectors along G's
columns; here the +1/-1 matrix is the right operand, so the vectors run along 16 rows of G (16
output pixels) instead: for output channels o..o+3 the signs of S[o:o+4, k] form a 4-bit index b and

    T[b] = sum_{i<4} s_i(b) * scale_{o+i} * G[m:m+16, o+i],    s_i(b) = -1 if bit i of b is set, else +1,

so column k of the 16 rows is the sum of O/4 looked-up vectors, one load and add each instead of 4
multiply-adds per row. The offsets of the looked-up entries depend on the weights alone, so they are
computed once per call (:func:`_lookup_offsets`) and the column loop is loads and adds, four
accumulators deep; each task builds its O/4 tables (15 vector steps each, O * 1 KB) once for its 16
rows and reuses them for all K columns. Results of 16 columns are transposed in registers
(:func:`numbnn.kernels.intrinsics.store_transposed16`) and stored as rows of dcols. On reactnet-a's
and bnn-small's 3x3 shapes with 128-256 output channels the product took 0.6-0.75x BLAS's time at 2
threads, with the transposed store (writing dcols, 4 bytes per value) a fifth of it
(docs/performance.md, section "2026-12-07").

float32 only; sums run in another order than BLAS's and agree to float32 rounding.
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from numbnn.errors import InputError
from numbnn.kernels._checks import require_array
from numbnn.kernels.intrinsics import F16, LANES, aligned_zeros, as_int64s, store_transposed16, vector_pointer
from numbnn.kernels.sign_matmul import table_first, table_step

TABLE = 16 * LANES  # floats per 4-bit table
LOOKUPS_PER_STEP = 8  # offsets per pass of the column loop (the offset rows are padded to a multiple)
_I64 = ir.IntType(64)


def sign_weight_matmul(g, w, scale=None, out=None) -> np.ndarray:
    """(g * scale) @ S as float32 [M, K], S = sign(w) (+1 where w >= 0), ``w`` float [O, K], ``g`` float32
    [M, O], ``scale`` float32 [O] or None (ones). ``out``: a C-contiguous float32 [M, K] buffer to fill."""
    g = require_array(g, "g", (np.float32,), ndim=2)
    w = require_array(w, "w", (np.float32, np.float64), ndim=2)
    m, o = g.shape
    if w.shape[0] != o:
        raise InputError(f"w must have {o} rows (g's columns), got shape {w.shape}")
    scale = np.ones(o, np.float32) if scale is None else require_array(scale, "scale", (np.float32,), ndim=1)
    if scale.shape != (o,):
        raise InputError(f"scale must have shape ({o},), got {scale.shape}")
    shape = (m, w.shape[1])
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif not (isinstance(out, np.ndarray) and out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous):
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise InputError(f"out must be a C-contiguous float32 array of shape {shape}, got {got}")
    return _sign_weight_matmul(g, scale, _lookup_offsets(w), out)


@nb.njit(parallel=True, cache=True)
def _lookup_offsets(w):
    """int32 [K, Q'] with Q = ceil(O/4) tables, Q' rounded up to LOOKUPS_PER_STEP: entry (k, q) is the float
    offset of table q's vector for the signs of w[4q:4q+4, k]; the padding entries point at table Q, all zeros."""
    o, k = w.shape
    tables = (o + 3) // 4
    steps = (tables + LOOKUPS_PER_STEP - 1) // LOOKUPS_PER_STEP
    offsets = np.empty((k, steps * LOOKUPS_PER_STEP), dtype=np.int32)
    for col in nb.prange(k):
        for q in range(steps * LOOKUPS_PER_STEP):
            index = 0
            if q < tables:
                for i in range(min(4, o - 4 * q)):
                    if w[4 * q + i, col] < 0:
                        index |= 1 << i
            offsets[col, q] = min(q, tables) * TABLE + index * LANES
    return offsets


@intrinsic
def _sum_lookups(typingctx, out, at, tables, offsets, first, count):
    """out.flat[at : at+16] = the sum of the table vectors at offsets.flat[first : first+count] (count a
    multiple of 8; four accumulators, so the adds of one column do not wait on each other)."""

    def codegen(context, builder, sig, args):
        at_, first_, count_ = as_int64s(context, builder, (args[1], args[4], args[5]), (sig.args[1], sig.args[4], sig.args[5]))
        offset_data = context.make_array(sig.args[3])(context, builder, args[3]).data
        zero = ir.Constant(F16, [ir.Constant(ir.FloatType(), 0.0)] * LANES)
        sums = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        with cgutils.for_range(builder, builder.udiv(count_, ir.Constant(_I64, LOOKUPS_PER_STEP))) as loop:
            base = builder.add(first_, builder.mul(loop.index, ir.Constant(_I64, LOOKUPS_PER_STEP)))
            vectors = []
            for i in range(LOOKUPS_PER_STEP):
                offset = builder.sext(builder.load(builder.gep(offset_data, [builder.add(base, ir.Constant(_I64, i))])), _I64)
                vectors.append(builder.load(vector_pointer(context, builder, sig.args[2], args[2], offset), align=4))
            for a, total in enumerate(sums):
                builder.store(builder.fadd(builder.load(total), builder.fadd(vectors[2 * a], vectors[2 * a + 1])), total)
        parts = [builder.load(total) for total in sums]
        result = builder.fadd(builder.fadd(parts[0], parts[1]), builder.fadd(parts[2], parts[3]))
        builder.store(result, vector_pointer(context, builder, sig.args[0], args[0], at_), align=4)
        return context.get_dummy_value()

    if not (isinstance(offsets, types.Array) and offsets.dtype == types.int32 and offsets.ndim == 1):
        return None
    return types.none(out, at, tables, offsets, first, count), codegen


@nb.njit(parallel=True, cache=True)
def _sign_weight_matmul(g, scale, offsets, out):
    m, o = g.shape
    k, per_column = offsets.shape
    tables = (o + 3) // 4
    flat_offsets = offsets.reshape(-1)
    for task in nb.prange((m + LANES - 1) // LANES):  # 16 rows of g and of out
        m0 = task * LANES
        rows = min(LANES, m - m0)
        scaled = np.zeros((tables * 4, LANES), dtype=np.float32)  # g[m0:m0+16].T * scale, zero past O and M
        for i in range(rows):
            for c in range(o):
                scaled[c, i] = g[m0 + i, c] * scale[c]
        flat = scaled.reshape(-1)
        table = aligned_zeros((tables + 1) * TABLE)  # the last table stays zero (the offsets' padding)
        for q in range(tables):
            at, row0 = q * TABLE, 4 * q * LANES
            table_first(table, at, flat, row0, LANES)
            for b in range(1, 16):
                low = 0 if b & 1 else (1 if b & 2 else (2 if b & 4 else 3))
                table_step(table, at + b * LANES, at + (b ^ (1 << low)) * LANES, flat, row0 + low * LANES)
        columns = aligned_zeros(LANES * LANES)  # 16 columns' vectors of 16 rows
        for c0 in range(0, k, LANES):
            width = min(LANES, k - c0)
            for j in range(width):
                _sum_lookups(columns, j * LANES, table, flat_offsets, (c0 + j) * per_column, per_column)
            if rows == LANES and width == LANES:
                store_transposed16(out, m0 * k + c0, k, columns, 0)
            else:
                for i in range(rows):
                    for j in range(width):
                        out[m0 + i, c0 + j] = columns[j * LANES + i]
    return out
