"""Cases shared by the tests of the gathering kernels (``gather_pack``, ``run_stages_gathered``): images and an
index map of their rearranged rows, element e read from ``index[e]`` (negative: a padding constant)."""

import numpy as np


def gather_case(rng, batch: int, rows: int, channels: int, in_runs: bool, max_pixels: int):
    """(x float32 [batch, pixels * S], fill float32 [3], index int32 [rows, channels], built, S): images of up to
    ``max_pixels`` pixels of S source channels and an index map of them. ``in_runs``: S a divisor of
    ``channels``, the map made of chunks of ``built`` elements (a random divisor of S), each a whole aligned run
    of one source pixel's channels or padding (space-to-depth's shape); else S in 1-8 and any source elements
    in any order, repeated, or padding (``built`` = 1)."""
    source_channels = int(rng.choice([d for d in range(1, channels + 1) if channels % d == 0])) if in_runs \
        else int(rng.integers(1, 9))
    pixels = int(rng.integers(1, max_pixels))
    x = rng.standard_normal((batch, pixels * source_channels)).astype(np.float32)
    fill = rng.standard_normal(3).astype(np.float32)
    if not in_runs:
        return x, fill, rng.integers(-3, pixels * source_channels, (rows, channels)).astype(np.int32), 1, source_channels
    built = int(rng.choice([d for d in range(1, source_channels + 1) if source_channels % d == 0]))
    starts = rng.integers(0, pixels, (rows, channels // built)) * source_channels \
        + rng.integers(0, source_channels // built, (rows, channels // built)) * built
    starts = np.where(rng.random(starts.shape) < 0.2, -1 - rng.integers(0, 3, starts.shape), starts)
    index = np.where(starts[..., None] >= 0, starts[..., None] + np.arange(built), starts[..., None])
    return x, fill, index.reshape(rows, channels).astype(np.int32), built, source_channels
