"""The fake server itself: what it answers must be what the real API would, or every
Gemini test above it proves nothing."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest
from google import genai
from google.genai import errors, types

from rag.settings import Settings
from rag.testing.fake_gemini import FULL_DIM, FakeGemini, Fault, Reply, count_tokens, embed_text

FLASH = "gemini-3.8-flash"


@pytest.fixture
def client(fake_gemini: FakeGemini) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake_gemini.url, timeout=3000))


def test_generate_answers_from_the_prompt_with_usage(client: genai.Client, fake_gemini: FakeGemini) -> None:
    prompt = "Sources:\n[1] guide.md\nThe sky is blue. It has clouds.\n\nQuestion: what colour is the sky?"
    response = client.models.generate_content(model=FLASH, contents=prompt)
    assert response.text == "The sky is blue. [1]"
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == count_tokens(prompt) == 25
    assert response.usage_metadata.candidates_token_count == count_tokens(response.text) == 8
    (call,) = fake_gemini.calls("generateContent")
    assert call.path == "/v1/models/gemini-3.8-flash:generateContent"
    assert call.headers["x-goog-api-key"] == "k"
    assert call.body["contents"][0]["parts"][0]["text"] == prompt


def test_stream_is_chunked_sse_with_finish_reason_only_at_the_end(
    client: genai.Client, fake_gemini: FakeGemini
) -> None:
    fake_gemini.reply(Reply("one two three four five six seven eight nine", thoughts_tokens=5))
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="count"))
    assert [c.text for c in chunks] == ["one two three four ", "five six seven eight ", "nine"]
    assert [c.candidates[0].finish_reason for c in chunks][:-1] == [None, None]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 9
    assert chunks[-1].usage_metadata.thoughts_token_count == 5
    assert fake_gemini.calls("streamGenerateContent")[0].query == {"alt": "sse"}


def test_embeddings_are_truncated_unnormalised_and_carry_meaning(client: genai.Client) -> None:
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew in europe"]
    config = types.EmbedContentConfig(output_dimensionality=768, task_type="RETRIEVAL_DOCUMENT")
    got = client.models.embed_content(model="gemini-embedding-001", contents=texts, config=config)
    vecs = np.array([e.values for e in got.embeddings])
    assert vecs.shape == (3, 768)
    assert np.linalg.norm(vecs[0]) < 0.99  # truncated like the real API: not unit length
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > 0.5 > unit[0] @ unit[2]
    assert np.linalg.norm(embed_text(texts[0])) == pytest.approx(1.0)
    assert len(embed_text(texts[0])) == FULL_DIM


def test_count_tokens(client: genai.Client) -> None:
    assert client.models.count_tokens(model=FLASH, contents="hello, world").total_tokens == 3


def test_injected_faults_hit_only_matching_requests(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.inject(Fault.rate_limited("7s"), times=2, method="generateContent")
    client.models.count_tokens(model=FLASH, contents="x")
    for _ in range(2):
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model=FLASH, contents="x")
        assert caught.value.code == 429
        assert caught.value.details["error"]["details"][0]["retryDelay"] == "7s"
    assert client.models.generate_content(model=FLASH, contents="x").text
    assert [r.status for r in fake_gemini.requests] == [200, 429, 429, 200]


def test_simulated_rate_limit_answers_429_beyond_rpm(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.rate_limit(3, model=FLASH)
    for _ in range(3):
        client.models.generate_content(model=FLASH, contents="x")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=FLASH, contents="x")
    delay = caught.value.details["error"]["details"][0]["retryDelay"]
    assert 55 < float(delay.rstrip("s")) <= 60
    client.models.count_tokens(model="gemini-3.1-pro-preview", contents="other models are not limited")


def test_fault_rate_is_seeded_and_roughly_right(fake_gemini: FakeGemini, gemini_settings: Settings) -> None:
    fake_gemini.fault_rate(0.1, seed=7, method="batchEmbedContents")
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=gemini_settings.base_url))
    failures = 0
    for _ in range(100):
        try:
            client.models.embed_content(model="gemini-embedding-001", contents=["x"])
        except errors.APIError as exc:
            assert exc.code in (429, 503)
            failures += 1
    assert 4 <= failures <= 18


def test_cut_stream_drops_the_connection_after_k_chunks(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.reply("one two three four five six seven eight nine")
    fake_gemini.inject(Fault.cut_stream(1))
    got = []
    with pytest.raises(Exception, match="incomplete chunked read"):
        got.extend(c.text for c in client.models.generate_content_stream(model=FLASH, contents="x"))
    assert got == ["one two three four "]


def test_v1beta_and_single_embed_content_are_served(fake_gemini: FakeGemini) -> None:
    beta = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake_gemini.url, api_version="v1beta"))
    assert beta.models.count_tokens(model=FLASH, contents="a b").total_tokens == 2
    body = {"content": {"parts": [{"text": "solo text"}]}, "outputDimensionality": 16}
    got = httpx.post(f"{fake_gemini.url}/v1beta/models/gemini-embedding-001:embedContent", json=body).json()
    assert got == {"embedding": {"values": embed_text("solo text", 16)}}
    missing = httpx.post(f"{fake_gemini.url}/v1/models/x:nonsense", json={})
    assert missing.status_code == 404
    assert fake_gemini.requests[0].path == "/v1beta/models/gemini-3.8-flash:countTokens"


def test_async_clients_are_served_too(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.reply("async one", "async two three four five")

    async def run() -> tuple[str, str]:
        one = await client.aio.models.generate_content(model=FLASH, contents="x")
        pieces = [c.text async for c in await client.aio.models.generate_content_stream(model=FLASH, contents="y")]
        return one.text or "", "".join(p or "" for p in pieces)

    assert asyncio.run(run()) == ("async one", "async two three four five")


def test_latency_knobs_pace_the_stream(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.ttft_s, fake_gemini.tokens_per_s = 0.2, 40.0
    fake_gemini.reply("w " * 8)  # 8 tokens in 2 chunks: 0.1 s each at 40 tokens/s
    started = time.monotonic()
    stream = client.models.generate_content_stream(model=FLASH, contents="x")
    next(stream)
    first = time.monotonic() - started
    list(stream)
    assert first >= 0.3  # time to first token + the first chunk's tokens
    assert time.monotonic() - started >= 0.4


def test_models_list_is_paged_and_names_each_models_methods(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.list_page_size = 3
    models = {(m.name or "").removeprefix("models/"): m for m in client.models.list()}
    assert FLASH in models and "gemini-embedding-001" in models
    assert "gemini-2.5-flash" not in models  # shut down: not listed
    assert "generateContent" in (models[FLASH].supported_actions or [])
    assert "batchEmbedContents" in (models["gemini-embedding-001"].supported_actions or [])
    pages = fake_gemini.calls("list")
    assert len(pages) == -(-len(models) // 3) and pages[1].query["pageToken"] == "3"


def test_a_shut_down_model_answers_404_not_found(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.retire(FLASH)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=FLASH, contents="hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND" and FLASH in str(caught.value.message)
    assert FLASH not in {(m.name or "").removeprefix("models/") for m in client.models.list()}


def test_a_rerouted_request_names_the_model_that_served_it(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.serve_as(FLASH, "gemini-3.5-flash-lite")
    assert client.models.generate_content(model=FLASH, contents="hi").model_version == "gemini-3.5-flash-lite"
    stream = client.models.generate_content_stream(model=FLASH, contents="hi")
    assert {chunk.model_version for chunk in stream} == {"gemini-3.5-flash-lite"}


def test_thinking_is_checked_as_the_api_does(client: genai.Client, fake_gemini: FakeGemini) -> None:
    def ask(model: str, **thinking: object) -> types.GenerateContentResponse:
        config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**thinking))
        return client.models.generate_content(model=model, contents="hi", config=config)

    assert ask(FLASH, thinking_level="HIGH").usage_metadata.thoughts_token_count > ask(
        FLASH, thinking_level="LOW"
    ).usage_metadata.thoughts_token_count
    for model, thinking in [
        (FLASH, {"thinking_level": "LOW", "thinking_budget": 512}),  # both controls
        (FLASH, {"thinking_level": "MINIMAL"}),  # 3.8 Flash has no minimal
        (FLASH, {"thinking_budget": 512}),  # Gemini 3 takes a level
        ("gemini-2.5-flash-lite", {"thinking_level": "LOW"}),  # 2.5 takes a budget
    ]:
        with pytest.raises(errors.ClientError) as caught:
            ask(model, **thinking)
        assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"


def test_implicit_cache_reports_a_shared_prefix(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.implicit_cache(min_tokens=8)
    shared = "one two three four five six seven eight nine ten "
    first = client.models.generate_content(model=FLASH, contents=shared + "alpha")
    second = client.models.generate_content(model=FLASH, contents=shared + "beta")
    short = client.models.generate_content(model=FLASH, contents="one two three different")
    assert first.usage_metadata.cached_content_token_count is None
    assert second.usage_metadata.cached_content_token_count == count_tokens(shared)
    assert short.usage_metadata.cached_content_token_count is None  # 3 shared tokens: under the minimum


def test_a_key_that_may_not_list_models_gets_403(client: genai.Client, fake_gemini: FakeGemini) -> None:
    fake_gemini.inject(Fault.key_cannot_list(), method="list")
    with pytest.raises(errors.ClientError) as caught:
        list(client.models.list())
    assert caught.value.code == 403 and caught.value.status == "PERMISSION_DENIED"


def _document(words: int) -> str:
    return "Sources:\n[1] manual.md\nThe press runs at 40 strokes a minute. " + "More detail. " * words


def _cache_config(words: int, **config: object) -> types.CreateCachedContentConfig:
    document = _document(words)
    contents = [types.Content(role="user", parts=[types.Part(text=document)]),
                types.Content(role="model", parts=[types.Part(text="Read.")])]
    return types.CreateCachedContentConfig(contents=contents, system_instruction="Answer from the sources.",
                                           **config)  # type: ignore[arg-type]


def test_cached_contents_are_created_read_used_and_deleted_as_the_sdk_calls_them(
    client: genai.Client, fake_gemini: FakeGemini
) -> None:
    created = client.caches.create(model=FLASH, config=_cache_config(2_000, ttl="600s"))
    assert created.name is not None and created.name.startswith("cachedContents/")
    tokens = count_tokens("Answer from the sources.") + count_tokens(_document(2_000)) + count_tokens("Read.")
    assert created.usage_metadata is not None and created.usage_metadata.total_token_count == tokens
    assert created.expire_time is not None and created.create_time is not None
    assert (created.expire_time - created.create_time).total_seconds() == pytest.approx(600)
    assert client.caches.get(name=created.name).model == f"models/{FLASH}"
    question = "Question: how fast does the press run?"
    response = client.models.generate_content(model=FLASH, contents=question,
                                              config=types.GenerateContentConfig(cached_content=created.name))
    assert response.text == "The press runs at 40 strokes a minute. [1]"  # answered over the cached turns
    usage = response.usage_metadata
    assert usage is not None
    assert usage.cached_content_token_count == tokens
    assert usage.prompt_token_count == tokens + count_tokens(question)
    client.caches.delete(name=created.name)
    with pytest.raises(errors.ClientError) as gone:
        client.caches.get(name=created.name)
    assert gone.value.code == 403
    assert [(c.method, c.path.removeprefix("/v1/")) for c in fake_gemini.requests] == [
        ("createCachedContent", "cachedContents"),
        ("getCachedContent", created.name),
        ("generateContent", f"models/{FLASH}:generateContent"),
        ("deleteCachedContent", created.name),
        ("getCachedContent", created.name),
    ]


def test_cached_contents_refuse_what_the_api_refuses(client: genai.Client, fake_gemini: FakeGemini) -> None:
    with pytest.raises(errors.ClientError, match="too small"):
        client.caches.create(model=FLASH, config=_cache_config(10))  # 4,096 tokens at least
    cached = client.caches.create(model=FLASH, config=_cache_config(2_000))
    with pytest.raises(errors.ClientError, match="system_instruction"):
        client.models.generate_content(model=FLASH, contents="Question?", config=types.GenerateContentConfig(
            cached_content=cached.name, system_instruction="again"))
    with pytest.raises(errors.ClientError, match="has to be the same"):
        client.models.generate_content(model="gemini-3.1-pro-preview", contents="Question?",
                                       config=types.GenerateContentConfig(cached_content=cached.name))


def test_cached_contents_expire_at_their_ttl_on_the_fakes_clock(client: genai.Client, fake_gemini: FakeGemini) -> None:
    now = [1_767_268_800.0]
    fake_gemini.clock = lambda: now[0]
    cached = client.caches.create(model=FLASH, config=_cache_config(2_000, ttl="60s"))
    assert list(fake_gemini.caches) == [cached.name]
    now[0] += 61
    assert fake_gemini.caches == {}
    with pytest.raises(errors.ClientError) as expired:
        client.models.generate_content(model=FLASH, contents="Question?",
                                       config=types.GenerateContentConfig(cached_content=cached.name))
    assert expired.value.code == 403
