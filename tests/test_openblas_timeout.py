"""import numbnn asks OpenBLAS's idle worker threads to sleep at once, unless the user chose a timeout."""

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, numbnn, numpy; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


@pytest.mark.parametrize("preset, expected", [(None, "4"), ("20", "20")])
def test_openblas_thread_timeout_is_set_before_numpy_loads(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
