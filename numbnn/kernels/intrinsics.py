"""LLVM intrinsics the kernels need and Numba does not expose.

- :func:`popcount` emits ``llvm.ctpop.i64``; LLVM turns it into one POPCNT instruction (or, inside
  a vectorised loop on AVX-512 VPOPCNTDQ, into VPOPCNTQ on 8 words at once).
- :func:`sign_bits64` loads 64 consecutive elements, compares them with 0 and bitcasts the 64 result
  flags to one i64 (bit i = element i < 0). LLVM lowers this to a few vector compares plus a mask move
  (VCMPPS into k-registers on AVX-512, VMOVMSKPS on AVX2): packing runs at memory speed.
- :func:`shifted_sign_bits64` does the same for x + b, b a per-channel threshold read beside x (RSign's
  sign(x + b) packed without writing x + b).
- :func:`store_signs64` does the reverse: bit i of a word selects -1 (set) or +1 (clear) for
  element i of 64 consecutive float32 outputs.

The two vector helpers read/write ``arr.flat[offset : offset + 64]`` of a C-contiguous array with no
bounds check; callers guarantee ``offset + 64 <= arr.size``.

:func:`vector_pointer` and :func:`as_int64s` are codegen helpers for kernels that write their own vector
IR (:mod:`numbnn.kernels.sign_matmul`, :mod:`numbnn.kernels.conv_input_grad`): 16-float vectors, one
AVX-512 register or two AVX2 ones. :func:`aligned_zeros` gives scratch buffers on 64-byte boundaries:
a 64-byte vector that starts off one spans two cache lines, and Numba's allocations start 32 bytes off
it about half the time, so every vector load and store of such a buffer was two. Aligned, the
table-lookup product of :mod:`numbnn.kernels.sign_matmul` took 0.80-0.87x the time on one thread in a
probe (Intel Xeon, 2026-12-06); the tiled input gradient's buffers gained nothing and stay plain.
:func:`add_vector` adds 16 floats onto 16 others (the input gradients' scatter onto dx), and
:func:`store_transposed16` stores a 16x16 block transposed, in registers (the lookup input gradient's
columns become rows of pixels).
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I64 = ir.IntType(64)
LANES = 16  # floats per vector of the vector-IR kernels
F16 = ir.VectorType(ir.FloatType(), LANES)


@nb.njit(cache=True)
def aligned_zeros(n):
    """n float32 zeros whose data starts on a 64-byte boundary (a view into a slightly longer array)."""
    store = np.zeros(n + LANES, dtype=np.float32)
    skip = (LANES - (store.ctypes.data // 4) % LANES) % LANES
    return store[skip : skip + n]


def vector_pointer(context, builder, array_type, array, offset):
    """Pointer to the 16 floats ``array.flat[offset : offset + 16]`` (``offset`` an LLVM i64), as a <16 x float>*."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [offset]), F16.as_pointer())


def as_int64s(context, builder, values, value_types):
    """Numba integer arguments cast to LLVM i64 values."""
    return [context.cast(builder, v, t, types.int64) for v, t in zip(values, value_types)]


@intrinsic
def popcount(typingctx, word):
    """Number of set bits of a 64-bit integer, as an int64 (so sums stay integer in Numba's typing)."""
    if not isinstance(word, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], types.uint64)
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [_I64])
        return builder.call(ctpop, [value])

    return types.int64(word), codegen


def _element_pointer(context, builder, array_type, array, offset):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [offset])


@intrinsic
def sign_bits64(typingctx, array, offset):
    """uint64 whose bit i is 1 iff ``array.flat[offset + i] < 0`` (float32, float64 or int8 array)."""
    if not (isinstance(array, types.Array) and array.layout == "C" and isinstance(offset, types.Integer)):
        return None
    dtype = array.dtype
    if dtype not in (types.float32, types.float64, types.int8):
        return None

    def codegen(context, builder, signature, args):
        array_value, offset_value = args
        offset64 = context.cast(builder, offset_value, signature.args[1], types.int64)
        element = context.get_data_type(dtype)
        vector = ir.VectorType(element, 64)
        pointer = _element_pointer(context, builder, signature.args[0], array_value, offset64)
        loaded = builder.load(builder.bitcast(pointer, vector.as_pointer()), align=1)
        zero = ir.Constant(vector, [ir.Constant(element, 0)] * 64)
        if dtype == types.int8:
            negative = builder.icmp_signed("<", loaded, zero)
        else:
            negative = builder.fcmp_ordered("<", loaded, zero)
        return builder.bitcast(negative, _I64)

    return types.uint64(array, offset), codegen


@intrinsic
def shifted_sign_bits64(typingctx, array, offset, shift, shift_offset):
    """uint64 whose bit i is 1 iff ``array.flat[offset + i] + shift.flat[shift_offset + i] < 0``: the signs
    of x + b (RSign's threshold) without writing x + b; float32 or float64, one dtype, each sum rounded to it."""
    if not (isinstance(array, types.Array) and array.layout == "C" and isinstance(offset, types.Integer)
            and isinstance(shift, types.Array) and shift.layout == "C" and shift.dtype == array.dtype
            and isinstance(shift_offset, types.Integer) and array.dtype in (types.float32, types.float64)):
        return None
    dtype = array.dtype

    def codegen(context, builder, signature, args):
        array_value, offset_value, shift_value, shift_offset_value = args
        element = context.get_data_type(dtype)
        vector = ir.VectorType(element, 64)
        loaded = []
        for value, at, at_type, array_type in ((array_value, offset_value, signature.args[1], signature.args[0]),
                                               (shift_value, shift_offset_value, signature.args[3], signature.args[2])):
            pointer = _element_pointer(context, builder, array_type, value, context.cast(builder, at, at_type, types.int64))
            loaded.append(builder.load(builder.bitcast(pointer, vector.as_pointer()), align=1))
        zero = ir.Constant(vector, [ir.Constant(element, 0)] * 64)
        return builder.bitcast(builder.fcmp_ordered("<", builder.fadd(*loaded), zero), _I64)

    return types.uint64(array, offset, shift, shift_offset), codegen


@intrinsic
def store_signs64(typingctx, word, out, offset):
    """Write ``out.flat[offset + i] = -1.0 if bit i of word else +1.0`` for i < 64 (float32 ``out``)."""
    if not (isinstance(out, types.Array) and out.layout == "C" and out.dtype == types.float32):
        return None

    def codegen(context, builder, signature, args):
        word_value, out_value, offset_value = args
        bits = context.cast(builder, word_value, signature.args[0], types.uint64)
        offset64 = context.cast(builder, offset_value, signature.args[2], types.int64)
        vector = ir.VectorType(ir.FloatType(), 64)
        flags = builder.bitcast(bits, ir.VectorType(ir.IntType(1), 64))
        minus = ir.Constant(vector, [ir.Constant(ir.FloatType(), -1.0)] * 64)
        plus = ir.Constant(vector, [ir.Constant(ir.FloatType(), 1.0)] * 64)
        pointer = _element_pointer(context, builder, signature.args[1], out_value, offset64)
        builder.store(builder.select(flags, minus, plus), builder.bitcast(pointer, vector.as_pointer()), align=1)
        return context.get_dummy_value()

    return types.none(word, out, offset), codegen


def _swap_blocks(builder, upper, lower, size):
    """Rows ``upper`` and ``lower`` of a 16x16 matrix after swapping the size x size blocks off the
    diagonal of the 2x2 block matrix they belong to (one two-source shuffle each)."""
    first = [j if j & size == 0 else LANES + j - size for j in range(LANES)]
    second = [j + size if j & size == 0 else LANES + j for j in range(LANES)]
    masks = [ir.Constant(ir.VectorType(ir.IntType(32), LANES), m) for m in (first, second)]
    return builder.shuffle_vector(upper, lower, masks[0]), builder.shuffle_vector(upper, lower, masks[1])


@intrinsic
def store_transposed16(typingctx, out, at, row_stride, block, block_at, block_stride):
    """out.flat[at + i*row_stride + j] = block.flat[block_at + block_stride*j + i] for i, j < 16 (float32, no
    bounds checks).

    The 16 rows are loaded as vectors and transposed in registers by swapping off-diagonal blocks of 8,
    4, 2 and 1 (64 shuffles), then stored as 16 vectors: a 16x16 transpose without 256 scalar moves.
    """

    def codegen(context, builder, sig, args):
        at_, stride_, block_at_, block_stride_ = as_int64s(context, builder, (args[1], args[2], args[4], args[5]),
                                                           (sig.args[1], sig.args[2], sig.args[4], sig.args[5]))
        rows = [builder.load(vector_pointer(context, builder, sig.args[3], args[3],
                                            builder.add(block_at_, builder.mul(block_stride_, ir.Constant(_I64, j)))),
                             align=4)
                for j in range(LANES)]
        size = LANES // 2
        while size:
            for i in range(LANES):
                if i & size == 0:
                    rows[i], rows[i + size] = _swap_blocks(builder, rows[i], rows[i + size], size)
            size //= 2
        for i, row in enumerate(rows):
            offset = builder.add(at_, builder.mul(stride_, ir.Constant(_I64, i)))
            builder.store(row, vector_pointer(context, builder, sig.args[0], args[0], offset), align=4)
        return context.get_dummy_value()

    return types.none(out, at, row_stride, block, block_at, block_stride), codegen


@intrinsic
def add_vector(typingctx, target, at, source, src):
    """target.flat[at : at+16] += source.flat[src : src+16] (float32, no bounds checks)."""

    def codegen(context, builder, sig, args):
        at_, src_ = as_int64s(context, builder, (args[1], args[3]), (sig.args[1], sig.args[3]))
        pointer = vector_pointer(context, builder, sig.args[0], args[0], at_)
        value = builder.load(vector_pointer(context, builder, sig.args[2], args[2], src_), align=4)
        builder.store(builder.fadd(builder.load(pointer, align=4), value), pointer, align=4)
        return context.get_dummy_value()

    return types.none(target, at, source, src), codegen


_I32x16 = ir.VectorType(ir.IntType(32), LANES)


def _parameter_rows(context, builder, sig, args, array_index, stride):
    """load(base, k): the 16 floats at base + k * ``stride`` of argument ``array_index`` (row k of per-channel
    parameters from column base), for the epilogue intrinsics below."""

    def load(base, k):
        offset = builder.add(base, builder.mul(stride, ir.Constant(_I64, k)))
        return builder.load(vector_pointer(context, builder, sig.args[array_index], args[array_index], offset), align=4)

    return load


def _int32_lanes_as_float(context, builder, sig, args, array_index, at):
    """float32 of the 16 int32 values at ``at`` of argument ``array_index`` (a block's accumulators)."""
    data = context.make_array(sig.args[array_index])(context, builder, args[array_index]).data
    values = builder.load(builder.bitcast(builder.gep(data, [at]), _I32x16.as_pointer()), align=4)
    return builder.sitofp(values, F16)


@intrinsic
def block_epilogue_columns(typingctx, acc, acc_at, acc_stride, params, scale_at, bn_at, act_at, param_stride, other,
                           other_at, other_stride, out, out_at, out_stride, rows, thresholds, thresholds_at, bits, bits_at,
                           bits_stride):
    """ReActNet's block epilogue on 16 columns of ``rows`` rows (float32 and int32, no bounds checks): for row r,
    with a = acc.flat[acc_at + r*acc_stride :][:16] (int32), o = other.flat[other_at + r*other_stride :][:16],
    P(k) = params.flat[k :][:16], s = param_stride,

        v = float32(a) * P(scale_at);  v = v * P(bn_at) + P(bn_at + s)
        u = (v + o) - P(act_at);  y = (P(act_at + s) if u >= 0 else P(act_at + 2s)) * u - P(act_at + 3s)

    stored at out.flat[out_at + r*out_stride :][:16]: the operations of
    :func:`numbnn.kernels.steps.block_epilogue`, IEEE and unfused, in its order. The seven parameter vectors
    are loaded once for all the rows (a loop over a block's rows with them inside was left scalar by LLVM,
    which cannot prove the rows and the parameters apart). If ``bits_stride`` > 0 the 16 signs y <
    thresholds.flat[thresholds_at :][:16] (the next RSign's, as :func:`numbnn.kernels.threshold_packing.pack_below`
    packs them: y < t exactly when y - t < 0) are stored too, as the uint16 bits.flat[bits_at + r*bits_stride]
    (bit i: lane i); ``thresholds`` is read either way."""

    def codegen(context, builder, sig, args):
        index = [1, 2, 4, 5, 6, 7, 9, 10, 12, 13, 14, 16, 18, 19]
        (acc_at_, acc_stride_, scale_at_, bn_at_, act_at_, param_stride_, other_at_, other_stride_, out_at_,
         out_stride_, rows_, thresholds_at_, bits_at_, bits_stride_) = as_int64s(context, builder, [args[i] for i in index],
                                                                 [sig.args[i] for i in index])

        def load(array_i, offset):
            return builder.load(vector_pointer(context, builder, sig.args[array_i], args[array_i], offset), align=4)

        param = _parameter_rows(context, builder, sig, args, 3, param_stride_)

        scale, bn_scale, bn_shift = param(scale_at_, 0), param(bn_at_, 0), param(bn_at_, 1)
        shift_x, pos, neg, shift_y = (param(act_at_, k) for k in range(4))
        zero = ir.Constant(F16, [ir.Constant(ir.FloatType(), 0.0)] * LANES)
        acc_data = context.make_array(sig.args[0])(context, builder, args[0]).data
        bits_data = context.make_array(sig.args[17])(context, builder, args[17]).data
        packing = builder.icmp_signed(">", bits_stride_, ir.Constant(_I64, 0))
        limits = load(15, thresholds_at_)
        with cgutils.for_range(builder, rows_) as loop:
            r = loop.index
            acc_pointer = builder.bitcast(builder.gep(acc_data, [builder.add(acc_at_, builder.mul(r, acc_stride_))]),
                                          _I32x16.as_pointer())
            v = builder.fmul(builder.sitofp(builder.load(acc_pointer, align=4), F16), scale)
            v = builder.fadd(builder.fmul(v, bn_scale), bn_shift)
            u = builder.fsub(builder.fadd(v, load(8, builder.add(other_at_, builder.mul(r, other_stride_)))), shift_x)
            slope = builder.select(builder.fcmp_ordered(">=", u, zero), pos, neg)
            y = builder.fsub(builder.fmul(slope, u), shift_y)
            builder.store(y, vector_pointer(context, builder, sig.args[11], args[11],
                                            builder.add(out_at_, builder.mul(r, out_stride_))), align=4)
            with builder.if_then(packing):
                signs = builder.bitcast(builder.fcmp_ordered("<", y, limits), ir.IntType(16))
                builder.store(signs, builder.gep(bits_data, [builder.add(bits_at_, builder.mul(r, bits_stride_))]))
        return context.get_dummy_value()

    return types.none(acc, acc_at, acc_stride, params, scale_at, bn_at, act_at, param_stride, other, other_at,
                      other_stride, out, out_at, out_stride, rows, thresholds, thresholds_at, bits, bits_at,
                      bits_stride), codegen


@intrinsic
def moved_unit_lanes(typingctx, acc, acc_at, params, scale_at, shift_at, bn_at, act_at, param_stride, other, out, at,
                     bits, bits_at, thresholds, thresholds_at, shifts, shifts_at):
    """RB-Net's unit on 16 lanes (float32 and int32, no bounds checks): with a = acc.flat[acc_at :][:16] (int32),
    o = other.flat[at :][:16], P(k) = params.flat[k :][:16], s = param_stride,

        v = float32(a) * P(scale_at) + P(shift_at);  v = v * P(bn_at) + P(bn_at + s)
        u = (v + o) - P(act_at);  y = (P(act_at + s) if u >= 0 else P(act_at + 2s)) * u - P(act_at + 3s)

    stored at out.flat[at :][:16]: the steps [mul, add, affine, add_input, dprelu] of
    :func:`numbnn.kernels.steps.apply_steps`, IEEE and unfused, in their order (a loop over them in Numba was
    left scalar: LLVM cannot prove the output apart from its ten inputs). If ``bits_at`` >= 0 the 16 signs
    (y + shifts.flat[shifts_at :][:16]) - thresholds.flat[thresholds_at :][:16] < 0 (as
    :func:`numbnn.kernels.threshold_packing.gather_pack` computes them) are stored too, as the uint16
    bits.flat[bits_at] (bit i: lane i)."""

    def codegen(context, builder, sig, args):
        index = [1, 3, 4, 5, 6, 7, 10, 12, 14, 16]
        acc_at_, scale_at_, shift_at_, bn_at_, act_at_, param_stride_, at_, bits_at_, thresholds_at_, shifts_at_ = \
            as_int64s(context, builder, [args[i] for i in index], [sig.args[i] for i in index])

        param = _parameter_rows(context, builder, sig, args, 2, param_stride_)
        a = _int32_lanes_as_float(context, builder, sig, args, 0, acc_at_)
        v = builder.fadd(builder.fmul(a, param(scale_at_, 0)), param(shift_at_, 0))
        v = builder.fadd(builder.fmul(v, param(bn_at_, 0)), param(bn_at_, 1))
        o = builder.load(vector_pointer(context, builder, sig.args[8], args[8], at_), align=4)
        u = builder.fsub(builder.fadd(v, o), param(act_at_, 0))
        zero = ir.Constant(F16, [ir.Constant(ir.FloatType(), 0.0)] * LANES)
        slope = builder.select(builder.fcmp_ordered(">=", u, zero), param(act_at_, 1), param(act_at_, 2))
        y = builder.fsub(builder.fmul(slope, u), param(act_at_, 3))
        builder.store(y, vector_pointer(context, builder, sig.args[9], args[9], at_), align=4)
        with builder.if_then(builder.icmp_signed(">=", bits_at_, ir.Constant(_I64, 0))):
            shifted = builder.fadd(y, builder.load(vector_pointer(context, builder, sig.args[15], args[15], shifts_at_),
                                                   align=4))
            limits = builder.load(vector_pointer(context, builder, sig.args[13], args[13], thresholds_at_), align=4)
            signs = builder.bitcast(builder.fcmp_ordered("<", builder.fsub(shifted, limits), zero), ir.IntType(16))
            bits_data = context.make_array(sig.args[11])(context, builder, args[11]).data
            builder.store(signs, builder.gep(bits_data, [bits_at_]))
        return context.get_dummy_value()

    return types.none(acc, acc_at, params, scale_at, shift_at, bn_at, act_at, param_stride, other, out, at, bits, bits_at,
                      thresholds, thresholds_at, shifts, shifts_at), codegen


@intrinsic
def shrink_unit_lanes(typingctx, acc, acc_at, params, bn_at, act_at, param_stride, other, other_at, out, out_at):
    """PokeBNN's shrinking unit on 16 lanes (float32 and int32, no bounds checks): with a = acc.flat[acc_at :][:16]
    (int32), the 32 values o = other.flat[other_at :][:32] (two residual channels per lane), P(k) =
    params.flat[k :][:16], s = param_stride,

        v = float32(a) * P(bn_at) + P(bn_at + s);  v = v + ((0 + o[2i]) + o[2i + 1]) / 2
        u = v - P(act_at);  y = (P(act_at + s) if u >= 0 else P(act_at + 2s)) * u - P(act_at + 3s)

    stored at out.flat[out_at :][:16]: the steps [affine, add_mean_input (k = 2), dprelu] of
    :func:`numbnn.kernels.steps.apply_steps`, IEEE and unfused, in their order; the pairs are split by two
    shuffles of one 32-float load instead of the steps loop's strided reads, which stayed scalar."""

    def codegen(context, builder, sig, args):
        index = [1, 3, 4, 5, 7, 9]
        acc_at_, bn_at_, act_at_, param_stride_, other_at_, out_at_ = as_int64s(
            context, builder, [args[i] for i in index], [sig.args[i] for i in index])

        param = _parameter_rows(context, builder, sig, args, 2, param_stride_)
        a = _int32_lanes_as_float(context, builder, sig, args, 0, acc_at_)
        v = builder.fadd(builder.fmul(a, param(bn_at_, 0)), param(bn_at_, 1))
        other_data = context.make_array(sig.args[6])(context, builder, args[6]).data
        pairs_type = ir.VectorType(ir.FloatType(), 2 * LANES)
        pairs = builder.load(builder.bitcast(builder.gep(other_data, [other_at_]), pairs_type.as_pointer()), align=4)
        even = builder.shuffle_vector(pairs, pairs, ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                                [ir.Constant(ir.IntType(32), 2 * i) for i in range(LANES)]))
        odd = builder.shuffle_vector(pairs, pairs, ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                               [ir.Constant(ir.IntType(32), 2 * i + 1) for i in range(LANES)]))
        zero = ir.Constant(F16, [ir.Constant(ir.FloatType(), 0.0)] * LANES)
        two = ir.Constant(F16, [ir.Constant(ir.FloatType(), 2.0)] * LANES)
        v = builder.fadd(v, builder.fdiv(builder.fadd(builder.fadd(zero, even), odd), two))
        u = builder.fsub(v, param(act_at_, 0))
        slope = builder.select(builder.fcmp_ordered(">=", u, zero), param(act_at_, 1), param(act_at_, 2))
        y = builder.fsub(builder.fmul(slope, u), param(act_at_, 3))
        builder.store(y, vector_pointer(context, builder, sig.args[8], args[8], out_at_), align=4)
        return context.get_dummy_value()

    return types.none(acc, acc_at, params, bn_at, act_at, param_stride, other, other_at, out, out_at), codegen
