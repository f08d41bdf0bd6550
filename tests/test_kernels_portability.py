"""The kernels on a CPU without AVX-512: compiled for Haswell (AVX2) in a subprocess, still exact; and the
AVX-512 permute kernel compiled for a CPU that prefers 256-bit vectors.

NUMBA_CPU_NAME alone keeps the host's feature flags, so NUMBA_CPU_FEATURES="" is set too: the code
is then generated for a plain Haswell, and numbnn picks its AVX2 tile shape.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from numbnn.kernels.permute_conv_input_grad import available as permute_available

CHECK = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import naive
    from numbnn.kernels import binary_conv2d, binary_matmul, pack_activations, pack_bits, pack_conv_weight, unpack_bits
    from numbnn.kernels.platform import target_has_vector_popcount
    from numbnn.kernels.tiles import TILE_COLS

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((70, 130)), rng.standard_normal((37, 130))
    assert (binary_matmul(pack_bits(a), pack_bits(b), 130) == naive.signs(a) @ naive.signs(b).T).all()
    x, w = rng.standard_normal((2, 9, 8, 140)), rng.standard_normal((40, 3, 3, 70))
    for pad_value in (0, 1, -1):
        args = dict(stride=2, padding=1, pad_value=pad_value, groups=2)
        got = binary_conv2d(pack_activations(x, 2), pack_conv_weight(w), 140, **args)
        assert (got == naive.float_conv2d(naive.signs(x), naive.signs(w), **args)).all()
    w = rng.standard_normal((33, 3, 3, 140))  # one group: interior runs read in place, one edge panel
    got = binary_conv2d(pack_activations(x), pack_conv_weight(w), 140, padding=1)
    assert (got == naive.float_conv2d(naive.signs(x), naive.signs(w), padding=1)).all()
    assert (unpack_bits(pack_bits(x), 140) == naive.signs(x)).all()
    from numbnn.kernels import pack_sign_columns, sign_rows_matmul  # 16-float vectors as two AVX2 halves
    bits = pack_sign_columns(x[:, :5, :6, :33].astype(np.float32), 3, padding=1)
    g = rng.standard_normal((60, 40)).astype(np.float32)
    assert np.allclose(sign_rows_matmul(bits, g), naive.sign_rows_matmul(bits, g), rtol=1e-5, atol=1e-4)
    x32 = x[:, :5, :6, :32].astype(np.float32)  # whole 16-value runs: vector compares of 16 floats
    assert (pack_sign_columns(x32, 3, padding=1, groups=2) == naive.pack_sign_columns(x32, 3, padding=1, groups=2)).all()
    bits = pack_sign_columns(x[:, :5, :6, :66].astype(np.float32), 3, padding=1, groups=2)  # grouped: per group
    assert np.allclose(sign_rows_matmul(bits, g, 2), naive.sign_rows_matmul(bits, g, 2), rtol=1e-5, atol=1e-4)
    from numbnn.kernels.conv_input_grad import conv_input_grad  # 16-float FMAs and adds as AVX2 halves
    w = np.where(rng.random((12, 3, 3, 16)) < 0.5, -1.0, 1.0).astype(np.float32)
    g = rng.integers(-3, 4, (2 * 5 * 4, 12)).astype(np.float32)  # integers times +-1: exact in any order
    args = dict(stride=2, padding=1, groups=2)
    assert (conv_input_grad(g, w, (2, 9, 8, 32), 3, **args) == naive.conv_input_grad(g, w, (2, 9, 8, 32), 3, **args)).all()
    from numbnn.kernels.sign_conv_input_grad import sign_conv_input_grad  # table lookups, 16x16 transposes
    w = rng.standard_normal((36, 3, 3, 16)).astype(np.float32)
    g = rng.integers(-3, 4, (3 * 5 * 4, 36)).astype(np.float32)
    got = sign_conv_input_grad(g, w, (3, 9, 8, 16), 3, stride=2, padding=1)
    assert (got == naive.sign_conv_input_grad(g, w, (3, 9, 8, 16), 3, stride=2, padding=1)).all()
    from numbnn.kernels.permute_conv_input_grad import available  # no 16-lane permute: the conv backward avoids it
    from numbnn.functional import binary as binary_module
    x = rng.standard_normal((128, 7, 7, 32)).astype(np.float32)
    s = binary_module.conv_shape(x.shape, (32, 3, 3, 32), 1, 1, 1, 1)
    assert not available() and not binary_module._permute_input_grad(np.zeros((s.rows, 32), np.float32), s)
    print("tile_cols", TILE_COLS, "vector_popcount", target_has_vector_popcount())
    """
)


def test_kernels_are_exact_when_compiled_for_haswell():
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
    tests = str(Path(__file__).parent)
    result = subprocess.run([sys.executable, "-c", CHECK.format(tests=tests)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tile_cols 8 vector_popcount False" in result.stdout


PERMUTE_CHECK = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import naive
    from numbnn.kernels.permute_conv_input_grad import available, permute_conv_input_grad

    assert available()
    rng = np.random.default_rng(0)
    for groups, per_group in ((4, 16), (1, 32)):  # chunks of 4 quads for 4 pixels, of 8 for 2
        w = rng.standard_normal((groups * per_group, 3, 3, 16)).astype(np.float32)
        g = rng.integers(-3, 4, (2 * 5 * 4, groups * per_group)).astype(np.float32)
        shape = (2, 9, 8, 16 * groups)
        got = permute_conv_input_grad(g, w, shape, 3, stride=2, padding=1, groups=groups)
        assert (got == naive.sign_conv_input_grad(g, w, shape, 3, stride=2, padding=1, groups=groups)).all()
    print("permute exact")
    """
)


@pytest.mark.skipif(not permute_available(), reason="runs AVX-512 code: needs a host with AVX-512F")
def test_the_permute_kernel_is_exact_when_compiled_for_a_cpu_preferring_256_bit_vectors():
    """LLVM gives Skylake-SP 256-bit vectors by preference; the kernel's 512-bit permutes must still compile
    there (the Intel machines this project runs on take the same path)."""
    env = dict(os.environ, NUMBA_CPU_NAME="skylake-avx512")
    env.pop("NUMBA_CPU_FEATURES", None)  # the host's features: AVX-512F among them
    tests = str(Path(__file__).parent)
    result = subprocess.run([sys.executable, "-c", PERMUTE_CHECK.format(tests=tests)], env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "permute exact" in result.stdout
