"""A conv's input gradient four ways, on the wall clock: BLAS dcols products + col2im against the
register-tiled kernel (:mod:`numbnn.kernels.conv_input_grad`) and, for convs on whole vectors of input
channels per group, the table lookup on +-1 weights (:mod:`numbnn.kernels.sign_conv_input_grad`) and,
with whole vectors of output channels too on AVX-512, the permute of per-pixel sign tables
(:mod:`numbnn.kernels.permute_conv_input_grad`), on the 3x3 conv shapes of the zoo; with ``--pointwise``
on 1x1 shapes (no tiled kernel there: the conv backward takes BLAS without col2im).

For each shape, the ways run alternately ``--repeats`` times after a warm-up; the medians and their
ratios to BLAS + col2im are printed (below 1: the kernel is faster). ``functional.conv.
TILED_INPUT_GRAD_MAX_OUTPUTS`` (the largest O/groups that takes the tiled kernel), the binary convs'
choice of the lookup (``functional.binary._lookup_input_grad``) and ``PERMUTE_INPUT_GRAD_MAX_OUTPUTS`` there
were made from this table:

    python3 benchmarks/conv_input_grad.py --threads 2 --json
"""

import argparse
import json
import statistics
import time

import numpy as np

from numbnn.functional import conv as conv_module
from numbnn.kernels.conv_input_grad import conv_input_grad
from numbnn.kernels.permute_conv_input_grad import fits as permute_fits
from numbnn.kernels.permute_conv_input_grad import permute_conv_input_grad
from numbnn.kernels.platform import cpu_model
from numbnn.kernels.sign_conv_input_grad import fits as lookup_fits
from numbnn.kernels.sign_conv_input_grad import sign_conv_input_grad
from numbnn.threads import set_threads

# (name, input [N, H, W, C], output channels O, stride, groups), batch 128, 3x3, padding 1
SHAPES = [
    ("ftbnn stage 1", (128, 14, 14, 64), 64, 1, 4),
    ("ftbnn stage 2", (128, 7, 7, 128), 128, 1, 4),
    ("ftbnn stage 3", (128, 4, 4, 256), 256, 1, 4),
    ("bnn-small block 0", (128, 28, 28, 32), 32, 1, 1),
    ("bnn-small block 1", (128, 28, 28, 32), 64, 2, 1),
    ("reactnet-a block 1", (128, 14, 14, 64), 64, 2, 1),
    ("bnn-small block 2", (128, 14, 14, 64), 128, 2, 1),
    ("bnn-small block 3", (128, 7, 7, 128), 128, 1, 1),
    ("reactnet-a block 3", (128, 7, 7, 128), 128, 2, 1),
    ("reactnet-a block 4", (128, 4, 4, 256), 256, 1, 1),
    ("ungrouped 128", (128, 14, 14, 128), 128, 1, 1),
]
# (name, input, O, stride, groups), batch 128, 1x1: the zoo's pointwise widths at the resolutions they run at
POINTWISE_SHAPES = [
    ("1x1 32 -> 32, 28x28", (128, 28, 28, 32), 32, 1, 1),
    ("1x1 32 -> 64, 28x28", (128, 28, 28, 32), 64, 1, 1),
    ("1x1 32 -> 128, 28x28", (128, 28, 28, 32), 128, 1, 1),
    ("1x1 64 -> 32, 14x14", (128, 14, 14, 64), 32, 1, 1),
    ("1x1 64 -> 64, 14x14", (128, 14, 14, 64), 64, 1, 1),
    ("1x1 64 -> 256, 14x14", (128, 14, 14, 64), 256, 1, 1),
    ("1x1 128 -> 128, 14x14", (128, 14, 14, 128), 128, 1, 1),
    ("1x1 128 -> 128, 7x7", (128, 7, 7, 128), 128, 1, 1),
    ("1x1 256 -> 256, 7x7", (128, 7, 7, 256), 256, 1, 1),
    ("1x1 256 -> 512, 7x7", (128, 7, 7, 256), 512, 1, 1),
    ("1x1 512 -> 512, 4x4", (128, 4, 4, 512), 512, 1, 1),
]


def time_shape(shape, o, stride, groups, repeats, rng, k=3):
    """Median seconds of each way ({"blas_col2im": s, "tiled": s (3x3 only), "lookup" and "permute": s where
    they apply}) on a k x k conv with padding k // 2."""
    pad = k // 2
    s = conv_module.conv_shape(shape, (o, k, k, shape[3] // groups), stride, pad, 1, groups)
    grad = rng.standard_normal((s.rows, o)).astype(np.float32)
    w = np.where(rng.random((o, k, k, shape[3] // groups)) < 0.5, -1.0, 1.0).astype(np.float32)
    with_blas = lambda: conv_module.blocked_backward(grad, None, w, s, True, False)  # noqa: E731
    ways = {"blas_col2im": with_blas}
    if k > 1:
        ways["tiled"] = lambda: conv_input_grad(grad, w, shape, k, stride, pad, 1, groups)
    if lookup_fits(shape[3], groups):
        ways["lookup"] = lambda: sign_conv_input_grad(grad, w, shape, k, stride, pad, 1, groups)
    if permute_fits(shape[3], o, groups):
        ways["permute"] = lambda: permute_conv_input_grad(grad, w, shape, k, stride, pad, 1, groups)
    original = conv_module.TILED_INPUT_GRAD_MAX_OUTPUTS
    conv_module.TILED_INPUT_GRAD_MAX_OUTPUTS = 0  # blocked_backward on BLAS + col2im only
    try:
        for fn in ways.values():
            fn()
        times = {name: [] for name in ways}
        for _ in range(repeats):
            for name, fn in ways.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    finally:
        conv_module.TILED_INPUT_GRAD_MAX_OUTPUTS = original
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--pointwise", action="store_true", help="1x1 shapes instead of the 3x3 ones")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    k = 1 if args.pointwise else 3
    for name, shape, o, stride, groups in POINTWISE_SHAPES if args.pointwise else SHAPES:
        medians = time_shape(shape, o, stride, groups, args.repeats, rng, k)
        row = {"shape": name, "input": list(shape), "kernel": k, "outputs": o, "stride": stride, "groups": groups,
               "outputs_per_group": o // groups}
        row.update({f"{way}_ms": round(seconds * 1e3, 2) for way, seconds in medians.items()})
        row.update({f"{way}_ratio": round(seconds / medians["blas_col2im"], 2) for way, seconds in medians.items()
                    if way != "blas_col2im"})
        rows.append(row)
        if not args.json:
            others = "".join(f"  {way} {row[way + '_ms']:7.2f} ms ({row[way + '_ratio']:.2f})"
                             for way in ("tiled", "lookup", "permute") if way in medians)
            print(f"{name:22s} O/G {row['outputs_per_group']:4d}  BLAS + col2im {row['blas_col2im_ms']:7.2f} ms"
                  f"{others}", flush=True)
    if args.json:
        print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()
