"""The Gemini provider against the fake server through the real google-genai client:
what it sends on the wire and what it makes of the answers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.prompts import answer_prompt
from rag.providers import Embedder, Generator, get_embedder, get_generator
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, Fault, Reply, count_tokens, embed_text
from rag.types import Message, Prompt, estimate_tokens

FLASH = Settings().flash_model
EMBED = Settings().embedding_model


@pytest.fixture
def provider(gemini_settings: Settings) -> GeminiProvider:
    return GeminiProvider(gemini_settings)


def unit(vector: list[float]) -> np.ndarray:
    v = np.asarray(vector)
    return v / np.linalg.norm(v)


def test_settings_with_a_key_select_gemini(gemini_settings: Settings) -> None:
    provider = get_generator(gemini_settings)
    assert isinstance(provider, GeminiProvider) and isinstance(provider, Generator)
    assert isinstance(get_embedder(gemini_settings), GeminiProvider) and isinstance(provider, Embedder)
    assert provider.online and provider.embedding_id == "gemini:gemini-embedding-001:768"
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        GeminiProvider(gemini_settings.model_copy(update={"api_key": None}))


def test_generate_sends_the_prompt_as_gemini_expects(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    prompt = Prompt(
        contents=(Message("user", "first"), Message("model", "reply"), Message("user", "second")),
        system="Answer from the sources.",
        temperature=0.2,
        max_output_tokens=300,
        json_output=True,
    )
    provider.generate(prompt, model="gemini-3.1-pro-preview")
    (call,) = fake_gemini.requests
    assert call.path == "/v1/models/gemini-3.1-pro-preview:generateContent"
    assert call.headers["x-goog-api-key"] == TEST_API_KEY and "key" not in call.query
    assert call.body["contents"] == [
        {"role": "user", "parts": [{"text": "first"}]},
        {"role": "model", "parts": [{"text": "reply"}]},
        {"role": "user", "parts": [{"text": "second"}]},
    ]
    assert call.body["systemInstruction"]["parts"] == [{"text": "Answer from the sources."}]
    # Gemini 3: a thinking level instead of a temperature (Google advises leaving it unset).
    assert call.body["generationConfig"] == {
        "maxOutputTokens": 300,
        "responseMimeType": "application/json",
        "thinkingConfig": {"thinking_level": "HIGH"},
    }


def test_plain_prompt_sends_no_optional_config(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    provider.generate(Prompt.of("hi"))
    body = fake_gemini.requests[0].body
    assert "systemInstruction" not in body
    assert "responseMimeType" not in body.get("generationConfig", {})


def test_generate_reports_text_and_every_usage_field(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    fake_gemini.reply(Reply("The answer [1].", finish_reason="MAX_TOKENS", cached_tokens=7, thoughts_tokens=11))
    got = provider.generate(Prompt.of("What is it?", system="Be brief."))
    assert got.text == "The answer [1]."
    assert got.model == FLASH and got.finish_reason == "MAX_TOKENS"
    assert got.usage.prompt_tokens == count_tokens("Be brief.") + count_tokens("What is it?")
    assert got.usage.output_tokens == count_tokens("The answer [1].")
    assert (got.usage.cached_tokens, got.usage.thinking_tokens) == (7, 11)


def test_stream_yields_pieces_then_a_final_delta_with_cumulative_usage(
    provider: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    text = "Alpha beta gamma delta epsilon zeta eta theta iota kappa."
    fake_gemini.reply(Reply(text, thoughts_tokens=3))
    deltas = list(provider.stream(Prompt.of("Greek letters?")))
    assert len(deltas) == 4 and [d.final for d in deltas] == [False, False, False, True]
    assert "".join(d.text for d in deltas) == text
    final = deltas[-1]
    assert final.text == "" and final.model == FLASH
    assert (final.usage.output_tokens, final.usage.thinking_tokens) == (count_tokens(text), 3)
    assert final.usage.prompt_tokens == count_tokens("Greek letters?")
    assert fake_gemini.requests[0].query == {"alt": "sse"}


def test_count_tokens_asks_the_api_and_includes_the_system_text(
    provider: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    assert provider.count_tokens("hello, world") == 3
    assert provider.count_tokens(Prompt.of("hello, world", system="Be brief.")) == 6
    assert [r.method for r in fake_gemini.requests] == ["countTokens", "countTokens"]


def test_250_texts_go_in_batches_of_100_several_in_flight_in_order(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    fake_gemini.latency_s = 0.3  # long enough that concurrent batches visibly overlap
    provider = GeminiProvider(gemini_settings.model_copy(update={"embed_concurrency": 3}))
    texts = [f"document number {i} about topic {i % 7}" for i in range(250)]
    got = provider.embed_documents(texts)

    calls = fake_gemini.calls("batchEmbedContents")
    assert sorted(len(c.body["requests"]) for c in calls) == [50, 100, 100]
    assert max(c.at for c in calls) - min(c.at for c in calls) < 0.2  # all three sent before any answer
    first = calls[0].body["requests"][0]
    assert first["taskType"] == "RETRIEVAL_DOCUMENT" and first["outputDimensionality"] == 768
    assert first["model"] == "models/gemini-embedding-001"

    assert len(got.vectors) == 250 and got.model == EMBED
    for i in (0, 99, 100, 137, 249):  # each vector is its own text's, across batch boundaries
        assert np.allclose(got.vectors[i], unit(embed_text(texts[i], 768)), atol=1e-6)
    assert got.usage.prompt_tokens == sum(estimate_tokens(t) for t in texts)


def test_truncated_embeddings_are_normalised(provider: GeminiProvider) -> None:
    raw = np.linalg.norm(embed_text("quarterly revenue report", 768))
    assert raw < 0.95  # what the API returns at 768 dimensions is not unit length
    (vector,) = provider.embed_documents(["quarterly revenue report"]).vectors
    assert len(vector) == 768 and np.linalg.norm(vector) == pytest.approx(1.0)


def test_query_embedding_uses_the_query_task_and_finds_the_right_document(
    provider: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    docs = ["the cat sleeps on the warm mat", "interest rates rose in march", "how to bake sourdough bread"]
    doc_vectors = np.asarray(provider.embed_documents(docs).vectors)
    query = provider.embed_query("where does the cat sleep")
    assert fake_gemini.requests[-1].body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert int(np.argmax(doc_vectors @ np.asarray(query.vectors[0]))) == 0


def test_a_failed_batch_is_retried_without_disturbing_the_order(
    provider: GeminiProvider, fake_gemini: FakeGemini
) -> None:
    fake_gemini.inject(Fault.server_error(503), times=1, method="batchEmbedContents")
    texts = [f"text {i}" for i in range(230)]
    got = provider.embed_documents(texts)
    assert len(fake_gemini.calls("batchEmbedContents")) == 4
    assert all(np.allclose(got.vectors[i], unit(embed_text(texts[i], 768)), atol=1e-6) for i in range(230))


def test_no_texts_make_no_request(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    assert provider.embed_documents([]).vectors == []
    assert fake_gemini.requests == []


def test_output_dimensionality_follows_settings(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    provider = GeminiProvider(gemini_settings.model_copy(update={"embedding_dim": 3072}))
    (vector,) = provider.embed_query("full size").vectors
    assert len(vector) == 3072 and provider.embedding_id == "gemini:gemini-embedding-001:3072"
    assert fake_gemini.requests[0].body["requests"][0]["outputDimensionality"] == 3072


@pytest.mark.slow
def test_more_streams_than_httpx_default_pool_are_open_at_once(gemini_settings, fake_gemini):
    """A replica serving hundreds of answers holds one upstream stream for each: with httpx's
    default pool (100 connections) the 101st waited for an earlier answer to end."""
    hold_s = 8.0  # each stream stays open this long: time for all of them to connect, even on a loaded machine
    fake_gemini.ttft_s = hold_s
    provider = GeminiProvider(gemini_settings.model_copy(update={"request_timeout_s": 30.0, "deadline_s": 40.0}))
    streams = 110
    with ThreadPoolExecutor(streams) as pool:
        futures = [pool.submit(lambda: list(provider.stream(answer_prompt("q", []))))
                   for _ in range(streams)]
        deadline = time.monotonic() + hold_s
        peak = 0
        while time.monotonic() < deadline and peak < streams:
            peak = max(peak, fake_gemini.streams_open)
            time.sleep(0.02)
        for f in futures:
            f.result()
    assert peak == streams
