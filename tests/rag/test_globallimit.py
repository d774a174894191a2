"""The global rate limiter in a real Redis: limits shared by every process, a fair queue per
session, a bounded wait, a spent day failing at once, and the quota prediction."""

from __future__ import annotations

import threading
import time

import pytest

from rag.errors import QuotaExhausted
from rag.globallimit import GlobalRateLimiter
from rag.ratelimit import WINDOW, current_session, shared_limiter
from rag.settings import RateLimit, Settings

pytestmark = pytest.mark.redis
MODEL = Settings().flash_model


def limited(settings: Settings, redis_url: str, limit: RateLimit, wait_s: float = 5.0) -> Settings:
    return settings.model_copy(update={
        "redis_url": redis_url, "tier": "free", "queue_max_wait_s": wait_s,
        "models": settings.models | {MODEL: settings.models[MODEL].model_copy(update={"limits": {"free": limit}})},
    })


def test_limits_are_shared_by_separate_limiters(settings, redis_url):
    config = limited(settings, redis_url, RateLimit(rpm=3), wait_s=0.3)
    one, two = GlobalRateLimiter(config), GlobalRateLimiter(config)  # as in two replicas
    assert [one.acquire(MODEL), one.acquire(MODEL), two.acquire(MODEL)] == pytest.approx([0, 0, 0], abs=0.05)
    started = time.monotonic()
    with pytest.raises(QuotaExhausted, match="shared by all replicas") as refused:
        two.acquire(MODEL)
    assert 0.3 <= time.monotonic() - started < 1.0  # waited its bound, then gave up
    assert 55 <= refused.value.retry_after_s <= WINDOW
    assert one.quota(MODEL).waiting == 0  # the refused call left the queue


def test_a_burst_from_one_session_does_not_starve_another(settings, redis_url):
    limiter = GlobalRateLimiter(limited(settings, redis_url, RateLimit(rpm=2)), window_s=1.0)
    granted: list[str] = []
    lock = threading.Lock()

    def call(session: str) -> None:
        current_session.set(session)
        limiter.acquire(MODEL)
        with lock:
            granted.append(session)

    burst = [threading.Thread(target=call, args=("a",)) for _ in range(6)]
    for thread in burst:
        thread.start()
    time.sleep(0.1)  # session b arrives after a's burst is queued
    late = [threading.Thread(target=call, args=("b",)) for _ in range(2)]
    for thread in late:
        thread.start()
    for thread in burst + late:
        thread.join(10)
    assert granted[:2] == ["a", "a"]  # the window's first two slots
    assert sorted(granted[2:6]) == ["a", "a", "b", "b"]  # then turns alternate: b is not behind all of a
    assert granted[6:] == ["a", "a"]


def test_a_spent_day_fails_at_once(settings, redis_url):
    limiter = GlobalRateLimiter(limited(settings, redis_url, RateLimit(rpd=2)))
    limiter.acquire(MODEL)
    limiter.acquire(MODEL)
    started = time.monotonic()
    with pytest.raises(QuotaExhausted, match="daily limit of 2 requests") as refused:
        limiter.acquire(MODEL)
    assert time.monotonic() - started < 0.2 and refused.value.retry_after_s > 86_000


def test_quota_prediction_from_the_current_pace(settings, redis_url):
    limiter = GlobalRateLimiter(limited(settings, redis_url, RateLimit(rpd=1_000)))
    for _ in range(10):
        limiter.acquire(MODEL)
    quota = limiter.quota(MODEL)
    assert (quota.requests_today, quota.requests_last_minute, quota.rpd) == (10, 10, 1_000)
    assert quota.exhausted_in_s == pytest.approx(990 / (10 / 60))


def test_redis_url_selects_the_global_limiter(settings, redis_url):
    assert isinstance(shared_limiter(limited(settings, redis_url, RateLimit(rpm=5))), GlobalRateLimiter)


def test_more_waiting_calls_than_connections_wait_their_turn(settings, redis_url):
    """Hundreds of threads (open answer streams) share one client: none may fail for want of a connection."""
    limiter = GlobalRateLimiter(limited(settings, redis_url, RateLimit(rpm=10), wait_s=1.0))
    outcomes: list[str] = []

    def call(n: int) -> None:
        current_session.set(f"s{n}")
        try:
            limiter.acquire(MODEL)
            outcomes.append("granted")
        except QuotaExhausted:
            outcomes.append("refused")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(250)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(set(outcomes)) == ["granted", "refused"] and outcomes.count("granted") == 10
