"""Shared fixtures. Tests run offline: no key, no hub, no telemetry, stores in tmp dirs."""

from __future__ import annotations

import os

for _var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "LANGSMITH_GATEWAY",
             "REDIS_URL", "CHROMA_URL", "GOOGLE_GEMINI_BASE_URL", "GEMRAG_CONFIG"):
    os.environ.pop(_var, None)
os.environ["GEMRAG_CONFIG"] = os.devnull  # a developer's gemrag.toml must not leak into tests

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from rag import runtime  # noqa: E402,F401
from rag.providers.offline import OfflineProvider  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini  # noqa: E402
from tests.fakes.clock import ManualClock  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Offline settings with every store under a fresh tmp data dir."""
    return Settings(data_dir=tmp_path / "data", api_key=None, tier="unlimited")


@pytest.fixture(scope="session")
def offline_provider() -> OfflineProvider:
    return OfflineProvider()


def _service_url(var: str, what: str) -> str:
    url = os.environ.get(var)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{var} is not set: .ci/run must start {what}")
        pytest.skip(f"{var} not set ({what} not running)")
    return url


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = _service_url("GEMRAG_TEST_REDIS_URL", "a Redis server")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The same settings on each cache and ledger backend: the embedded SQLite default, then
    a real Redis server, so one behavioural test covers both."""
    if request.param == "redis":
        return settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})
    return settings


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def chroma_server_url() -> str:
    return _service_url("GEMRAG_TEST_CHROMA_URL", "a Chroma server")


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    """A fake Gemini API on 127.0.0.1 for this test; see rag/testing/fake_gemini.py."""
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def gemini_settings(fake_gemini: FakeGemini, tmp_path: Path) -> Settings:
    """Settings that take the Gemini path against `fake_gemini`: no client-side limits, tiny
    backoff and short timeouts so fault tests stay fast."""
    return Settings(
        data_dir=tmp_path / "data",
        api_key=TEST_API_KEY,
        base_url=fake_gemini.url,
        tier="unlimited",
        max_attempts=4,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        request_timeout_s=2.0,
        deadline_s=5.0,
    )
