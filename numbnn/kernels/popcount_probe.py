"""A probe of the machine's XNOR-popcount limit: XOR + vector popcount + ADD with nothing else.

Every binary MAC of the kernels costs, per 64 x LANES bits, one vector XOR, one vector popcount and
one vector ADD. How many of those triples a core retires per cycle depends on the CPU (one
VPOPCNTQ port on Intel's AVX-512 cores, two on AMD Zen 5; the XOR and ADD compete for the same
vector ports) and on its clock under load, so ``numbnn bench kernels`` measures it instead of
assuming it: :func:`xor_popcount_rate` times this loop on every thread and the kernels' shares are
taken of that rate, which no kernel doing the same three operations per word can exceed.

The loop keeps ``CHAINS`` independent chains in registers, each a pair of LANES-wide uint64 vectors
(v, s)::

    v <- v XOR s        s <- s + popcount(v)        (per lane, wrapping)

so that nothing can be hoisted or folded (every XOR reads the previous sum), and enough chains run
at once to hide the popcount's latency. It returns the sum of all lanes of all s, which its naive
twin reproduces exactly.
"""

import time

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from numbnn.kernels.tiles import LANES
from numbnn.kernels.typed import typed_njit

# 2 vectors a chain: 12 chains fill 24 of AVX-512's 32 registers; AVX2's 16 registers hold 6,
# leaving room for the lookup tables its popcount needs.
CHAINS = 12 if LANES == 8 else 6
_GOLDEN = 0x9E3779B97F4A7C15


def start_values(seed: int) -> np.ndarray:
    """The chains' first v, [CHAINS, LANES] uint64: distinct odd multiples of the golden ratio."""
    index = np.arange(1, CHAINS * LANES + 1, dtype=np.uint64).reshape(CHAINS, LANES)
    with np.errstate(over="ignore"):
        return (index * np.uint64(_GOLDEN)) * np.uint64(2 * seed + 1)


@intrinsic
def _xor_popcount_chains(typingctx, iterations, seed):
    """Sum of all lanes after ``iterations`` steps of the chains (module doc), as int64."""
    if not (isinstance(iterations, types.Integer) and isinstance(seed, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        vec = ir.VectorType(i64, LANES)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), f"llvm.ctpop.v{LANES}i64")
        count = context.cast(builder, args[0], signature.args[0], types.int64)
        seed64 = context.cast(builder, args[1], signature.args[1], types.int64)
        odd = builder.add(builder.mul(seed64, ir.Constant(i64, 2)), ir.Constant(i64, 1))
        odd_vec = builder.insert_element(ir.Constant(vec, ir.Undefined), odd, ir.Constant(ir.IntType(32), 0))
        odd_vec = builder.shuffle_vector(odd_vec, ir.Constant(vec, ir.Undefined),
                                         ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
        starts = []
        for chain in range(CHAINS):
            lanes = [((chain * LANES + lane + 1) * _GOLDEN) % (1 << 64) for lane in range(LANES)]
            constant = ir.Constant(vec, [ir.Constant(i64, value - (1 << 64) if value >= 1 << 63 else value)
                                         for value in lanes])
            starts.append(builder.mul(constant, odd_vec))
        zero = ir.Constant(vec, [ir.Constant(i64, 0)] * LANES)

        entry = builder.basic_block
        loop = builder.append_basic_block("probe.loop")
        done = builder.append_basic_block("probe.done")
        builder.cbranch(builder.icmp_signed(">", count, ir.Constant(i64, 0)), loop, done)

        builder.position_at_end(loop)
        step = builder.phi(i64)
        values = [builder.phi(vec) for _ in range(CHAINS)]
        sums = [builder.phi(vec) for _ in range(CHAINS)]
        new_values = [builder.xor(v, s) for v, s in zip(values, sums)]
        new_sums = [builder.add(s, builder.call(ctpop, [v])) for v, s in zip(new_values, sums)]
        next_step = builder.add(step, ir.Constant(i64, 1))
        builder.cbranch(builder.icmp_signed("<", next_step, count), loop, done)
        step.add_incoming(ir.Constant(i64, 0), entry)
        step.add_incoming(next_step, loop)
        for chain in range(CHAINS):
            values[chain].add_incoming(starts[chain], entry)
            values[chain].add_incoming(new_values[chain], loop)
            sums[chain].add_incoming(zero, entry)
            sums[chain].add_incoming(new_sums[chain], loop)

        builder.position_at_end(done)
        finals = []
        for chain in range(CHAINS):
            final = builder.phi(vec)
            final.add_incoming(zero, entry)
            final.add_incoming(new_sums[chain], loop)
            finals.append(final)
        total = finals[0]
        for final in finals[1:]:
            total = builder.add(total, final)
        result = builder.extract_element(total, ir.Constant(ir.IntType(32), 0))
        for lane in range(1, LANES):
            result = builder.add(result, builder.extract_element(total, ir.Constant(ir.IntType(32), lane)))
        return result

    return types.int64(iterations, seed), codegen


@typed_njit("int64(int64, int64)", cache=True)
def xor_popcount_chains(iterations, seed):
    """Run the chains ``iterations`` steps from :func:`start_values` (seed); the sum of all lanes."""
    return _xor_popcount_chains(iterations, seed)


@typed_njit("int64(int64, int64)", parallel=True, cache=True)
def _all_threads(iterations, threads):
    totals = np.zeros(threads, np.int64)
    for thread in nb.prange(threads):
        totals[thread] = _xor_popcount_chains(iterations, thread)
    return totals.sum()


def bits_per_step() -> int:
    """Bits one step of the chains popcounts (each is one binary MAC)."""
    return CHAINS * LANES * 64


def xor_popcount_rate(seconds: float = 0.2) -> dict:
    """Binary MACs per second the probe sustains on all Numba threads, best of three timed runs.

    The iteration count is calibrated so one run takes about ``seconds``.
    """
    threads = nb.get_num_threads()
    _all_threads(1000, threads)  # compile or load from the cache before timing
    iterations = 1 << 14
    while True:
        start = time.perf_counter()
        _all_threads(iterations, threads)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or iterations >= 1 << 34:
            break
        iterations *= 4
    iterations = max(1, int(iterations * seconds / max(elapsed, 1e-9)))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        _all_threads(iterations, threads)
        best = min(best, time.perf_counter() - start)
    rate = threads * iterations * bits_per_step() / best
    return {"binary_macs_per_s": rate, "threads": threads, "chains": CHAINS, "lanes": LANES,
            "iterations": iterations, "seconds": best}
