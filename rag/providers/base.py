"""The narrow interface every model provider implements.

Gemini and the offline default are interchangeable behind it: the chain, ingest and
evaluation never ask which one they hold.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from rag.types import Embedded, Generation, Prompt, StreamDelta


@runtime_checkable
class Provider(Protocol):
    name: str  # "gemini" | "offline"
    online: bool  # False for the embedded default: the UI and answers say so
    embedding_id: str  # recorded on a collection; mixing embedders is refused
    embedding_dim: int
    flash_model: str
    pro_model: str

    def embed_documents(self, texts: Sequence[str]) -> Embedded: ...

    def embed_query(self, text: str) -> Embedded: ...

    def generate(self, prompt: Prompt, model: str | None = None) -> Generation: ...

    def stream(self, prompt: Prompt, model: str | None = None) -> Iterator[StreamDelta]: ...

    def count_tokens(self, prompt: Prompt | str, model: str | None = None) -> int: ...
