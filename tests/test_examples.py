"""The examples/ scripts run as documented (README points newcomers at them)."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_library_tour_runs_end_to_end():
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "library_tour.py"), "--limit", "300"],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "equal to the float reference" in completed.stdout
    assert "packed model: accuracy" in completed.stdout
