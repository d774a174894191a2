"""Client-side rate limiting per model, so a burst waits its turn instead of failing.

The Gemini API enforces requests/min, tokens/min and requests/day per project and model,
and answers 429 beyond them. Hitting that wall costs a failed request and a retry delay;
spacing the requests ourselves costs only the wait. Limits come from `Settings.limit_for`
(the published figures per tier, dated in settings.py).

Each request reserves the earliest moment at which it fits into every sliding 60 s window,
first come first served, and then sleeps until then outside the lock, so concurrent callers
are spread out evenly. The daily limit is different: waiting hours is never what a user
wants, so a spent day raises `QuotaExhausted` at once. Counts are per process; the daily one
is a rolling 24 h window, a cautious stand-in for the API's reset at midnight Pacific time.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from rag.catalogue import RateLimit, role_of_name
from rag.errors import QuotaExhausted
from rag.settings import Settings

MINUTE = 60.0
# The window our limiter keeps, a hair over the server's minute: the server counts a request
# when it arrives, which is a few ms to a few hundred ms (a first connection, a loaded
# machine) after we reserve its slot. With windows of exactly 60 s on both sides the
# (rpm+1)th request could reach the server inside its minute and be refused 429 (the bench
# saw 2 to 4 per run); half a second more costs under 1% of what the limit allows.
WINDOW = MINUTE + 0.5
DAY = 86_400.0

# The session a model call is made for: the global limiter queues calls per session, round robin.
current_session: ContextVar[str] = ContextVar("gemrag_session", default="")
WaitObserver = Callable[[str, float], None]  # (model, seconds waited), e.g. the server's metrics


@dataclass(frozen=True)
class Quota:
    """Where a model stands against its limits, and when its daily quota runs out at the
    current pace (requests in the last minute): `exhausted_in_s` is inf with no daily limit
    or no traffic."""

    model: str
    requests_today: int
    rpd: int | None
    requests_last_minute: int
    waiting: int
    exhausted_in_s: float


class Limiter(Protocol):
    observers: list[WaitObserver]

    def acquire(self, model: str, tokens: int = 0, *, max_wait_s: float | None = None) -> float: ...

    def quota(self, model: str) -> Quota: ...


def predicted_quota(model: str, today: int, rpd: int | None, last_minute: int, waiting: int) -> Quota:
    rate = last_minute / MINUTE
    eta = math.inf if rpd is None or rate == 0 else max(0.0, (rpd - today) / rate)
    return Quota(model, today, rpd, last_minute, waiting, eta)


def quota_exhausted(model: str, tier: str, why: str, retry_after_s: float | None = None) -> QuotaExhausted:
    """The one wording of "out of quota": what happened, then what the user can do."""
    fewer = (
        "lower embed_concurrency (embedding batches in flight)"
        if role_of_name(model) == "embedding"
        else "ask fewer questions at once (ui_concurrency, eval_workers)"
    )
    return QuotaExhausted(
        f"Gemini quota exhausted for {model} on the '{tier}' tier: {why}. "
        f"Wait and try again, {fewer}, or, if your Google project has a higher "
        "quota, set tier (e.g. tier = \"tier1\") in gemrag.toml.",
        model=model,
        status=429,
        retry_after_s=retry_after_s,
    )


@dataclass
class _Usage:
    """Reservations of one model: (start time, tokens) in the last minute, starts in the last day."""

    minute: deque[tuple[float, int]] = field(default_factory=deque)
    day: deque[float] = field(default_factory=deque)

    def forget_before(self, now: float) -> None:
        while self.minute and self.minute[0][0] <= now - WINDOW:
            self.minute.popleft()
        while self.day and self.day[0] <= now - DAY:
            self.day.popleft()

    def earliest_start(self, limit: RateLimit, tokens: int, now: float) -> float:
        start = max(now, self.minute[-1][0] if self.minute else now)  # first come, first served
        if limit.rpm and len(self.minute) >= limit.rpm:
            start = max(start, self.minute[-limit.rpm][0] + WINDOW)
        if limit.tpm:
            # A request larger than the whole budget could never fit: it waits for an empty window.
            needed = min(tokens, limit.tpm)
            in_window = sum(t for _, t in self.minute)
            for reserved_at, reserved_tokens in self.minute:
                if in_window + needed <= limit.tpm:
                    break
                in_window -= reserved_tokens
                start = max(start, reserved_at + WINDOW)
        return start


class RateLimiter:
    """Thread-safe; `clock` and `sleep` are injectable so tests run on a fake clock."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._usage: dict[str, _Usage] = {}
        self.observers: list[WaitObserver] = []

    def acquire(self, model: str, tokens: int = 0, *, max_wait_s: float | None = None) -> float:
        """Wait until a request of `tokens` input tokens to `model` fits the limits, and count
        it. Returns the seconds waited. Raises QuotaExhausted at once if the daily limit is
        spent or the wait would exceed `max_wait_s` (the caller's remaining deadline)."""
        limit = self.settings.limit_for(model)
        if limit.rpm is None and limit.tpm is None and limit.rpd is None:
            return 0.0
        tier = self.settings.tier
        with self._lock:
            now = self._clock()
            usage = self._usage.setdefault(model, _Usage())
            usage.forget_before(now)
            if limit.rpd is not None and len(usage.day) >= limit.rpd:
                raise quota_exhausted(
                    model,
                    tier,
                    f"the daily limit of {limit.rpd} requests is used up (counted over the last 24 h)",
                    retry_after_s=usage.day[0] + DAY - now,
                )
            start = usage.earliest_start(limit, tokens, now)
            wait = start - now
            if max_wait_s is not None and wait > max_wait_s:
                raise quota_exhausted(
                    model,
                    tier,
                    f"the next free slot under {limit.rpm} requests/min and {limit.tpm} tokens/min is "
                    f"{wait:.0f} s away, past the {max_wait_s:.0f} s left for this call",
                    retry_after_s=wait,
                )
            usage.minute.append((start, tokens))
            usage.day.append(start)
        if wait > 0:
            self._sleep(wait)
        for observe in self.observers:
            observe(model, wait)
        return wait

    def quota(self, model: str) -> Quota:
        with self._lock:
            now = self._clock()
            usage = self._usage.setdefault(model, _Usage())
            usage.forget_before(now)
            started = sum(1 for at, _ in usage.minute if at <= now)
            waiting = len(usage.minute) - started
            return predicted_quota(model, len(usage.day), self.settings.limit_for(model).rpd, started, waiting)


_shared: dict[str, Limiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(settings: Settings) -> Limiter:
    """One limiter per tier and limit table in the process: the API's quota belongs to the
    project, so every provider the app creates (chain, ingest, evaluation) must draw on the
    same counts. With `REDIS_URL`, the counts live in Redis and every process shares them
    (rag/globallimit.py)."""
    key = (settings.redis_url or "") + settings.tier + json.dumps(
        {model: settings.limit_for(model).model_dump() for model in settings.models},
        sort_keys=True,
    )
    with _shared_lock:
        if key not in _shared:
            if settings.redis_url:
                from rag.globallimit import GlobalRateLimiter

                _shared[key] = GlobalRateLimiter(settings)
            else:
                _shared[key] = RateLimiter(settings)
        return _shared[key]
