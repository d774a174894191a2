"""How much room a model has left before its quota or the budget stops it: the router's
second input besides the prompt's size.

Pro costs several times Flash and has a far smaller quota. Sending a question to Pro when
its requests for the minute or the day are nearly gone risks a 429 mid-session (and a Flash
fallback after a wasted call); sending it when the budget left would not cover it gets it
refused. So the router asks here first and, when a model is close to a limit, stays on the
cheaper model and says why. The same holds one step down: when Flash itself is close to its
quota, answers move to Flash-Lite. "Close" is `headroom` (a fraction of the limit, default
10%); the limits are the published ones for the configured tier and keys, the counts those of
the shared rate limiter (all replicas, with Redis).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rag.costs import dollars
from rag.kv import StoreUnavailable
from rag.ratelimit import Limiter, Quota
from rag.settings import Settings


@dataclass(frozen=True)
class Verdict:
    """Why a model should not take this question now (None from `blocked`: it may)."""

    decision: str  # a short, stable name, counted in /metrics: "pro_quota", "pro_budget", "flash_quota"
    reason: str  # words a user reads on the route


class Headroom:
    def __init__(self, settings: Settings, limiter: Limiter | None, budget_left: Callable[[str], float]) -> None:
        """`limiter`: None for the offline default (no quota); `budget_left(session)`: the money
        the session may still spend today under every budget."""
        self.settings = settings
        self.limiter = limiter
        self.budget_left = budget_left

    def quota_blocked(self, model: str, decision: str) -> Verdict | None:
        """None also when the counts cannot be read (Redis down): routing then falls back to
        the context rule alone rather than failing the answer."""
        limit = self.settings.limit_for(model)
        if self.limiter is None or not (limit.rpd or limit.rpm):
            return None  # no quota to run out of: no count to read (a round trip to Redis)
        margin = self.settings.headroom
        try:
            quota = self.limiter.quota(model)
        except StoreUnavailable:
            return None
        if limit.rpd and quota.requests_today >= limit.rpd * (1 - margin):
            left = max(0, limit.rpd - quota.requests_today)
            why = f"{model} has {left:,} of its {limit.rpd:,} requests left today"
            return Verdict(decision, why + pace(quota))
        in_flight = quota.requests_last_minute + quota.waiting
        if limit.rpm and in_flight >= limit.rpm * (1 - margin):
            return Verdict(decision, f"{model} is at {in_flight} of its {limit.rpm} requests this minute")
        return None

    def budget_blocked(
        self, session_id: str, estimated_usd: float, model: str, held_usd: float = 0.0
    ) -> Verdict | None:
        """Whether `model` at `estimated_usd` would pass a budget. `held_usd`: what the answer
        already holds for its answer call; `budget_left` counts it as spent, but this model's
        hold would replace it, so it is this model's to use (never more: the hold itself is
        still checked against every budget before anything is sent)."""
        try:
            left = self.budget_left(session_id) + held_usd
        except StoreUnavailable:
            return None  # the budget itself is enforced (or waived) by the hold, not here
        if estimated_usd > left:
            why = f"{model} would cost about {dollars(estimated_usd)}, more than the {dollars(left)} budget left"
            return Verdict("pro_budget", why)
        return None


def pace(quota: Quota) -> str:
    """The quota prediction in words, for a route that the daily quota decided: when, at the
    pace of the last minute, the rest of the day's requests would be gone (the same figure as
    /metrics' gemrag_quota_exhausted_in_seconds); nothing when there is no recent traffic."""
    if math.isinf(quota.exhausted_in_s):
        return ""
    seconds = round(quota.exhausted_in_s)
    when = f"{seconds} s" if seconds < 120 else f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"
    return f"; at the pace of the last minute ({quota.requests_last_minute} requests) they run out in {when}"
