"""What the corpus panel and the first screen show: each collection with its documents,
their chunk counts and headings, and when it was last ingested.

Read straight from Chroma without opening a `Store`, so a collection built with another
embedder is listed (and marked) instead of raising EmbedderMismatch in the panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.pipeline import lock_path
from rag.settings import Settings
from rag.store import chroma_client, collection_meta

PAGE = 5_000


@dataclass(frozen=True)
class DocumentInfo:
    source: str
    chunks: int
    headings: tuple[str, ...]  # heading paths in document order, each once
    pages: int  # PDF pages with text; 0 for other files


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int
    version: int
    embedder: str
    last_ingest: str | None = None
    files: tuple[DocumentInfo, ...] = ()


def describe_collections(settings: Settings) -> list[CollectionInfo]:
    client = chroma_client(settings)
    names = sorted(c.name for c in client.list_collections())
    return [_describe(client.get_collection(name), last_ingest(settings, name)) for name in names]


def last_ingest(settings: Settings, collection: str) -> str | None:
    """When the last ingest run into the collection started (from the CLI, an upload or a job)."""
    lock = lock_path(settings, collection)
    if not lock.exists():
        return None
    return datetime.fromtimestamp(lock.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _describe(collection, last: str | None) -> CollectionInfo:  # type: ignore[no-untyped-def]  # chromadb Collection
    meta = collection_meta(collection)
    files = _documents(collection)
    return CollectionInfo(
        name=collection.name,
        documents=len(files),
        chunks=collection.count(),
        version=meta.version,
        embedder=meta.embedder or "",
        last_ingest=last,
        files=files,
    )


def _documents(collection) -> tuple[DocumentInfo, ...]:  # type: ignore[no-untyped-def]  # chromadb Collection
    """One pass over the chunk metadata (no texts): chunks, headings and pages per source."""
    chunks: dict[str, list[tuple[int, str, int | None]]] = {}
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        for m in got["metadatas"] or []:
            page = m.get("page")
            chunks.setdefault(str(m.get("source", "")), []).append(
                (int(m.get("index", 0)), str(m.get("heading", "")), int(page) if page is not None else None)
            )
        if len(got["ids"]) < PAGE:
            break
        offset += PAGE
    return tuple(
        DocumentInfo(
            source=source,
            chunks=len(parts),
            headings=tuple(dict.fromkeys(h for _, h, _ in sorted(parts) if h)),
            pages=len({p for _, _, p in parts if p is not None}),
        )
        for source, parts in sorted(chunks.items())
    )
