"""import numbnn sets OPENBLAS_THREAD_TIMEOUT before OpenBLAS loads (OpenBLAS reads it once, at load time),
unless the user chose a timeout."""

import os
import subprocess
import sys

import pytest

# threadpoolctl lists the BLAS libraries loaded in the process (it imports none itself): none may be
# loaded when `import numbnn` returns, or the variable would be set too late to matter; numpy's import
# must then load one, or the first check could never fail.
SCRIPT = """
import os
from threadpoolctl import threadpool_info
import numbnn
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), [lib["internal_api"] for lib in threadpool_info()])
import numpy
print([lib["internal_api"] for lib in threadpool_info() if lib["user_api"] == "blas"])
"""


@pytest.mark.parametrize("preset, expected", [(None, "4"), ("20", "20")])
def test_openblas_thread_timeout_is_set_before_openblas_loads(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    after_numbnn, after_numpy = out.stdout.splitlines()
    assert after_numbnn == f"{expected} []"
    assert "openblas" in after_numpy
