"""Thinking control and the served model through our provider, against the fake server."""

from __future__ import annotations

import pytest

from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from rag.types import AnswerTask, JudgeTask, Prompt, RerankTask, RewriteTask, Task

TASKS: dict[str, Task | None] = {
    "answer": AnswerTask("hi"),
    "rewrite": RewriteTask("hi", ()),
    "judge": JudgeTask("hi"),
    "rerank": RerankTask(),
    "plain": None,
}


@pytest.fixture
def provider(gemini_settings: Settings) -> GeminiProvider:
    return GeminiProvider(gemini_settings)


def _sent_thinking(fake: FakeGemini) -> dict:
    return fake.requests[-1].body["generationConfig"].get("thinkingConfig") or {}


def test_no_request_ever_carries_both_thinking_controls(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    """Every generative catalogue model, every kind of call: one control, never both, and
    never one the model refuses (the fake answers 400 to both, as the API does)."""
    models = provider.settings.models
    live = [name for name, row in models.items() if row.generative and name not in fake_gemini.retired]
    for model in live:
        for task in TASKS:
            provider.generate(Prompt.of("hi", task=TASKS[task], temperature=0.0), model=model)
            sent = _sent_thinking(fake_gemini)
            assert len(sent) == 1, (model, task, sent)
    assert all(r.status == 200 for r in fake_gemini.requests)


def test_levels_follow_the_settings_and_round_up_to_what_the_model_takes(
    provider: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    s = provider.settings
    cases = [
        (s.flash_model, "answer", "LOW"),  # thinking_flash = low
        (s.pro_model, "answer", "HIGH"),  # thinking_pro = high
        (s.lite_model, "rewrite", "MINIMAL"),  # thinking_lite = minimal, which 3.5 Flash-Lite takes
        (s.flash_model, "judge", "LOW"),  # minimal asked, 3.8 Flash's lowest is low
    ]
    for model, task, level in cases:
        provider.generate(Prompt.of("hi", task=TASKS[task]), model=model)
        assert _sent_thinking(fake_gemini) == {"thinking_level": level}, (model, task)


def test_a_budget_model_gets_a_budget_and_keeps_its_temperature(
    provider: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    provider.generate(Prompt.of("hi", task=TASKS["rewrite"], temperature=0.0), model="gemini-2.5-flash-lite")
    config = fake_gemini.requests[-1].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinking_budget": 0} and config["temperature"] == 0.0


def test_thinking_tokens_and_the_served_model_come_back(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    lite = provider.settings.lite_model
    fake_gemini.serve_as(provider.flash_model, lite)
    generation = provider.generate(Prompt.of("hi", task=TASKS["answer"]))
    assert generation.model == lite and generation.usage.thinking_tokens > 0
    *_, final = provider.stream(Prompt.of("hi", task=TASKS["answer"]))
    assert final.final and final.model == lite and final.usage.thinking_tokens > 0
