"""A conv's input gradient two ways, on the wall clock: BLAS dcols products + col2im against the
register-tiled kernel (:mod:`numbnn.kernels.conv_input_grad`), on the 3x3 conv shapes of the zoo.

For each shape, the two run alternately ``--repeats`` times after a warm-up; the medians and their
ratio are printed (below 1: the kernel is faster). ``functional.conv.TILED_INPUT_GRAD_MAX_OUTPUTS``
(the largest O/groups that takes the kernel) was chosen from this table:

    python3 benchmarks/conv_input_grad.py --threads 2 --json
"""

import argparse
import json
import statistics
import time

import numpy as np

from numbnn.functional import conv as conv_module
from numbnn.kernels.conv_input_grad import conv_input_grad
from numbnn.kernels.platform import cpu_model
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
    ("ungrouped 128", (128, 14, 14, 128), 128, 1, 1),
]


def time_shape(shape, o, stride, groups, repeats, rng):
    """Median seconds of (BLAS + col2im, tiled kernel) for one conv's input gradient."""
    s = conv_module.conv_shape(shape, (o, 3, 3, shape[3] // groups), stride, 1, 1, groups)
    grad = rng.standard_normal((s.rows, o)).astype(np.float32)
    w = np.where(rng.random((o, 3, 3, shape[3] // groups)) < 0.5, -1.0, 1.0).astype(np.float32)
    with_blas = lambda: conv_module.blocked_backward(grad, None, w, s, True, False)  # noqa: E731
    tiled = lambda: conv_input_grad(grad, w, shape, 3, stride, 1, 1, groups)  # noqa: E731
    original = conv_module.TILED_INPUT_GRAD_MAX_OUTPUTS
    conv_module.TILED_INPUT_GRAD_MAX_OUTPUTS = 0  # blocked_backward on BLAS + col2im only
    try:
        with_blas(), tiled()
        times = ([], [])
        for _ in range(repeats):
            for fn, out in zip((with_blas, tiled), times):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
    finally:
        conv_module.TILED_INPUT_GRAD_MAX_OUTPUTS = original
    return statistics.median(times[0]), statistics.median(times[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, shape, o, stride, groups in SHAPES:
        blas, tiled = time_shape(shape, o, stride, groups, args.repeats, rng)
        rows.append({"shape": name, "input": list(shape), "outputs": o, "stride": stride, "groups": groups,
                     "outputs_per_group": o // groups, "blas_col2im_ms": round(blas * 1e3, 2),
                     "tiled_ms": round(tiled * 1e3, 2), "ratio": round(tiled / blas, 2)})
        if not args.json:
            row = rows[-1]
            print(f"{name:20s} O/G {row['outputs_per_group']:4d}  BLAS + col2im {row['blas_col2im_ms']:7.2f} ms  "
                  f"tiled {row['tiled_ms']:7.2f} ms  ratio {row['ratio']:.2f}", flush=True)
    if args.json:
        print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()
