"""Fixtures for ingest tests: a written corpus, a fast embedder, and a snapshot of a
collection to compare runs by."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.manifest import Manifest
from ingest.pipeline import MANIFEST
from rag.settings import Settings
from rag.store import Store
from rag.testing.fake_gemini import FakeGemini
from rag.types import estimate_tokens
from tests.fakes.corpus import Corpus, write_corpus
from tests.ingest.fake_embedder import FakeEmbedder


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return write_corpus(tmp_path / "docs")


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def small_batches(settings: Settings) -> Settings:
    """Many small batches, so a run has many steps to crash between."""
    return settings.model_copy(update={"ingest_batch_chunks": 3})


@dataclass(frozen=True)
class Snapshot:
    """Everything a collection holds, by chunk id, plus what the manifest says each file owns."""

    chunks: dict[str, tuple[str, dict]]  # type: ignore[type-arg]
    vectors: dict[str, list[float]]
    files: dict[str, tuple[str, tuple[str, ...]]]


def snapshot(settings: Settings, embedding_id: str, collection: str = "corpus") -> Snapshot:
    store = Store(settings, embedding_id, collection)
    chunks = {c.id: (c.text, c.metadata()) for c in store.chunks()}
    vectors = {i: [round(x, 5) for x in v] for i, v in store.vectors(sorted(chunks)).items()}
    manifest = Manifest(settings.path(MANIFEST), collection)
    files = {s: (r.content_hash, r.chunk_ids) for s, r in manifest.records().items()}
    manifest.close()
    return Snapshot(chunks, vectors, files)


def billed_embeddings(fake: FakeGemini) -> list[list[str]]:
    """The texts of each batchEmbedContents request the fake answered, in order: what the
    API bills (a 429 or a 503 is not billed, nor a request whose client died sending it)."""
    answered = [r for r in fake.calls("batchEmbedContents")
                if r.status == 200 and "requests" in r.body and not (r.fault and r.fault.malformed)]
    return [["".join(p.get("text", "") for p in q["content"]["parts"]) for q in r.body["requests"]] for r in answered]


def billed_tokens(fake: FakeGemini, requests: list[list[str]] | None = None) -> int:
    """The tokens of those requests as the ledger charges them: the API reports no token
    counts for embeddings, so they are charged on the provider's estimate."""
    return sum(estimate_tokens(t) for texts in (billed_embeddings(fake) if requests is None else requests)
               for t in texts)
