"""Budgets refuse a request before the call, with a message saying what to do, and charge nothing."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from rag.budget import Budget
from rag.costs import Ledger
from rag.errors import BudgetExceeded
from rag.settings import Settings
from rag.types import Usage
from tests.fakes.clock import ManualClock


def _setup(settings: Settings, clock: ManualClock, **limits: float) -> tuple[Budget, Ledger]:
    limited = settings.model_copy(update=limits)
    ledger = Ledger(limited, clock=clock)
    return Budget(limited, ledger), ledger


def test_a_request_that_would_pass_the_session_budget_is_refused_and_nothing_recorded(
    store_settings: Settings, clock: ManualClock
) -> None:
    budget, ledger = _setup(store_settings, clock, session_budget_usd=0.01)
    ledger.record("s1", "gemini-3.8-flash", Usage(prompt_tokens=20_000), "answer", 0.008)
    budget.check("s1", 0.002)  # exactly at the limit is allowed
    before = ledger.session("s1")

    with pytest.raises(BudgetExceeded) as refused:
        budget.check("s1", 0.0025)

    message = str(refused.value)
    assert "session budget" in message
    assert "$0.0080" in message and "$0.0100 limit" in message and "$0.0025" in message
    assert "GEMRAG_SESSION_BUDGET_USD" in message and "session_budget_usd in gemrag.toml" in message
    assert ledger.session("s1") == before
    assert ledger.total().calls == 1
    budget.check("s2", 0.0025)  # another session has its own budget


@pytest.mark.parametrize(("limit", "shown"), [(0.0005, "$0.000500"), (0.005, "$0.0050"), (0.0, "$0.0000")])
def test_a_refusal_shows_the_limit_set_and_suggests_one_the_request_would_pass(
    store_settings: Settings, clock: ManualClock, limit: float, shown: str
) -> None:
    """Before: a $0.0005 (or $0) limit read "$0.00", $0.005 "$0.01", and the suggestion was
    twice the limit: $0.001 for an $0.018 request, 0 for a limit of 0."""
    budget, ledger = _setup(store_settings, clock, session_budget_usd=limit)
    ledger.record("s1", "gemini-3.8-flash", Usage(prompt_tokens=100), "answer", min(limit, 0.0004))

    with pytest.raises(BudgetExceeded) as refused:
        budget.check("s1", 0.018)

    message = str(refused.value)
    assert f"of its {shown} limit" in message
    suggested = re.search(r"GEMRAG_SESSION_BUDGET_USD=([\d.]+)\)", message)
    assert suggested is not None and suggested[1] == "0.02"  # spent and request covered, rounded up
    Budget(budget.settings.model_copy(update={"session_budget_usd": float(suggested[1])}), ledger).check("s1", 0.018)


def test_the_daily_budget_spans_sessions_and_resets_the_next_utc_day(
    store_settings: Settings, clock: ManualClock
) -> None:
    budget, ledger = _setup(store_settings, clock, session_budget_usd=1.0, daily_budget_usd=0.05)
    for session_id in ("a", "b", "c", "d"):
        ledger.record(session_id, "gemini-3.1-pro-preview", Usage(prompt_tokens=10_000), "answer", 0.012)

    refused = r"daily budget.*\$0\.0480 of its \$0\.0500 limit.*GEMRAG_DAILY_BUDGET_USD"
    with pytest.raises(BudgetExceeded, match=refused):
        budget.check("e", 0.005)
    assert budget.remaining_usd("e") == pytest.approx(0.002)

    clock.advance(24 * 3600)
    budget.check("e", 0.005)
    assert budget.remaining_usd("e") == pytest.approx(0.05)


def test_free_calls_pass_even_with_a_zero_budget(store_settings: Settings, clock: ManualClock) -> None:
    budget, _ = _setup(store_settings, clock, session_budget_usd=0.0, daily_budget_usd=0.0)
    budget.check("offline", 0.0)
    with pytest.raises(BudgetExceeded):
        budget.check("offline", 0.000_001)


def test_an_answer_with_images_is_held_for_its_images_too(store_settings: Settings, clock: ManualClock) -> None:
    """Before, the answer's hold counted the prompt's text only: a question with images of a
    page passed a budget its images could exceed. Each image is held at `IMAGE_TOKENS`."""
    from rag.answer import Route
    from rag.costs import price_usd
    from rag.router import Routed
    from rag.types import IMAGE_TOKENS, Attachment, Message, Prompt

    budget, _ = _setup(store_settings, clock)
    prompt = Prompt((Message("user", "What does this chart show?"),), max_output_tokens=100)
    image = Attachment("image/png", b"\x89PNG")
    route = Route("flash", store_settings.flash_model, "a short question")
    text_only = budget.answer_usd(Routed(prompt, route))
    with_images = budget.answer_usd(Routed(replace(prompt, images=(image, image)), route))

    assert with_images - text_only == pytest.approx(
        price_usd(store_settings, route.model, Usage(prompt_tokens=2 * IMAGE_TOKENS)))
