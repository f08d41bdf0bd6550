"""Products split across numbnn's threads (single-threaded BLAS per part) and the thread settings."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from numbnn.errors import InputError
from numbnn.kernels import gemm
from numbnn.threads import set_threads


@pytest.fixture
def restore_threads():
    before = numba.get_num_threads()
    yield
    set_threads(before)


@pytest.mark.parametrize("parts", [2, 3])
def test_split_products_equal_numpy(restore_threads, parts):
    gemm.set_gemm_threads(parts)
    rng = np.random.default_rng(parts)
    a = rng.standard_normal((1001, 300)).astype(np.float32)  # rows not divisible by the parts
    b = rng.standard_normal((300, 64)).astype(np.float32)
    assert a.shape[0] * a.shape[1] * b.shape[1] >= gemm.SPLIT_MIN_MACS
    expected = a.astype(np.float64) @ b
    np.testing.assert_allclose(gemm.matmul(a, b), expected, rtol=1e-4, atol=1e-3)
    out = np.full((1001, 64), np.nan, dtype=np.float32)
    assert gemm.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)
    transposed = gemm.matmul(a.T, rng.standard_normal((1001, 40)).astype(np.float32))  # a strided view as `a`
    assert transposed.shape == (300, 40) and np.isfinite(transposed).all()


def test_split_products_read_and_fill_blocks_of_columns(restore_threads):
    """A grouped convolution multiplies one group's block of columns into its block of the result:
    strided views as `a` and as `out`, the columns around the block untouched."""
    gemm.set_gemm_threads(2)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((1001, 900)).astype(np.float32)[:, 300:600]
    b = rng.standard_normal((300, 64)).astype(np.float32)
    out = np.full((1001, 192), np.nan, dtype=np.float32)
    gemm.matmul(a, b, out=out[:, 64:128])
    np.testing.assert_allclose(out[:, 64:128], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)
    assert np.isnan(out[:, :64]).all() and np.isnan(out[:, 128:]).all()


def test_set_threads_limits_every_loaded_blas(restore_threads):
    blas = ThreadpoolController().select(user_api="blas")
    assert blas.lib_controllers  # numpy is imported, so its BLAS is loaded
    before = [lib.num_threads for lib in blas.lib_controllers]
    try:
        assert set_threads(1)["blas"] == 1
        assert [lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers] == \
            [1] * len(before)
    finally:
        blas.limit(limits=max(before))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_set_threads_splits_products_and_keeps_blas_on_one_thread(restore_threads):
    info = set_threads(2)
    assert info["numba"] == 2 and info["gemm_parts"] == 2 and info["blas"] == 1
    assert gemm.threads == 2
    info = set_threads(2, blas="native")
    assert info["gemm_parts"] == 1 and info["blas"] == 2 and gemm.threads == 1
    with pytest.raises(InputError, match="blas"):
        set_threads(2, blas="openmp")


@pytest.mark.parametrize("given, expected", [
    ({}, "10000"),                               # numbnn's spin count (numbnn.kernels' docstring says why)
    ({"GOMP_SPINCOUNT": "500"}, "500"),          # the user's own setting wins
    ({"OMP_WAIT_POLICY": "PASSIVE"}, None),      # so does a wait policy: no spin count is added
])
def test_openmp_spin_count_is_set_unless_the_user_chose(given, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = "import os, numbnn.kernels; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **given}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(expected)


def test_packed_prediction_applies_the_thread_default(monkeypatch, restore_threads):
    """A packed model splits its float products over Numba's threads, as training does (numbnn.threads)."""
    import numbnn.threads
    from numbnn.inference import compile as compile_packed
    from numbnn.models import build_model

    packed = compile_packed(build_model("bnn-small", widths=[8, 8, 16]).eval())
    monkeypatch.setattr(numbnn.threads, "_configured", False)
    gemm.set_gemm_threads(1)
    packed.predict(np.zeros((2, 28, 28), np.uint8))
    assert numbnn.threads._configured and gemm.threads == numba.get_num_threads()
