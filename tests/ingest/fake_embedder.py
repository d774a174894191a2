"""A fast, deterministic embedder for ingest tests: vectors from a hash of the text, every
call logged, and faults on demand. MiniLM would make each test take seconds per file;
ingest never looks at what the vectors mean."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from rag.errors import ProviderError
from rag.types import Embedded, Usage

DIM = 8


def vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255 for b in digest[:DIM]]


class FakeEmbedder:
    """An Embedder only: ingest never generates."""

    name = "offline"  # takes the offline chunk profile
    embedding_dim = DIM

    def __init__(self, embedding_id: str = f"fake:hash:{DIM}", *, embedding_model: str = "fake", delay_s: float = 0.0,
                 fail_after: int | None = None, error: ProviderError | None = None) -> None:
        self.embedding_id = embedding_id
        self.embedding_model = embedding_model  # priced by this name; "fake" is free
        self.delay_s = delay_s
        self.fail_after = fail_after  # calls that succeed before `error` is raised
        self.error = error
        self.calls: list[list[str]] = []

    @property
    def embedded_texts(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def embed_documents(self, texts: Sequence[str]) -> Embedded:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise self.error or ProviderError("fake failure")
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls.append(list(texts))
        return Embedded([vector(t) for t in texts], Usage(prompt_tokens=len(texts)), self.embedding_model)

    def embed_query(self, text: str) -> Embedded:
        return self.embed_documents([text])
