"""Register-tiled XNOR-popcount micro-kernel shared by binary_matmul and binary_conv2d.

The product out[i, j] = sum_t popcount(a[i, t] XOR b[j, t]) is computed in tiles of ``TILE_ROWS``
rows of ``a`` by ``TILE_COLS`` rows of ``b``. The tile's TILE_ROWS x TILE_COLS partial sums stay in
vector registers (TILE_ROWS x TILE_VECTORS vectors of LANES int64) for the whole sweep over the
words t; per word t the kernel loads TILE_VECTORS vectors of ``b`` words and, per tile row, one
``a`` word broadcast to all lanes, then does XOR, vector popcount and add per accumulator. So each
loaded ``b`` vector serves TILE_ROWS rows and each ``a`` word TILE_COLS columns.

For contiguous vector loads ``b`` is re-laid out once per call as column panels
[n_panels, n_words, TILE_COLS] (panel p holds rows p*TILE_COLS ... of ``b``, interleaved by word;
missing rows are zero words). Rows of ``a`` past its end are zero rows; their sums are never stored.

The tile shape follows the vector width of the code Numba generates: with AVX-512 (32 vector
registers of 8 int64) a 4 x 32 tile uses 16 accumulators; with AVX2 (16 registers of 4 int64) a
4 x 8 tile uses 8, leaving room for the lookup-table popcount AVX2 needs. Numba's on-disk cache is
keyed by the target CPU and features, so each target compiles (and caches) its own shape.
"""

import numba as nb
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _target_features() -> str:
    """The feature string Numba compiles for (NUMBA_CPU_FEATURES, else the host's)."""
    if nb.config.CPU_FEATURES is not None:
        return nb.config.CPU_FEATURES
    return llvm.get_host_cpu_features().flatten()


def _tile_shape(features: str) -> tuple[int, int, int]:
    """(TILE_ROWS, TILE_VECTORS, LANES) for a target feature string."""
    if "+avx512f" in features.split(","):
        return 4, 4, 8
    return 4, 2, 4


TILE_ROWS, TILE_VECTORS, LANES = _tile_shape(_target_features())
TILE_COLS = TILE_VECTORS * LANES


def _make_tile_dot(rows: int, vectors: int, lanes: int):
    cols = vectors * lanes

    @intrinsic
    def tile_dot(typingctx, a, row0, panels, panel, k, out, out_row, out_col):
        """out[out_row + r, out_col + c] = k - 2 * sum_t popcount(a[row0 + r, t] XOR panels[panel, t, c])
        for r < rows, c < cols, t over all n_words words (int32 results).

        ``a`` uint64 [>= row0 + rows, n_words], ``panels`` uint64 [n_panels, n_words, cols],
        ``out`` int32 with room for the whole tile; all C-contiguous; no bounds checks (callers size
        them, and route edge tiles through a scratch tile).
        """
        arrays_ok = (
            isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and a.dtype == types.uint64
            and isinstance(panels, types.Array) and panels.ndim == 3 and panels.layout == "C"
            and panels.dtype == types.uint64
            and isinstance(out, types.Array) and out.ndim == 2 and out.layout == "C" and out.dtype == types.int32
        )
        if not arrays_ok:
            return None
        signature = types.none(a, row0, panels, panel, k, out, out_row, out_col)

        def codegen(context, builder, sig, args):
            i64, i32 = ir.IntType(64), ir.IntType(32)
            vec = ir.VectorType(i64, lanes)
            ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), f"llvm.ctpop.v{lanes}i64")
            a_arr = context.make_array(sig.args[0])(context, builder, args[0])
            p_arr = context.make_array(sig.args[2])(context, builder, args[2])
            o_arr = context.make_array(sig.args[5])(context, builder, args[5])
            row0_v, panel_v, k_v, out_row_v, out_col_v = (
                context.cast(builder, args[i], sig.args[i], types.int64) for i in (1, 3, 4, 6, 7)
            )
            n_words = builder.extract_value(a_arr.shape, 1)
            out_stride = builder.extract_value(o_arr.shape, 1)
            a_base = builder.gep(a_arr.data, [builder.mul(row0_v, n_words)])
            b_base = builder.gep(p_arr.data, [builder.mul(builder.mul(panel_v, n_words), ir.Constant(i64, cols))])

            def splat(value):
                one_lane = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(i32, 0))
                return builder.shuffle_vector(one_lane, ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

            def vector_pointer(base, offset, vector_type=vec):
                return builder.bitcast(builder.gep(base, [offset]), vector_type.as_pointer())

            zero = ir.Constant(vec, [ir.Constant(i64, 0)] * lanes)
            entry = builder.basic_block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed("<", ir.Constant(i64, 0), n_words), loop, done)

            # loop over words t: per t, `vectors` panel loads, `rows` broadcasts, rows*vectors xor-popcount-adds
            builder.position_at_end(loop)
            t = builder.phi(i64)
            sums = [[builder.phi(vec) for _ in range(vectors)] for _ in range(rows)]
            b_row = builder.gep(b_base, [builder.mul(t, ir.Constant(i64, cols))])
            b_vectors = [builder.load(vector_pointer(b_row, ir.Constant(i64, v * lanes)), align=8) for v in range(vectors)]
            updated = []
            for r in range(rows):
                word = builder.load(builder.gep(a_base, [builder.add(builder.mul(ir.Constant(i64, r), n_words), t)]))
                a_vector = splat(word)
                updated.append([builder.add(sums[r][v], builder.call(ctpop, [builder.xor(a_vector, b_vectors[v])])) for v in range(vectors)])
            t_next = builder.add(t, ir.Constant(i64, 1))
            loop_end = builder.basic_block
            t.add_incoming(ir.Constant(i64, 0), entry)
            t.add_incoming(t_next, loop_end)
            for r in range(rows):
                for v in range(vectors):
                    sums[r][v].add_incoming(zero, entry)
                    sums[r][v].add_incoming(updated[r][v], loop_end)
            builder.cbranch(builder.icmp_signed("<", t_next, n_words), loop, done)

            # out = k - 2 * sum, truncated to int32 lanes
            builder.position_at_end(done)
            finals = [[builder.phi(vec) for _ in range(vectors)] for _ in range(rows)]  # phis first
            k_vector = splat(k_v)
            out_vec = ir.VectorType(i32, lanes)
            for r in range(rows):
                out_row_base = builder.gep(o_arr.data, [builder.add(builder.mul(builder.add(out_row_v, ir.Constant(i64, r)), out_stride), out_col_v)])
                for v in range(vectors):
                    finals[r][v].add_incoming(zero, entry)
                    finals[r][v].add_incoming(updated[r][v], loop_end)
                    result = builder.sub(k_vector, builder.shl(finals[r][v], ir.Constant(vec, [ir.Constant(i64, 1)] * lanes)))
                    builder.store(builder.trunc(result, out_vec), vector_pointer(out_row_base, ir.Constant(i64, v * lanes), out_vec), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return tile_dot


tile_dot = _make_tile_dot(TILE_ROWS, TILE_VECTORS, LANES)


@nb.njit(cache=True)
def column_panels(b):
    """b uint64 [n, n_words] as panels [ceil(n/TILE_COLS), n_words, TILE_COLS] (zero words past n)."""
    n, n_words = b.shape
    n_panels = (n + TILE_COLS - 1) // TILE_COLS
    panels = np.zeros((n_panels, n_words, TILE_COLS), dtype=np.uint64)
    for j in range(n):
        p = j // TILE_COLS
        c = j % TILE_COLS
        for t in range(n_words):
            panels[p, t, c] = b[j, t]
    return panels


@nb.njit(cache=True)
def store_edge_tile(a, row0, panels, panel, k, out, out_row, out_col):
    """tile_dot for a tile that sticks out of `out` (last rows or columns): computed into a scratch
    tile, then only the part inside `out` is copied."""
    scratch = np.empty((TILE_ROWS, TILE_COLS), dtype=np.int32)
    tile_dot(a, row0, panels, panel, k, scratch, 0, 0)
    for r in range(min(TILE_ROWS, out.shape[0] - out_row)):
        for c in range(min(TILE_COLS, out.shape[1] - out_col)):
            out[out_row + r, out_col + c] = scratch[r, c]
