"""What the corpus panel shows: each collection with its document and chunk counts.

Read straight from Chroma without opening a `Store`, so a collection built with another
embedder is listed (and marked) instead of raising EmbedderMismatch in the panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rag.settings import Settings
from rag.store import chroma_client

PAGE = 5_000


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int
    version: int
    embedder: str
    last_ingest: str | None = None


def describe_collections(settings: Settings) -> list[CollectionInfo]:
    client = chroma_client(settings)
    names = sorted(c.name for c in client.list_collections())
    return [_describe(client.get_collection(name), last_ingest(settings, name)) for name in names]


def last_ingest(settings: Settings, collection: str) -> str | None:
    """When the last ingest run into the collection started: ingest.pipeline.run_lock opens
    (and so touches) this lock file at the start of every run, from the CLI or an upload."""
    lock = settings.data_dir / f"ingest-{collection}.lock"
    if not lock.exists():
        return None
    return datetime.fromtimestamp(lock.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _describe(collection, last: str | None) -> CollectionInfo:  # type: ignore[no-untyped-def]
    meta = collection.metadata or {}
    return CollectionInfo(
        name=collection.name,
        documents=len(_sources(collection)),
        chunks=collection.count(),
        version=int(meta.get("version", 0)),
        embedder=str(meta.get("embedder", "")),
        last_ingest=last,
    )


def _sources(collection) -> set[str]:  # type: ignore[no-untyped-def]
    sources: set[str] = set()
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        sources.update(str(m.get("source", "")) for m in got["metadatas"] or [])
        if len(got["ids"]) < PAGE:
            return sources
        offset += PAGE
