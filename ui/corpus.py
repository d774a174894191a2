"""What the corpus panel shows: each collection with its document and chunk counts.

Read straight from Chroma without opening a `Store`, so a collection built with another
embedder is listed (and marked) instead of raising EmbedderMismatch in the panel.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    return [_describe(client.get_collection(c.name)) for c in sorted(client.list_collections(), key=lambda c: c.name)]


def _describe(collection) -> CollectionInfo:  # type: ignore[no-untyped-def]
    meta = collection.metadata or {}
    return CollectionInfo(
        name=collection.name,
        documents=len(_sources(collection)),
        chunks=collection.count(),
        version=int(meta.get("version", 0)),
        embedder=str(meta.get("embedder", "")),
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
