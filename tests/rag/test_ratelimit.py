"""The client-side limiter: bursts above the limits wait their turn, a spent day fails fast."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag.errors import QuotaExhausted
from rag.providers.gemini import GeminiProvider
from rag.ratelimit import WINDOW, RateLimiter, shared_limiter
from rag.settings import RateLimit, Settings
from rag.testing.fake_gemini import FakeGemini
from rag.types import Prompt
from tests.fakes.clock import ManualClock
from tests.fakes.sleeper import RecordingSleep

MODEL = "gemini-3.8-flash"


def limited(tmp_path: Path, limit: RateLimit, **extra: str) -> Settings:
    return Settings(data_dir=tmp_path, tier="free", models={MODEL: {"limits": {"free": limit.model_dump()}}}, **extra)


def test_burst_above_rpm_is_spread_over_minutes_not_failed(tmp_path: Path) -> None:
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    limiter = RateLimiter(limited(tmp_path, RateLimit(rpm=10)), clock=clock, sleep=sleep)
    start = clock()
    starts = []
    for _ in range(25):
        limiter.acquire(MODEL)
        starts.append(clock() - start)
    assert starts == [0.0] * 10 + [WINDOW] * 10 + [2 * WINDOW] * 5


def test_tokens_per_minute_delay_the_request_that_does_not_fit(tmp_path: Path) -> None:
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    limiter = RateLimiter(limited(tmp_path, RateLimit(tpm=1_000)), clock=clock, sleep=sleep)
    assert limiter.acquire(MODEL, 400) == 0
    clock.advance(10)
    assert limiter.acquire(MODEL, 400) == 0
    clock.advance(10)
    assert limiter.acquire(MODEL, 400) == pytest.approx(WINDOW - 20)  # until the first 400 leave the window
    assert limiter.acquire(MODEL, 5_000) == pytest.approx(WINDOW)  # larger than the budget: an empty window


def test_spent_daily_limit_fails_at_once_with_what_to_do(tmp_path: Path) -> None:
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    limiter = RateLimiter(limited(tmp_path, RateLimit(rpd=3)), clock=clock, sleep=sleep)
    for _ in range(3):
        limiter.acquire(MODEL)
    with pytest.raises(QuotaExhausted) as caught:
        limiter.acquire(MODEL)
    message = str(caught.value)
    assert MODEL in message and "'free' tier" in message and "daily limit of 3" in message
    assert "gemrag.toml" in message
    assert sleep.waits == []  # no waiting for hours
    clock.advance(86_400)
    assert limiter.acquire(MODEL) == 0  # a day later the requests have left the window


def test_wait_longer_than_the_deadline_fails_without_taking_a_slot(tmp_path: Path) -> None:
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    limiter = RateLimiter(limited(tmp_path, RateLimit(rpm=1)), clock=clock, sleep=sleep)
    limiter.acquire(MODEL)
    with pytest.raises(QuotaExhausted, match="60 s away, past the 30 s left"):
        limiter.acquire(MODEL, max_wait_s=30)
    assert limiter.acquire(MODEL, max_wait_s=90) == pytest.approx(WINDOW)


def test_other_models_and_unlimited_tiers_do_not_wait(tmp_path: Path) -> None:
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    limiter = RateLimiter(limited(tmp_path, RateLimit(rpm=1)), clock=clock, sleep=sleep)
    limiter.acquire(MODEL)
    assert limiter.acquire("gemini-3.1-pro-preview") == 0
    unlimited = RateLimiter(Settings(data_dir=tmp_path, tier="unlimited"), clock=clock, sleep=sleep)
    assert all(unlimited.acquire(MODEL) == 0 for _ in range(1_000))


def test_concurrent_callers_never_exceed_the_limit(tmp_path: Path) -> None:
    clock = ManualClock()
    limiter = RateLimiter(limited(tmp_path, RateLimit(rpm=7)), clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            wait = limiter.acquire(MODEL)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [WINDOW * (i // 7) for i in range(40)]


def test_provider_spreads_a_burst_instead_of_hitting_the_servers_limit(
    fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    settings = limited(tmp_path, RateLimit(rpm=5), api_key="k", base_url=fake_gemini.url)
    clock = ManualClock()
    sleep = RecordingSleep(clock)
    provider = GeminiProvider(settings, limiter=RateLimiter(settings, clock=clock, sleep=sleep))
    answers = [provider.generate(Prompt.of(f"question {i}")).text for i in range(12)]
    assert len(answers) == 12
    assert [r.status for r in fake_gemini.calls("generateContent")] == [200] * 12
    assert sleep.waits == [WINDOW, WINDOW]  # calls 6 and 11 each wait for the next minute; none failed


def test_shared_limiter_is_one_per_limit_table(tmp_path: Path) -> None:
    five, six = RateLimit(rpm=5), RateLimit(rpm=6)
    assert shared_limiter(limited(tmp_path, five)) is shared_limiter(limited(tmp_path / "other", five))
    assert shared_limiter(limited(tmp_path, five)) is not shared_limiter(limited(tmp_path, six))
