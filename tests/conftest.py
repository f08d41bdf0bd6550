"""Test-wide settings: a hypothesis profile without deadlines (Numba compiles on first call), and a
fresh user cache per test, so cached teacher targets never carry over between tests or CI runs."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "numbnn",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("numbnn")


@pytest.fixture(scope="session", autouse=True)
def session_user_cache(tmp_path_factory):
    """``$XDG_CACHE_HOME`` in a temporary directory for module- and session-scoped fixtures too (the
    shipped FashionMNIST in data/ is found before the cache), so no test writes to the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache-session")))
        yield


@pytest.fixture(autouse=True)
def fresh_user_cache(tmp_path_factory, monkeypatch):
    """A cache of its own for every test: a target cached by one test never serves another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
