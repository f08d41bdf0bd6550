"""CPU time of one binary conv (grouped or not), forward and forward + backward, on the process clock.

Builds x [N, H, W, C] and a 3x3 weight [C, 3, 3, C/groups] (padding 1, ApproxSign, no scale: ftbnn's
BinaryUnit conv), runs one warm-up, then reports the median of 5 ``time.process_time`` intervals, so
another process loading the machine changes the figures little (CPU time, not wall time). Pin the
threads to measure one core, as the figures in docs/performance.md were:

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 19 \\
        python benchmarks/grouped_conv_cpu.py --shape 128 14 14 256 --groups 4
"""

import argparse
import time

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor


def median_cpu_ms(fn, repeats: int = 5) -> tuple[float, list[int]]:
    """Median and all of ``repeats`` process-CPU times of ``fn`` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1e3 * float(np.median(times)), [round(1e3 * t) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[128, 14, 14, 256], metavar=("N", "H", "W", "C"))
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--stride", type=int, default=1)
    args = parser.parse_args()
    n, h, w, c = args.shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    weight = (0.5 * rng.standard_normal((c, 3, 3, c // args.groups))).astype(np.float32)

    def step(backward: bool):
        xt, wt = Tensor(x, requires_grad=True), Tensor(weight, requires_grad=True)
        out = F.binary_conv2d(xt, wt, stride=args.stride, padding=1, groups=args.groups, act_quantizer="approx")
        if backward:
            out.backward(np.ones(out.shape, np.float32))

    forward = median_cpu_ms(lambda: step(False))
    both = median_cpu_ms(lambda: step(True))
    print(f"x {tuple(args.shape)} groups {args.groups} stride {args.stride}: CPU ms, median of 5")
    print(f"forward        {forward[0]:.0f}  {forward[1]}")
    print(f"forward+bwd    {both[0]:.0f}  {both[1]}")


if __name__ == "__main__":
    main()
