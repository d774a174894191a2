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
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from rag.types import CachedContext, Embedded, Generation, Prompt, StreamDelta


@runtime_checkable
class Embedder(Protocol):
    name: str  # "gemini" | "offline": picks the chunk profile (chunk size belongs to the embedder)
    embedding_id: str  # recorded on a collection; answering picks the embedder by it
    embedding_model: str  # priced by this name (a local model is free)
    embedding_dim: int

    def embed_documents(self, texts: Sequence[str]) -> Embedded: ...

    def embed_query(self, text: str) -> Embedded: ...


@runtime_checkable
class Warms(Protocol):
    """An embedder with something slow to load before its first call (a local model): a
    caller that knows work is coming starts `warm_up` early on another thread, so the load
    overlaps its own work (ingest reads the first files meanwhile)."""

    def warm_up(self) -> None: ...


JobState = Literal["pending", "running", "succeeded", "failed", "expired", "cancelled"]


@dataclass(frozen=True)
class JobStatus:
    """A batch embedding job as the provider last saw it. Once it `succeeded`, `vectors` holds
    one entry per submitted text, in order (None where that one request failed), and `tokens`
    what the job reported it embedded (0 when it reports nothing: count locally then)."""

    name: str
    state: JobState
    vectors: tuple[list[float] | None, ...] = ()
    tokens: int = 0

    @property
    def finished(self) -> bool:
        return self.state not in ("pending", "running")


@runtime_checkable
class EmbeddingJobs(Protocol):
    """Embedding as a batch job (Gemini's Batch API, at its batch price): submitted now,
    collected when done, up to a day later. Jobs are found again by the display name given at
    submission, so a caller that died before recording a job's name can still find it."""

    embedding_model: str

    def submit(self, texts: Sequence[str], display_name: str) -> str: ...

    def find(self, display_name: str) -> str | None: ...

    def status(self, name: str) -> JobStatus: ...


@runtime_checkable
class BatchEmbedder(Protocol):
    """An Embedder that can also embed documents as batch jobs (the offline one cannot)."""

    def embedding_jobs(self) -> EmbeddingJobs: ...


@runtime_checkable
class Generator(Protocol):
    name: str  # "gemini" | "offline"
    online: bool  # False for the embedded default: the UI and answers say so
    flash_model: str
    pro_model: str

    def generate(self, prompt: Prompt, model: str | None = None) -> Generation: ...

    def stream(self, prompt: Prompt, model: str | None = None) -> Iterator[StreamDelta]: ...

    def count_tokens(self, prompt: Prompt | str, model: str | None = None) -> int: ...

    def cache_prefix(self, prompt: Prompt, model: str, ttl_s: int) -> CachedContext | None:
        """Holds the prompt's reusable prefix (`prompt.prefix_turns`) for `ttl_s` seconds, so
        prompts that name it (`cached_context`) send only the rest; None when this generator
        keeps no such cache. Whether it pays is decided by the caller (rag.contextcache)."""
        ...

    def drop_cache(self, name: str) -> None:
        """Deletes a held prefix before its TTL ends (one already gone is no error)."""
        ...
