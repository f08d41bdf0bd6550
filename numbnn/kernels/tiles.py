"""Register-tiled XNOR-popcount micro-kernel shared by binary_matmul and the binary convolution driver.

The product out[i, j] = k - 2 * sum_t popcount(a[i, t] XOR b[j, t]) is computed in tiles of
``TILE_ROWS`` rows of ``a`` by ``TILE_COLS`` rows of ``b``. The tile's TILE_ROWS x TILE_COLS partial
sums stay in vector registers (TILE_ROWS x TILE_VECTORS vectors of LANES int64) for the whole sweep
over the words t; per word t the kernel loads TILE_VECTORS vectors of ``b`` words and, per tile row,
one ``a`` word broadcast to all lanes, then does XOR, vector popcount and add per accumulator. So
each loaded ``b`` vector serves TILE_ROWS rows and each ``a`` word TILE_COLS columns. Those three
vector operations per 512 bits are the floor: with two vector ports, a core does at most two thirds
of one VPOPCNTQ per cycle.

For contiguous vector loads ``b`` is re-laid out once per call as column panels
[n_panels, n_words, TILE_COLS] (panel p holds rows p*TILE_COLS ... of ``b``, interleaved by word;
missing rows are zero words). ``tile_dot`` reads tile rows from a matrix: the rows of ``a`` itself, or
the receptive fields a convolution gathered into a small buffer.

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


def _is_array(t, ndim, dtype) -> bool:
    return isinstance(t, types.Array) and t.ndim == ndim and t.layout == "C" and t.dtype == dtype


class _TileEmitter:
    """Emits the LLVM IR of one tile: the sums over `n_words` words, then the store.

    Tile row r reads word t at ``row_pointers[r] + t`` (i64*); the panel word t of column c is at
    ``b_base + t*cols + c``. The sums stay in registers across the loop (phi nodes); at the end
    out[out_row + r, out_col + c] = k - 2*sum as int32.
    """

    def __init__(self, context, builder, rows, vectors, lanes):
        self.context, self.builder = context, builder
        self.rows, self.vectors, self.lanes, self.cols = rows, vectors, lanes, vectors * lanes
        self.i64, self.i32 = ir.IntType(64), ir.IntType(32)
        self.vec = ir.VectorType(self.i64, lanes)
        self.ctpop = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vec, [self.vec]), f"llvm.ctpop.v{lanes}i64"
        )

    def const(self, value):
        return ir.Constant(self.i64, value)

    def splat(self, value):
        b = self.builder
        one_lane = b.insert_element(ir.Constant(self.vec, ir.Undefined), value, ir.Constant(self.i32, 0))
        mask = ir.Constant(ir.VectorType(self.i32, self.lanes), [0] * self.lanes)
        return b.shuffle_vector(one_lane, ir.Constant(self.vec, ir.Undefined), mask)

    def vector_pointer(self, base, offset, vector_type=None):
        return self.builder.bitcast(self.builder.gep(base, [offset]), (vector_type or self.vec).as_pointer())

    def emit(self, row_pointers, n_words, b_base, k, out_data, out_stride, out_row, out_col):
        b, rows, vectors = self.builder, self.rows, self.vectors
        zero = ir.Constant(self.vec, [self.const(0)] * self.lanes)
        entry = b.basic_block
        loop = b.append_basic_block("tile.word")
        done = b.append_basic_block("tile.done")
        b.cbranch(b.icmp_signed(">", n_words, self.const(0)), loop, done)

        # per word t: `vectors` panel loads, `rows` broadcasts, rows*vectors xor-popcount-adds
        b.position_at_end(loop)
        t = b.phi(self.i64)
        sums = [[b.phi(self.vec) for _ in range(vectors)] for _ in range(rows)]
        b_row = b.gep(b_base, [b.mul(t, self.const(self.cols))])
        b_vectors = [b.load(self.vector_pointer(b_row, self.const(v * self.lanes)), align=8) for v in range(vectors)]
        updated = []
        for r in range(rows):
            a_vector = self.splat(b.load(b.gep(row_pointers[r], [t])))
            updated.append([b.add(sums[r][v], b.call(self.ctpop, [b.xor(a_vector, b_vectors[v])])) for v in range(vectors)])
        t_next = b.add(t, self.const(1))
        b.cbranch(b.icmp_signed("<", t_next, n_words), loop, done)

        t.add_incoming(self.const(0), entry)
        t.add_incoming(t_next, loop)
        for r in range(rows):
            for v in range(vectors):
                sums[r][v].add_incoming(zero, entry)
                sums[r][v].add_incoming(updated[r][v], loop)

        # out = k - 2 * sum, truncated to int32 lanes
        b.position_at_end(done)
        finals = [[b.phi(self.vec) for _ in range(vectors)] for _ in range(rows)]  # phis first
        k_vector = self.splat(k)
        one = ir.Constant(self.vec, [self.const(1)] * self.lanes)  # 2 * sum = sum << 1
        out_vec = ir.VectorType(self.i32, self.lanes)
        for r in range(rows):
            row_base = b.gep(out_data, [b.add(b.mul(b.add(out_row, self.const(r)), out_stride), out_col)])
            for v in range(vectors):
                finals[r][v].add_incoming(zero, entry)
                finals[r][v].add_incoming(updated[r][v], loop)
                result = b.trunc(b.sub(k_vector, b.shl(finals[r][v], one)), out_vec)
                b.store(result, self.vector_pointer(row_base, self.const(v * self.lanes), out_vec), align=4)


def _int64_args(context, builder, sig, args, indices):
    return [context.cast(builder, args[i], sig.args[i], types.int64) for i in indices]


def _make_tile_dot(rows: int, vectors: int, lanes: int):
    @intrinsic
    def tile_dot(typingctx, a, row0, panels, panel, k, out, out_row, out_col):
        """out[out_row + r, out_col + c] = k - 2 * sum_t popcount(a[row0 + r, t] XOR panels[panel, t, c])
        for r < TILE_ROWS, c < TILE_COLS, t over all n_words words (int32 results).

        ``a`` uint64 [>= row0 + TILE_ROWS, n_words], ``panels`` uint64 [n_panels, n_words, TILE_COLS],
        ``out`` int32 with room for the whole tile; all C-contiguous; no bounds checks (callers size
        them, and route edge tiles through a scratch tile).
        """
        if not (_is_array(a, 2, types.uint64) and _is_array(panels, 3, types.uint64) and _is_array(out, 2, types.int32)):
            return None

        def codegen(context, builder, sig, args):
            e = _TileEmitter(context, builder, rows, vectors, lanes)
            a_arr, p_arr, o_arr = (context.make_array(sig.args[i])(context, builder, args[i]) for i in (0, 2, 5))
            row0_v, panel_v, k_v, out_row_v, out_col_v = _int64_args(context, builder, sig, args, (1, 3, 4, 6, 7))
            n_words = builder.extract_value(a_arr.shape, 1)
            a_base = builder.gep(a_arr.data, [builder.mul(row0_v, n_words)])
            b_base = builder.gep(p_arr.data, [builder.mul(builder.mul(panel_v, n_words), e.const(e.cols))])

            row_pointers = [builder.gep(a_base, [builder.mul(e.const(r), n_words)]) for r in range(rows)]
            e.emit(row_pointers, n_words, b_base, k_v, o_arr.data, builder.extract_value(o_arr.shape, 1), out_row_v, out_col_v)
            return context.get_dummy_value()

        return types.none(a, row0, panels, panel, k, out, out_row, out_col), codegen

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


@nb.njit(cache=True)
def column_splits(row_blocks, n_panels, threads):
    """How many tasks share one block of rows, each taking every splits-th column panel.

    Enough row blocks keep every thread busy on their own; with few (batch-1 inference, small
    layers) the column panels are dealt out too, so all threads still get work."""
    wanted = 2 * threads
    if row_blocks >= wanted:
        return 1
    return max(1, min(n_panels, (wanted + row_blocks - 1) // row_blocks))
