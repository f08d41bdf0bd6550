"""Test-wide settings: a hypothesis profile without deadlines (Numba compiles on first call)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "numbnn",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("numbnn")
