"""Embedding a run's new chunks so that the embedder never waits on the rest of ingest.

Chunks are embedded in batches sorted by length: a batch pads to its longest text, so
mixing a 20-token heading with 200-token paragraphs wastes most of a batch's compute
offline (MiniLM), while on the Gemini path a request costs the same whatever its texts'
lengths. Batches go to a pool of `in_flight` workers (Gemini: `embed_concurrency` requests
at once; offline: one call per core, MiniLM spreading each call's batches over its own
workers) and are queued as soon as a window of files is read, so the next window's
requests are waiting in the pool while the last window is being stored: across windows the
embedder is always busy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from ingest.chunking import SizedChunk
from rag.logs import TaggedPool
from rag.types import Embedded


@dataclass(frozen=True)
class Batch:
    chunks: list[SizedChunk]
    embedded: Future[Embedded]

    def vectors(self) -> dict[str, list[float]]:
        """Waits for the batch; raises what the embedder raised (a spent quota, a bad key)."""
        result = self.embedded.result()
        return dict(zip([c.chunk.id for c in self.chunks], result.vectors, strict=True))


class InFlight:
    def __init__(
        self,
        embed: Callable[[Sequence[str]], Embedded],
        batch_size: int,
        in_flight: int,
        warm_up: Callable[[], None] | None = None,
    ) -> None:
        """`warm_up` (an embedder's, `rag.providers.base.Warms`) starts on a worker at once,
        so the model loads while the first files are read, not after the first window is:
        on the bench's corpus the first batch started 0.29 s into the run instead of 0.42.
        What it raises is left to the first batch, which raises it again where the run
        reports it."""
        self.embed = embed
        self.batch_size = max(1, batch_size)
        self.pool = TaggedPool(max(1, in_flight), thread_name_prefix="ingest-embed")
        if warm_up is not None:
            self.pool.submit(warm_up)

    def submit(self, chunks: Sequence[SizedChunk]) -> list[Batch]:
        ordered = sorted(chunks, key=lambda c: c.tokens)
        return [
            Batch(part, self.pool.submit(self.embed, [c.embedded_text for c in part]))
            for part in (ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size))
        ]

    def close(self) -> None:
        """Batches not started yet are dropped (the run is stopping); running ones finish."""
        self.pool.shutdown(wait=True, cancel_futures=True)
