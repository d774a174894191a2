"""A collection's files in its File Search store (backend "file-search").

Ingest's manifest records every file of a collection with its content hash and token count;
this hands them, as recorded, to rag.filesearch, which uploads only what the store lacks.
The local collection stays too: it is what the UI opens a cited page from, what the side-by-side
evaluation compares with, and what answers offline.
"""

from __future__ import annotations

from pathlib import Path

from ingest.manifest import Manifest
from ingest.pipeline import MANIFEST
from rag.costs import Ledger
from rag.filesearch import FileSearchStores, LocalFile, ProgressCallback, Synced
from rag.settings import Settings

SESSION = "ingest-file-search"  # the ledger session indexing is charged to


def collection_files(settings: Settings, collection: str) -> list[LocalFile]:
    """The collection's files as its last ingest committed them, by source path."""
    path = settings.data_dir / MANIFEST
    if not path.exists():
        return []
    manifest = Manifest(path, collection)
    try:
        records = manifest.records()
    finally:
        manifest.close()
    return [
        LocalFile(r.source, Path(r.path), r.content_hash, r.tokens)
        for r in sorted(records.values(), key=lambda r: r.source)
    ]


def upload_collection(
    settings: Settings,
    collection: str,
    *,
    ledger: Ledger | None = None,
    on_progress: ProgressCallback | None = None,
) -> Synced:
    """The collection's File Search store brought in step with its files."""
    files = collection_files(settings, collection)
    return FileSearchStores(settings).sync(collection, files, ledger or Ledger(settings), SESSION, on_progress)
