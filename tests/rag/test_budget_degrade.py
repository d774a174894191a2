"""`on_budget_spent = "degrade"` against the fake Gemini server: a question the budget would
refuse is answered by Flash-Lite if that fits, else from the cache, else refused; and nothing is
ever sent that the budget does not cover."""

from __future__ import annotations

import pytest

from rag.chain import Chain
from rag.errors import BudgetExceeded
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.store import Store
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.tiny_corpus import build_store

QUESTION = "How many days of paid vacation do employees get?"


def chain_with(settings: Settings, store: Store | None = None, **update: object) -> Chain:
    configured = settings.model_copy(update=update)
    provider = GeminiProvider(configured)
    return Chain(configured, provider, store or build_store(configured, provider))


def test_a_flash_answer_over_budget_is_answered_by_flash_lite(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    # A worst-case answer (4,096 output tokens) is estimated near $0.017 on Flash, $0.011 on Flash-Lite.
    chain = chain_with(gemini_settings, session_budget_usd=0.0125, on_budget_spent="degrade")
    record = chain.ask(QUESTION, session_id="s1")
    lite = gemini_settings.lite_model
    assert (record.route.kind, record.route.model, record.route.decision) == ("degraded", lite, "budget_degraded")
    assert "session budget" in record.route.reason and f"answered by {lite}" in record.route.reason
    assert [c.model for c in fake_gemini.calls("streamGenerateContent")] == [lite]
    assert chain.ledger.session("s1").cost_usd <= 0.0125


def test_with_nothing_affordable_an_earlier_answer_comes_from_the_cache(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    rich = chain_with(gemini_settings)
    first = rich.ask(QUESTION, session_id="rich")
    fake_gemini.clear_log()
    poor = chain_with(gemini_settings, rich.stores.get(None), session_budget_usd=0.00001, on_budget_spent="degrade")
    record = poor.ask(QUESTION, session_id="poor")
    assert record.answer == first.answer and record.cached and record.route.decision == "budget_degraded"
    assert "from the cache" in record.route.reason
    assert fake_gemini.calls("streamGenerateContent") == []
    assert poor.ledger.session("poor").cost_usd == 0 and poor.ledger.session("poor").cache_hits == 1

    with pytest.raises(BudgetExceeded):  # nothing cached for this one: refused, nothing sent
        poor.ask("Where is the office badge collected?", session_id="poor")
    assert fake_gemini.calls("streamGenerateContent") == []


def test_refuse_is_the_default(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    with pytest.raises(BudgetExceeded):
        chain_with(gemini_settings, session_budget_usd=0.01).ask(QUESTION, session_id="s1")
    assert fake_gemini.calls("streamGenerateContent") == []
