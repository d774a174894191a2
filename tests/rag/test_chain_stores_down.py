"""The chain with its cache and ledger store down (issue #14, item 4): refused with the reason
before any model call, unless `answer_without_stores` allows answering unrecorded."""

from __future__ import annotations

import socket

import pytest

from rag.chain import Chain
from rag.kv import StoreUnavailable
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.tiny_corpus import build_store


def dead_redis() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


@pytest.fixture
def down(gemini_settings: Settings) -> Settings:
    return gemini_settings.model_copy(update={"redis_url": dead_redis()})


def chain_over(settings: Settings) -> Chain:
    from rag.providers.gemini import GeminiProvider

    provider = GeminiProvider(settings)
    store = build_store(settings.model_copy(update={"redis_url": None}), provider)
    return Chain(settings, provider, store)


def test_a_question_is_refused_with_the_reason_and_nothing_is_sent(down: Settings, fake_gemini: FakeGemini) -> None:
    chain = chain_over(down)
    fake_gemini.clear_log()
    with pytest.raises(StoreUnavailable, match=r"Not answered: Cannot use Redis at 127\.0\.0\.1") as refused:
        chain.ask("How many days of paid vacation do employees get?")
    assert "GEMRAG_ANSWER_WITHOUT_STORES=true" in str(refused.value)
    assert fake_gemini.requests == []  # not even the query embedding


def test_with_answer_without_stores_the_answer_comes_uncached(down: Settings, fake_gemini: FakeGemini) -> None:
    chain = chain_over(down.model_copy(update={"answer_without_stores": True}))
    fake_gemini.reply("25 days [1].")
    record = chain.ask("How many days of paid vacation do employees get?")
    assert record.answer == "25 days [1]." and not record.cached
    with pytest.raises(StoreUnavailable):
        chain.ledger.check()  # and whoever shows costs can tell they are not recorded
