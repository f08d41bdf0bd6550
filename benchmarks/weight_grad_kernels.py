"""Wall-clock medians of a binary conv's weight-gradient kernels on the zoo's 3x3 shapes (batch 128):
packing the sign columns, the table-lookup product S^T g, and the padding-tap sums.

To compare two versions of numbnn, run this script with each on the path, alternating, e.g.

    PYTHONPATH=/path/to/old/checkout python3 benchmarks/weight_grad_kernels.py --json
    python3 benchmarks/weight_grad_kernels.py --json

The kernels' signatures have been stable since 2026-12-05, so older commits run it unchanged.
"""

import argparse
import json
import statistics
import time

import numpy as np

import numbnn
from numbnn.kernels import pack_sign_columns, padding_tap_sums, sign_rows_matmul
from numbnn.kernels.platform import cpu_model
from numbnn.threads import set_threads

# (name, input [N, H, W, C], output channels O, groups), 3x3, stride 1, padding 1
SHAPES = [
    ("ftbnn stage 1", (128, 14, 14, 64), 64, 4),
    ("ftbnn stage 2", (128, 7, 7, 128), 128, 4),
    ("ftbnn stage 3", (128, 4, 4, 256), 256, 4),
    ("reactnet-a block 0", (128, 14, 14, 32), 32, 1),
    ("reactnet-a block 2", (128, 7, 7, 128), 128, 1),
    ("reactnet-a block 4", (128, 4, 4, 256), 256, 1),
    ("bnn-small block 0", (128, 28, 28, 32), 32, 1),
]


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1e3 * statistics.median(times), 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, shape, o, groups in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal((shape[0] * shape[1] * shape[2], o)).astype(np.float32)
        bits = pack_sign_columns(x, 3, 1, 1, groups=groups)
        row = {"shape": name, "input": list(shape), "outputs": o, "groups": groups,
               "pack_sign_columns_ms": median_ms(lambda: pack_sign_columns(x, 3, 1, 1, groups=groups), args.repeats),
               "sign_rows_matmul_ms": median_ms(lambda: sign_rows_matmul(bits, g, groups), args.repeats),
               "padding_tap_sums_ms": median_ms(lambda: padding_tap_sums(g, shape[1:3], 3, 1, 1), args.repeats)}
        rows.append(row)
        if not args.json:
            print(f"{name:20s} pack {row['pack_sign_columns_ms']:7.3f} ms  lookup {row['sign_rows_matmul_ms']:7.3f} ms  "
                  f"padding sums {row['padding_tap_sums_ms']:7.3f} ms", flush=True)
    if args.json:
        print(json.dumps({"numbnn": numbnn.__file__, "cpu_model": cpu_model(), "threads": args.threads,
                          "repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()
