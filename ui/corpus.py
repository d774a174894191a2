"""What the corpus panel and the first screen show: each collection with its documents,
their chunk counts, pages and headings (`rag.stores.stored_files`, as the API lists them),
and when it was last ingested.

Read straight from Chroma without opening a `Store`, so a collection built with another
embedder is listed (and marked) instead of raising EmbedderMismatch in the panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.pipeline import lock_path
from rag.settings import Settings
from rag.store import chroma_client, chunk_metadatas, collection_meta
from rag.stores import StoredFile, stored_files


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int
    version: int
    embedder: str
    last_ingest: str | None = None
    files: tuple[StoredFile, ...] = ()  # as the API lists them (`stored_files`), headings too


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
    files = tuple(stored_files(chunk_metadatas(collection)))
    return CollectionInfo(
        name=collection.name,
        documents=len(files),
        chunks=collection.count(),
        version=meta.version,
        embedder=meta.embedder or "",
        last_ingest=last,
        files=files,
    )
