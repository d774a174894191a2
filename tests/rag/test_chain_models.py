"""The chain on the current Gemini lineup, end to end against the fake server: the served
model is charged, implicit-cache tokens are billed at the cached price, cheap steps run on
Flash-Lite, retired models are replaced with a note on the route, a preview Pro is labelled."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from rag.chain import Chain
from rag.cli import describe
from rag.costs import price_call
from rag.lifecycle import check_models
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from rag.types import Message
from tests.fakes.tiny_corpus import build_store

QUESTION = "How many days of paid vacation do employees get?"


def chain_for(settings: Settings) -> Chain:
    provider = GeminiProvider(settings)
    return Chain(settings, provider, build_store(settings, provider))


@pytest.fixture
def uncached(gemini_settings: Settings) -> Settings:
    """Every question reaches the model: the answer cache would hide the implicit cache."""
    return gemini_settings.model_copy(update={"answer_cache": False})


def test_a_rerouted_answer_is_named_and_charged_as_the_model_that_served_it(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    flash, lite = gemini_settings.flash_model, gemini_settings.lite_model
    fake_gemini.serve_as(flash, lite)
    chain = chain_for(gemini_settings)
    record = chain.ask(QUESTION, session_id="s")
    assert [c.model for c in fake_gemini.calls("streamGenerateContent")] == [flash]  # asked for Flash...
    assert record.route.model == lite  # ...and told who answered
    assert f"{flash} was asked, {lite} answered" in record.route.reason
    charged = chain.ledger.models("s")
    assert flash not in charged
    day, usage = datetime.now(UTC).date(), charged[lite].usage
    assert charged[lite].cost_usd == pytest.approx(price_call(gemini_settings, lite, usage, day).cost_usd)
    assert charged[lite].cost_usd != pytest.approx(price_call(gemini_settings, flash, usage, day).cost_usd)


def test_implicit_cache_tokens_are_billed_at_the_cached_price_and_the_saving_shown(
    uncached: Settings, fake_gemini: FakeGemini
) -> None:
    fake_gemini.implicit_cache(min_tokens=50)
    chain = chain_for(uncached)
    first = chain.ask(QUESTION, session_id="s")
    second = chain.ask(QUESTION, session_id="s")  # same sources, same prompt: its prefix is cached
    assert first.usage.cached_tokens == 0 and first.cache_saved_usd == 0
    answer = second.usage
    assert answer.cached_tokens > 50
    row = uncached.models[second.route.model]
    price = row.price_on(datetime.now(UTC).date())
    assert price.cached_input is not None and price.cached_input < price.input
    saving = answer.cached_tokens * (price.input - price.cached_input) / 1e6
    assert second.cache_saved_usd == pytest.approx(saving)
    uncached_price = price_call(uncached, second.route.model, replace(answer, cached_tokens=0)).cost_usd
    assert second.cost_usd == pytest.approx(uncached_price - saving, rel=1e-9)  # the query embedding is cached
    assert chain.ledger.session("s").cache_saved_usd == pytest.approx(saving)
    text = describe(second)
    assert f"({answer.cached_tokens:,} cached)" in text and f"implicit cache saved ${saving:.6f}" in text


def test_a_follow_up_keeps_the_cached_prefix_as_the_conversation_grows(
    uncached: Settings, fake_gemini: FakeGemini
) -> None:
    """Sources come before the history: a follow-up on the same passages reuses the prefix."""
    fake_gemini.implicit_cache(min_tokens=50)
    chain = chain_for(uncached)
    first = chain.ask(QUESTION)
    fake_gemini.reply(QUESTION)  # the rewrite: the follow-up stands for the same question
    history = [Message("user", QUESTION), Message("model", first.answer)]
    follow = chain.ask("And how many is that again?", history=history)
    answer_calls = fake_gemini.calls("streamGenerateContent")
    assert follow.usage.cached_tokens > 50 and answer_calls[-1].body["contents"][1]["role"] == "model"


def test_rewrite_runs_on_flash_lite_with_minimal_thinking_and_answers_think_low(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    chain = chain_for(gemini_settings)
    fake_gemini.reply(QUESTION)
    record = chain.ask("And how many days?", history=[Message("user", "Tell me about vacation"),
                                                      Message("model", "Employees get vacation [1].")], session_id="s")
    rewrite = fake_gemini.calls("generateContent")[-1]
    answer = fake_gemini.calls("streamGenerateContent")[-1]
    assert rewrite.model == gemini_settings.lite_model
    assert rewrite.body["generationConfig"]["thinkingConfig"] == {"thinking_level": "MINIMAL"}
    assert answer.body["generationConfig"]["thinkingConfig"] == {"thinking_level": "LOW"}
    assert set(chain.ledger.models("s")) >= {gemini_settings.lite_model, gemini_settings.flash_model}
    assert record.usage.thinking_tokens > 0 and "thinking tokens" in describe(record)


def test_a_retired_model_is_replaced_and_every_route_says_so(gemini_settings: Settings, fake_gemini) -> None:
    configured = gemini_settings.model_copy(update={"flash_model": "gemini-2.5-flash"})
    checked = check_models(configured, GeminiProvider(configured).list_models).settings
    record = chain_for(checked).ask(QUESTION)
    assert record.route.model == "gemini-3.5-flash-lite"
    assert "gemini-2.5-flash is retired since 2026-12-01; gemini-3.5-flash-lite answered" in record.route.reason
    assert "gemini-2.5-flash" not in {c.model for c in fake_gemini.requests}


def test_a_preview_pro_is_allowed_and_labelled(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    settings = gemini_settings.model_copy(update={"pro_threshold_tokens": 10})  # every prompt escalates
    record = chain_for(settings).ask(QUESTION)
    assert record.route.kind == "pro" and record.route.model == settings.pro_model
    assert f"escalated to {settings.pro_model} (preview)" in record.route.reason
    call = fake_gemini.calls("streamGenerateContent")[-1]
    assert call.body["generationConfig"]["thinkingConfig"] == {"thinking_level": "HIGH"}
