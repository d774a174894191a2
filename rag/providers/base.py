"""The two narrow interfaces behind every model call: an `Embedder` and a `Generator`.

They are apart because they belong to different owners. The embedder belongs to the
**collection**: its vectors were made by one model, and a question must be embedded by the
same one. The generator belongs to the **session**: with a Gemini key it is Gemini, without
one the offline answerer. So a collection built offline keeps working once a key is set
(MiniLM embeds the question, Gemini writes the answer). Ingest, retrieval and the
query-embedding cache take an Embedder; the router, rewrite, judge and chain a Generator.
Gemini and the offline default each implement both; the chain never asks which it holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from rag.types import Embedded, Generation, Prompt, StreamDelta


@runtime_checkable
class Embedder(Protocol):
    name: str  # "gemini" | "offline": picks the chunk profile (chunk size belongs to the embedder)
    embedding_id: str  # recorded on a collection; answering picks the embedder by it
    embedding_model: str  # priced by this name (a local model is free)
    embedding_dim: int

    def embed_documents(self, texts: Sequence[str]) -> Embedded: ...

    def embed_query(self, text: str) -> Embedded: ...


@runtime_checkable
class Generator(Protocol):
    name: str  # "gemini" | "offline"
    online: bool  # False for the embedded default: the UI and answers say so
    flash_model: str
    pro_model: str

    def generate(self, prompt: Prompt, model: str | None = None) -> Generation: ...

    def stream(self, prompt: Prompt, model: str | None = None) -> Iterator[StreamDelta]: ...

    def count_tokens(self, prompt: Prompt | str, model: str | None = None) -> int: ...
