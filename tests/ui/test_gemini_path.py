"""The UI over the Gemini path, against the fake Gemini server: the route, tokens and errors
a user sees, and the key never in anything sent to the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag.chain import Chain
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini, Fault
from tests.conftest import TEST_API_KEY
from tests.ui.conftest import write_corpus
from ui import render
from ui.handlers import Handlers
from ui.session import SessionState

QUESTION = "Where is the office badge collected?"


@pytest.fixture
def handlers(gemini_settings: Settings, tmp_path: Path) -> Handlers:
    provider = GeminiProvider(gemini_settings)
    assert ingest_paths([write_corpus(tmp_path / "corpus")], gemini_settings, provider).exit_code == 0
    return Handlers(gemini_settings, Chain(gemini_settings, provider))


def test_a_gemini_answer_shows_flash_its_tokens_and_its_sources(handlers: Handlers, fake_gemini: FakeGemini) -> None:
    state = SessionState()
    *_, final = handlers.respond(QUESTION, state, "corpus", "hybrid", 4, "")
    chat, _, details, sources, _, _, totals = final
    assert "gemini-3.8-flash · Flash" in chat[-1]["content"]
    assert "data-route='flash'" in details and "onboarding.pdf" in sources
    record = state.turns[0].record
    assert record is not None and record.usage.total_tokens > 0 and record.cost_usd > 0
    assert f"<b>{record.usage.total_tokens:,}</b>" in totals and f"<b>{render.usd(record.cost_usd)}</b>" in totals
    assert render.usd(record.cost_usd) in chat[-1]["content"]
    assert len(fake_gemini.calls("streamGenerateContent")) == 1
    assert TEST_API_KEY not in str(final)


def test_a_forced_model_goes_to_that_model(handlers: Handlers, fake_gemini: FakeGemini) -> None:
    *_, final = handlers.respond(QUESTION, SessionState(), "corpus", "hybrid", 4, "gemini-3.1-pro-preview")
    footer = final[0][-1]["content"]
    assert "gemini-3.1-pro-preview · your choice" in footer and "Flash" not in footer
    assert [c.model for c in fake_gemini.calls("streamGenerateContent")] == ["gemini-3.1-pro-preview"]


def test_quota_and_key_errors_read_as_messages_in_the_chat(handlers: Handlers, fake_gemini: FakeGemini) -> None:
    state = SessionState()
    fake_gemini.inject(Fault.rate_limited("0s"), times=None, method="streamGenerateContent")
    *_, final = handlers.respond(QUESTION, state, "corpus", "hybrid", 4, "")
    message = final[0][-1]["content"]
    assert message.startswith("⚠️") and "gemini-3.8-flash" in message and "Traceback" not in message
    fake_gemini.clear_faults()
    fake_gemini.inject(Fault.invalid_key(), times=None, method="streamGenerateContent")
    *_, final = handlers.respond(QUESTION, state, "corpus", "hybrid", 4, "")
    message = final[0][-1]["content"]
    assert "GEMINI_API_KEY" in message and TEST_API_KEY not in message
    assert state.history() == []


def test_a_spent_budget_is_refused_in_the_chat_before_any_model_call(
    gemini_settings: Settings, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    settings = gemini_settings.model_copy(update={"session_budget_usd": 0.000001})
    provider = GeminiProvider(settings)
    assert ingest_paths([write_corpus(tmp_path / "corpus")], settings, provider).exit_code == 0
    handlers = Handlers(settings, Chain(settings, provider))
    fake_gemini.clear_log()
    *_, final = handlers.respond(QUESTION, SessionState(), "corpus", "hybrid", 4, "")
    message = final[0][-1]["content"]
    assert message.startswith("⚠️ Refused before calling the model: the session budget would be exceeded")
    assert "GEMRAG_SESSION_BUDGET_USD" in message and fake_gemini.requests == []
    assert "<b>$0.0000</b>" in final[-1]  # nothing was charged
