"""A fast, deterministic embedder for ingest tests: vectors from a hash of the text, every
call logged, and faults on demand. MiniLM would make each test take seconds per file;
ingest never looks at what the vectors mean."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence

from rag.errors import ProviderError
from rag.types import Embedded, Generation, Prompt, StreamDelta, Usage

DIM = 8


def vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255 for b in digest[:DIM]]


class FakeEmbedder:
    name = "offline"  # takes the offline chunk profile
    online = False
    embedding_dim = DIM
    flash_model = pro_model = "fake"

    def __init__(self, embedding_id: str = f"fake:hash:{DIM}", *, delay_s: float = 0.0,
                 fail_after: int | None = None, error: ProviderError | None = None) -> None:
        self.embedding_id = embedding_id
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
        return Embedded([vector(t) for t in texts], Usage(prompt_tokens=len(texts)), "fake")

    def embed_query(self, text: str) -> Embedded:
        return self.embed_documents([text])

    def generate(self, prompt: Prompt, model: str | None = None) -> Generation:
        raise NotImplementedError("ingest never generates")

    def stream(self, prompt: Prompt, model: str | None = None) -> Iterator[StreamDelta]:
        raise NotImplementedError("ingest never generates")

    def count_tokens(self, prompt: Prompt | str, model: str | None = None) -> int:
        raise NotImplementedError("ingest counts with the chunker's tokenizer")
