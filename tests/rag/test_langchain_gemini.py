"""The LangChain wrappers from GeminiProvider (the plain-LangChain baseline) against the fake
server: configured with our base URL, key, timeout and a single attempt."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.exceptions import ModelRateLimitError

from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, Fault, Reply, count_tokens, embed_text

FLASH = "gemini-3.8-flash"


@pytest.fixture
def provider(gemini_settings: Settings) -> GeminiProvider:
    return GeminiProvider(gemini_settings)


def test_chat_invoke(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    fake_gemini.reply(Reply("Paris [1]."))
    message = provider.langchain_chat().invoke("Capital of France?")
    assert message.text == "Paris [1]."  # Gemini 3 answers come as content blocks
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == count_tokens("Capital of France?")
    (call,) = fake_gemini.requests
    assert call.path == f"/v1/models/{FLASH}:generateContent"
    assert call.headers["x-goog-api-key"] == TEST_API_KEY
    assert "langchain-google-genai" in call.headers["user-agent"]


def test_chat_stream(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    text = "one two three four five six seven eight nine"
    fake_gemini.reply(text)
    chunks = list(provider.langchain_chat("gemini-3.1-pro-preview").stream("count"))
    assert "".join(c.text for c in chunks) == text
    assert len(chunks) >= 3
    assert fake_gemini.requests[0].path == "/v1/models/gemini-3.1-pro-preview:streamGenerateContent"


def test_chat_makes_a_single_attempt(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    fake_gemini.inject(Fault.rate_limited("30s"), times=None)
    with pytest.raises(ModelRateLimitError):
        provider.langchain_chat().invoke("x")
    assert len(fake_gemini.requests) == 1


def test_get_num_tokens_calls_count_tokens(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    assert provider.langchain_chat().get_num_tokens("hello, world") == 3
    assert fake_gemini.requests[0].method == "countTokens"


def test_embeddings_documents_and_query(provider: GeminiProvider, fake_gemini: FakeGemini) -> None:
    embeddings = provider.langchain_embeddings()
    docs = embeddings.embed_documents(["the cat sat", "stock prices fell"])
    query = embeddings.embed_query("a cat sat down")
    assert len(docs) == 2 and len(query) == 768
    assert np.allclose(docs[0], embed_text("the cat sat", 768), atol=1e-6)
    assert np.dot(query, docs[0]) > np.dot(query, docs[1])
    doc_call, query_call = fake_gemini.calls("batchEmbedContents")
    assert doc_call.body["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"
    assert query_call.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert query_call.body["requests"][0]["outputDimensionality"] == 768
