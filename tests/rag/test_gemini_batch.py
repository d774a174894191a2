"""Batch embedding jobs through the real google-genai client against the fake's Batch API:
what is sent, what comes back, and the failures that must not create a job twice."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rag.errors import ProviderError
from rag.providers.base import BatchEmbedder, JobStatus
from rag.providers.gemini import GeminiProvider
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini, Fault, count_tokens, embed_text

CREATE = "asyncBatchEmbedContent"


@pytest.fixture
def provider(gemini_settings: Settings) -> GeminiProvider:
    return GeminiProvider(gemini_settings)


def _finished(provider: GeminiProvider, name: str) -> JobStatus:
    status = provider.embedding_jobs().status(name)
    while not status.finished:
        time.sleep(0.02)
        status = provider.embedding_jobs().status(name)
    return status


def test_a_job_returns_unit_vectors_in_order_with_its_token_counts(provider, fake_gemini: FakeGemini) -> None:
    fake_gemini.batch_run_s = 1.5
    texts = ["the first text", "a second, longer text about servers"]
    name = provider.embedding_jobs().submit(texts, "gemrag-test-1")
    request = fake_gemini.calls(CREATE)[0]
    assert request.path == "/v1/models/gemini-embedding-001:asyncBatchEmbedContent"
    first = request.body["batch"]["inputConfig"]["requests"]["requests"][0]["request"]
    assert first["taskType"] == "RETRIEVAL_DOCUMENT" and first["outputDimensionality"] == 768
    assert request.body["batch"]["displayName"] == "gemrag-test-1"
    assert provider.embedding_jobs().status(name).state in ("pending", "running")
    status = _finished(provider, name)
    assert status.state == "succeeded" and status.tokens == sum(count_tokens(t) for t in texts)
    for text, vector in zip(texts, status.vectors, strict=True):
        expected = np.asarray(embed_text(text, 768))
        assert vector is not None and np.allclose(vector, expected / np.linalg.norm(expected), atol=1e-6)
    assert provider.embedding_jobs().find("gemrag-test-1") == name
    assert provider.embedding_jobs().find("gemrag-other") is None


def test_failed_and_expired_jobs_and_an_unknown_name(provider, fake_gemini: FakeGemini) -> None:
    fake_gemini.inject(Fault.job_failed(), method=CREATE)
    fake_gemini.inject(Fault.job_expired(), method=CREATE)
    failed = provider.embedding_jobs().submit(["a"], "gemrag-f")
    expired = provider.embedding_jobs().submit(["b"], "gemrag-e")
    assert _finished(provider, failed) == JobStatus(failed, "failed")
    assert _finished(provider, expired) == JobStatus(expired, "expired")
    assert provider.embedding_jobs().status("batches/gone") == JobStatus("batches/gone", "expired")


def test_a_create_answered_503_is_retried_and_makes_one_job(provider, fake_gemini: FakeGemini) -> None:
    fake_gemini.inject(Fault.server_error(503), method=CREATE)
    provider.embedding_jobs().submit(["a"], "gemrag-r")
    assert [r.status for r in fake_gemini.calls(CREATE)] == [503, 200]
    assert fake_gemini.calls("listBatches")  # it looked for the job before sending it again


def test_a_create_without_an_answer_is_not_sent_again(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    provider = GeminiProvider(gemini_settings.model_copy(update={"request_timeout_s": 0.5}))
    fake_gemini.inject(Fault.slow(1.0), method=CREATE)
    with pytest.raises(ProviderError, match="may exist all the same"):
        provider.embedding_jobs().submit(["a"], "gemrag-t")
    assert len(fake_gemini.calls(CREATE)) == 1
    time.sleep(0.7)  # the server creates it after its pause: the next run finds it
    assert provider.embedding_jobs().find("gemrag-t")


def test_only_gemini_offers_batch_jobs(provider) -> None:
    assert isinstance(provider, BatchEmbedder) and not isinstance(OfflineProvider(), BatchEmbedder)
