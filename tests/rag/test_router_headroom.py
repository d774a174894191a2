"""Load-adaptive routing through the chain, on the Gemini path against the fake server: Pro
gives way to Flash when its quota is nearly spent or the budget left would not cover it,
Flash gives way to Flash-Lite when its own quota runs low, each time with the reason on the
route; with room, the context rule decides as before."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag.catalogue import RateLimit
from rag.chain import Chain
from rag.headroom import Headroom
from rag.providers.gemini import GeminiProvider
from rag.ratelimit import RateLimiter
from rag.router import Router
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.tiny_corpus import build_store

LONG_QUESTION = "What should a client do after HTTP 429 RESOURCE_EXHAUSTED?"


def with_daily_limit(settings: Settings, model: str, rpd: int) -> Settings:
    rows = dict(settings.models)
    rows[model] = rows[model].model_copy(update={"limits": {"free": RateLimit(rpd=rpd)}})
    return settings.model_copy(update={"models": rows, "tier": "free"})


def chain_with(settings: Settings, limits: Settings, used: dict[str, int], budget_left: float = 100.0) -> Chain:
    """The chain answers without client-side limits; the router's headroom sees `limits` with
    `used[model]` requests already made today."""
    limiter = RateLimiter(limits)
    for model, n in used.items():
        for _ in range(n):
            limiter.acquire(model)
    provider = GeminiProvider(settings)
    budget: Callable[[str], float] = lambda session_id: budget_left  # noqa: E731
    router = Router(settings, provider, Headroom(limits, limiter, budget))
    return Chain(settings, provider, build_store(settings, provider), router=router)


@pytest.fixture
def escalating(gemini_settings: Settings) -> Settings:
    return gemini_settings.model_copy(update={"pro_threshold_tokens": 200})


def test_pro_near_its_daily_quota_keeps_the_answer_on_flash(escalating: Settings, fake_gemini: FakeGemini) -> None:
    pro, flash = escalating.pro_model, escalating.flash_model
    chain = chain_with(escalating, with_daily_limit(escalating, pro, 10), {pro: 9})
    record = chain.ask(LONG_QUESTION)
    assert (record.route.kind, record.route.model, record.route.decision) == ("flash", flash, "pro_quota")
    # The quota prediction names when the rest would run out at the last minute's pace: 1 / (9/min).
    assert (f"{pro} has 1 of its 10 requests left today; at the pace of the last minute (9 requests) "
            "they run out in 7 s, so Pro was not used") in record.route.reason
    assert [c.model for c in fake_gemini.calls("streamGenerateContent")] == [flash]
    chain.ask(LONG_QUESTION)  # an answer shaped by a momentary quota is not cached for others
    assert len(fake_gemini.calls("streamGenerateContent")) == 2


def test_pro_with_room_is_still_chosen_for_a_long_context(escalating: Settings, fake_gemini: FakeGemini) -> None:
    pro = escalating.pro_model
    record = chain_with(escalating, with_daily_limit(escalating, pro, 10), {pro: 3}).ask(LONG_QUESTION)
    assert (record.route.kind, record.route.model, record.route.decision) == ("pro", pro, "")


def test_a_budget_that_would_not_cover_pro_keeps_the_answer_on_flash(
    escalating: Settings, fake_gemini: FakeGemini
) -> None:
    chain = chain_with(escalating, escalating, {}, budget_left=0.00001)
    record = chain.ask(LONG_QUESTION)
    assert (record.route.kind, record.route.decision) == ("flash", "pro_budget")
    assert "budget left, so Pro was not used" in record.route.reason


def test_flash_near_its_quota_moves_the_answer_to_flash_lite(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    flash, lite = gemini_settings.flash_model, gemini_settings.lite_model
    chain = chain_with(gemini_settings, with_daily_limit(gemini_settings, flash, 20), {flash: 19})
    record = chain.ask("How many days of paid vacation do employees get?")
    assert (record.route.model, record.route.decision) == (lite, "flash_quota")
    assert "moved to Flash-Lite" in record.route.reason
    assert [c.model for c in fake_gemini.calls("streamGenerateContent")] == [lite]
