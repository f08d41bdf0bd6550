"""Kernel benchmark behind ``numbnn bench kernels``: binary MAC/s against float32 BLAS on the same shapes.

A binary MAC is one +1/-1 multiply-add done as one bit of XOR-popcount. For each shape the binary
kernel and its float32 counterpart (numpy's BLAS matmul; for convolutions numbnn's im2col into a
reused buffer, then one BLAS product) run in the same process on the same data, each as the median of
``repeats`` timed calls after a warm-up ("warm"). "Cold" is the first call of a kernel in the process,
compile or on-disk cache load included, with the Numba cache hits/misses it caused; it is only
measurable when nothing in the process called that kernel before.

With one thread (``--threads 1``, BLAS included) all work runs in the calling thread, so rates per
second of that thread's CPU time are reported too: on a machine shared with other jobs they show
what a core does while it runs, where wall-clock rates also count time spent descheduled.

The popcount ceiling is measured, not assumed: :func:`numbnn.kernels.popcount_probe.xor_popcount_rate`
times a register-only loop of the three vector operations every binary MAC needs (XOR, popcount,
ADD) on all threads. CPUs differ in how many of those they retire per cycle (one VPOPCNTQ port on
Intel's AVX-512 cores, two on AMD Zen 5), so no kernel's share of the ceiling can exceed 100% on
any of them. The clock is measured too, to report the probe's bits per cycle per thread.
"""

import importlib
import time
from dataclasses import dataclass

import numba as nb
import numpy as np

from numbnn.kernels.binary_conv import binary_conv2d
from numbnn.kernels.binary_gemm import binary_matmul
from numbnn.kernels.geometry import conv_output_size
from numbnn.kernels.im2col import im2col as float_im2col
from numbnn.kernels.packing import pack_activations, pack_bits, pack_conv_weight
from numbnn.kernels.platform import cpu_frequency_ghz, environment, target_has_vector_popcount
from numbnn.kernels.popcount_probe import xor_popcount_rate
from numbnn.kernels.typed import TypedKernel


@dataclass(frozen=True)
class MatmulShape:
    m: int
    n: int
    k: int

    @property
    def name(self) -> str:
        return f"matmul M={self.m} N={self.n} K={self.k}"

    @property
    def label(self) -> str:
        return f"mm {self.m}x{self.n}x{self.k}"

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k


@dataclass(frozen=True)
class ConvShape:
    batch: int
    size: int
    in_channels: int
    out_channels: int
    stride: int
    kernel: int = 3
    padding: int = 1

    @property
    def out_size(self) -> int:
        return conv_output_size(self.size, self.kernel, self.stride, self.padding, 1)

    @property
    def name(self) -> str:
        return (f"conv N={self.batch} {self.size}x{self.size}x{self.in_channels}->{self.out_channels} "
                f"{self.kernel}x{self.kernel} s{self.stride} p{self.padding}")

    @property
    def label(self) -> str:
        return f"conv {self.size}x{self.size}x{self.in_channels}>{self.out_channels} s{self.stride}"

    @property
    def macs(self) -> int:
        return self.batch * self.out_size**2 * self.out_channels * self.kernel**2 * self.in_channels


FULL_MATMULS = (MatmulShape(256 * 14 * 14, 128, 1152), MatmulShape(256 * 7 * 7, 256, 2304), MatmulShape(4096, 4096, 4096))
FULL_CONVS = (ConvShape(256, 14, 128, 128, 1), ConvShape(256, 14, 128, 128, 2),
              ConvShape(256, 7, 256, 256, 1), ConvShape(256, 7, 256, 256, 2))
QUICK_MATMULS = (MatmulShape(64, 32, 200), MatmulShape(48, 20, 70))
QUICK_CONVS = (ConvShape(2, 6, 70, 8, 1), ConvShape(2, 6, 70, 8, 2))


def run_kernel_benchmarks(repeats: int = 5, quick: bool = False, progress=None) -> dict:
    """Time every shape; returns a JSON-ready dict (see module doc). ``progress(text)`` is called per step."""
    progress = progress or (lambda text: None)
    matmuls, convs = (QUICK_MATMULS, QUICK_CONVS) if quick else (FULL_MATMULS, FULL_CONVS)
    rng = np.random.default_rng(0)
    progress("measuring the clock")
    ghz = cpu_frequency_ghz(steps=2_000_000 if quick else 20_000_000)
    vector_popcount = target_has_vector_popcount()
    progress("measuring the XOR + popcount + ADD limit")
    probe = xor_popcount_rate(seconds=0.02 if quick else 0.3)
    threads = probe["threads"]
    ceiling = probe["binary_macs_per_s"]
    bits_per_cycle = ceiling / threads / (ghz * 1e9)
    results = {"matmul": [], "conv": []}
    for shape in matmuls:
        progress(shape.name)
        results["matmul"].append(_bench_matmul(shape, repeats, rng, ceiling))
    for shape in convs:
        progress(shape.name)
        results["conv"].append(_bench_conv(shape, repeats, rng, ceiling))
    results["machine"] = {
        "threads": threads,
        "cpu_ghz_measured": round(ghz, 3),
        "vector_popcount": vector_popcount,
        "popcount_ceiling_gmacs": round(ceiling / 1e9, 1),
        "probe_bits_per_cycle_per_thread": round(bits_per_cycle, 1),
        "ceiling_basis": f"measured: {threads} threads x {probe['chains']} chains of XOR+popcount+ADD on "
        f"{64 * probe['lanes']}-bit vectors, {bits_per_cycle:.0f} bits/cycle/thread at {ghz:.2f} GHz",
    }
    results["repeats"] = repeats
    results["quick"] = quick
    results["environment"] = environment()
    return results


def _bench_matmul(shape: MatmulShape, repeats: int, rng, ceiling: float) -> dict:
    a_float = _random_signs(rng, (shape.m, shape.k))
    b_float = _random_signs(rng, (shape.n, shape.k))
    a, b = pack_bits(a_float), pack_bits(b_float)
    b_float_t = np.ascontiguousarray(b_float.T)
    binary = _measure(lambda: binary_matmul(a, b, shape.k), repeats, ["binary_gemm"])
    blas = _measure(lambda: a_float @ b_float_t, repeats, [])
    return _summarise(shape, ceiling, binary=binary, float_blas=blas)


def _bench_conv(shape: ConvShape, repeats: int, rng, ceiling: float) -> dict:
    x_float = _random_signs(rng, (shape.batch, shape.size, shape.size, shape.in_channels))
    w_float = _random_signs(rng, (shape.out_channels, shape.kernel, shape.kernel, shape.in_channels))
    w_matrix_t = np.ascontiguousarray(w_float.reshape(shape.out_channels, -1).T)
    x, w = pack_activations(x_float), pack_conv_weight(w_float)
    args = dict(stride=shape.stride, padding=shape.padding, pad_value=1)
    binary = _measure(lambda: binary_conv2d(x, w, shape.in_channels, **args), repeats, ["binary_conv"])

    columns = np.empty((x.shape[0] * shape.out_size**2, shape.kernel**2 * shape.in_channels), dtype=np.float32)

    def float_conv():  # the column buffer is reused, as a training loop would: no page faults timed
        float_im2col(x_float, shape.kernel, stride=shape.stride, padding=shape.padding, out=columns)
        return columns @ w_matrix_t

    float_result = _measure(float_conv, repeats, ["im2col"])
    packing_result = _measure(lambda: pack_bits(x_float), repeats, ["packing"])
    summary = _summarise(shape, ceiling, binary=binary, float_im2col_blas=float_result)
    summary["pack_activations_ms"] = round(packing_result["warm_s"] * 1e3, 3)
    summary["pack_share_of_binary_conv"] = round(packing_result["warm_s"] / binary["warm_s"], 3)
    return summary


def _summarise(shape, ceiling: float, binary: dict, **float_results) -> dict:
    (float_name, reference), = float_results.items()
    binary_rate, float_rate = shape.macs / binary["warm_s"], shape.macs / reference["warm_s"]
    single_thread = {}
    if nb.get_num_threads() == 1:  # all work ran in this thread: CPU-time rates ignore other load
        single_thread = {
            "binary_gmacs_per_cpu_s": round(shape.macs / binary["cpu_s"] / 1e9, 1),
            f"{float_name}_gmacs_per_cpu_s": round(shape.macs / reference["cpu_s"] / 1e9, 1),
            "ratio_cpu": round(reference["cpu_s"] / binary["cpu_s"], 2),
        }
    return single_thread | {
        "shape": shape.name,
        "label": shape.label,
        "macs": shape.macs,
        "binary_gmacs": round(binary_rate / 1e9, 1),
        f"{float_name}_gmacs": round(float_rate / 1e9, 1),
        "ratio": round(binary_rate / float_rate, 2),
        "share_of_popcount_ceiling": round(binary_rate / ceiling, 3),
        "binary_warm_ms": round(binary["warm_s"] * 1e3, 3),
        f"{float_name}_warm_ms": round(reference["warm_s"] * 1e3, 3),
        "binary_cold_ms": None if binary["cold_s"] is None else round(binary["cold_s"] * 1e3, 1),
        "binary_cold_cache": binary["cache"],
        f"{float_name}_cold_ms": None if reference["cold_s"] is None else round(reference["cold_s"] * 1e3, 1),
    }


def _measure(call, repeats: int, kernel_modules: list) -> dict:
    """Warm median of `repeats` calls after a first call. The first call is "cold" if no Numba
    function of `kernel_modules` (names in numbnn.kernels) ran before in this process; its cache
    field then says whether it loaded the on-disk cache ("hit") or compiled."""
    objects = [obj for name in kernel_modules for obj in vars(importlib.import_module(f"numbnn.kernels.{name}")).values()]
    # typed kernels load on first use (numbnn.kernels.typed); loaded here, as they were at import before
    dispatchers = [obj.dispatcher if isinstance(obj, TypedKernel) else obj for obj in objects
                   if isinstance(obj, (TypedKernel, nb.core.dispatcher.Dispatcher))]
    fresh = bool(dispatchers) and not any(d.signatures for d in dispatchers)
    hits_before, misses_before = _cache_counts(dispatchers)
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    hits, misses = _cache_counts(dispatchers)
    times, cpu_times = [], []
    for _ in range(max(1, repeats)):
        start, cpu_start = time.perf_counter(), time.thread_time()
        call()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.thread_time() - cpu_start)
    result = {"warm_s": float(np.median(times)), "cpu_s": float(np.median(cpu_times)), "cold_s": None, "cache": None}
    if fresh:
        result["cold_s"] = first
        result["cache"] = "compiled" if misses > misses_before or hits == hits_before else "hit"
    elif dispatchers:
        result["cache"] = "already compiled"
    return result


def _cache_counts(dispatchers) -> tuple[int, int]:
    hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers)
    misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
    return hits, misses


def _random_signs(rng, shape) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)
