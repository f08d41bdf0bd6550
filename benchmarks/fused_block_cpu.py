"""CPU time of the fused block op against the chain it replaces, forward and forward + backward.

The fused op is ``F.batch_norm_add_dprelu`` (training-mode BN + residual + RPReLU); the chain is
``F.batch_norm`` -> ``+ r`` (-> ``F.concat`` for ``--parts 2``, ReActNet's duplicated 1x1 branches) ->
``F.dprelu``, on float32 maps x [N, H, W, C] per part. Both alternate round by round (a round: 10 calls,
timed with ``time.process_time``), so another process loading the machine hits them alike; the medians of
``--rounds`` rounds are printed in ms. Pin the threads to measure one core, as the figures in
docs/performance.md were:

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 19 \\
        python benchmarks/fused_block_cpu.py --shape 64 14 14 64 --parts 1
"""

import argparse
import statistics
import time

import numpy as np

import numbnn.functional as F
from numbnn.autograd import Tensor


def make_step(shape, parts: int, fused: bool, backward: bool):
    """One call of the fused op or of the chain (and its backward), on fixed random inputs."""
    rng = np.random.default_rng(0)
    c = shape[-1]
    xs = [Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True) for _ in range(parts)]
    r = Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    gammas, betas = ([Tensor(rng.uniform(0.5, 1.5, c).astype(np.float32), requires_grad=True) for _ in range(parts)]
                     for _ in range(2))
    slope, gamma, zeta = (Tensor(rng.standard_normal(parts * c).astype(np.float32), requires_grad=True) for _ in range(3))
    means, variances = [np.zeros(c, np.float32) for _ in range(parts)], [np.ones(c, np.float32) for _ in range(parts)]
    upstream = rng.standard_normal(tuple(shape[:-1]) + (parts * c,)).astype(np.float32)

    def step():
        if fused:
            bn = (xs, r, gammas, betas, means, variances) if parts > 1 else (xs[0], r, gammas[0], betas[0], means[0],
                                                                              variances[0])
            y = F.batch_norm_add_dprelu(*bn, True, 1.0, slope, gamma, -zeta)
        else:
            branches = [F.batch_norm(x, g, b, m, v, training=True) + r
                        for x, g, b, m, v in zip(xs, gammas, betas, means, variances)]
            y = F.dprelu(branches[0] if parts == 1 else F.concat(branches, axis=-1), 1.0, slope, gamma, -zeta)
        if backward:
            y.backward(upstream)

    return step


def alternating_medians(steps, rounds: int, calls: int = 10) -> list[float]:
    """Median CPU ms per call of each step, the steps timed in turn each round after 3 warm-up calls."""
    for step in steps:
        for _ in range(3):
            step()
    times = [[] for _ in steps]
    for _ in range(rounds):
        for own, step in zip(times, steps):
            start = time.process_time()
            for _ in range(calls):
                step()
            own.append(1e3 * (time.process_time() - start) / calls)
    return [statistics.median(own) for own in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[64, 14, 14, 64], metavar=("N", "H", "W", "C"))
    parser.add_argument("--parts", type=int, choices=(1, 2), default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"{args.parts} x {tuple(args.shape)}: CPU ms per call, median of {args.rounds} alternating rounds")
    for backward in (False, True):
        chain, fused = alternating_medians([make_step(args.shape, args.parts, f, backward) for f in (False, True)],
                                           args.rounds)
        print(f"{'forward+bwd' if backward else 'forward':12s} chain {chain:.3f}  fused {fused:.3f}  ratio {fused / chain:.3f}")


if __name__ == "__main__":
    main()
