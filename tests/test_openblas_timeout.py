"""import numbnn sets OPENBLAS_THREAD_TIMEOUT before OpenBLAS loads (OpenBLAS reads it once, at load time),
unless the user chose a timeout."""

import os
import subprocess
import sys

import pytest

# OpenBLAS comes in with numpy (its bundled libopenblas) or scipy; at the moment `import numbnn` returns,
# neither may be loaded yet, or the variable would be set too late to matter.
SCRIPT = """
import os, sys
import numbnn
loaded = sorted(name for name in ("numpy", "scipy", "numba") if name in sys.modules)
maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), loaded, "openblas" in maps.lower())
import numpy
maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else "openblas"
print("openblas" in maps.lower())
"""


@pytest.mark.parametrize("preset, expected", [(None, "4"), ("20", "20")])
def test_openblas_thread_timeout_is_set_before_openblas_loads(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    after_numbnn, after_numpy = out.stdout.splitlines()
    assert after_numbnn == f"{expected} [] False"  # set, and nothing that loads OpenBLAS imported yet
    assert after_numpy == "True"  # the check above can fail: numpy does bring OpenBLAS in
