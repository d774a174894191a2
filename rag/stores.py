"""The collections one process answers from: each opened once, with the embedder it records.

The chain, the UI's passage view and an HTTP server all ask for collections by name from
many threads; opening one means reading its metadata from Chroma, so it is done once per
name, under a lock. A collection is opened with the embedder that built it (read from its
metadata), never the one the current key would choose for a new collection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rag.errors import ConfigError, EmptyCollection, InvalidRequest, NoCollection
from rag.providers import Embedders, get_embedder
from rag.providers.base import Embedder
from rag.settings import Settings
from rag.store import Store, check_collection_name, chroma_address, list_collections, no_store_yet, recorded_embedder


class Stores:
    def __init__(self, settings: Settings, *opened: Store) -> None:
        """`opened`: stores already open (a test's or an evaluation's collection); the first
        is the default collection instead of `settings.collection`."""
        self.settings = settings
        self.default = opened[0].name if opened else settings.collection
        self._open: dict[str, Store] = {s.name: s for s in opened}
        self._lock = threading.Lock()
        self._files: dict[str, tuple[int, list[StoredFile]]] = {}  # by collection: (version, `stored_files`)

    def files(self, name: str) -> list[StoredFile]:
        """The collection's files (`stored_files`), read once per version of it: a listing
        reads every chunk's metadata, and a client paging through a large collection asked
        for that read on every page."""
        store = self.open(name)
        version = store.version
        cached = self._files.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        listed = stored_files(store.metadatas())
        self._files[name] = (version, listed)
        return listed

    def get(self, name: str | None = None) -> Store:
        """The collection to answer from, pinned at its current version (`Store.pinned`: one
        question, one version, one read of it); refuses one that nothing was ingested into."""
        name = name or self.default
        if (pinned := self.open(name).pinned()).count() == 0:
            empty = f"Collection {name!r} holds no documents (none ingested yet, or all removed)"
            raise EmptyCollection(f"{empty}: run python -m ingest PATH --collection {name}",
                                  remote=f"{empty}: add some first (over HTTP: POST /v1/collections/{name}/documents)")
        return pinned

    def open(self, name: str) -> Store:
        """The collection as it stands, empty or not; one that does not exist is refused
        (EmptyCollection, with where it was looked for) and never created: a `Store` of a new
        name would create it, so only a name Chroma lists, with the embedder it records, is
        opened. The API's document listing and removal check with it before anything is queued."""
        try:
            check_collection_name(name)
        except ConfigError as exc:
            raise InvalidRequest(str(exc), field="collection") from exc
        with self._lock:
            store = self._open.get(name)
            if store is None:
                embedder = None if no_store_yet(self.settings) else recorded_embedder(self.settings, name)
                if embedder is not None:
                    store = self._open[name] = Store(self.settings, embedder, name)
        if store is None:
            raise self._absent(name)
        return store

    def _absent(self, name: str) -> NoCollection:
        """Where the collection was looked for and which ones are there: a mistyped name, or
        a data directory other than the one ingested into, shows at once. An API client is
        told which collections there are, not where the server keeps them. Nothing is
        created to say so."""
        held = [] if no_store_yet(self.settings) else list_collections(self.settings)
        there = f"collections there: {', '.join(held)}" if held else "nothing has been ingested there"
        if not self.settings.chroma_url and not self.settings.data_dir.exists():
            there = "no such folder"
        ingest = f"run python -m ingest PATH --collection {name}"
        if self.settings.chroma_url:
            host, port = chroma_address(self.settings.chroma_url)
            return NoCollection(
                f"No collection {name!r} on the Chroma server at {host}:{port} ({there}): "
                f"{ingest}, or point CHROMA_URL at the server you ingested into.", name=name, held=held)
        return NoCollection(f"No collection {name!r} in {self.settings.data_dir.resolve()} ({there}): {ingest}, "
                            "or point GEMRAG_DATA_DIR (--data-dir) at the folder you ingested into.",
                            name=name, held=held)


def embedder_for(settings: Settings, collection: str, embedders: Embedders) -> Embedder:
    """The embedder to add documents to `collection` with: the one that built it, so new
    vectors match the old; for a new collection, the one the settings choose."""
    recorded = recorded_embedder(settings, collection)
    return embedders.get(recorded) if recorded else get_embedder(settings)


@dataclass(frozen=True)
class StoredFile:
    """A file as a collection holds it: what the API's document listing and the UI's corpus
    panel both show, computed once (`stored_files`) so the two cannot count differently."""

    source: str  # the stored name, as citations show it and removal takes it
    chunks: int
    # How many distinct pages (or slides) its chunks come from: the pages with text, which
    # are the ones an answer can cite (a scanned page without text has no chunk). None for a
    # file without pages.
    pages: int | None
    headings: tuple[str, ...] = ()  # its heading paths in document order, each once


def stored_files(metadatas: Iterable[Mapping[str, Any]]) -> list[StoredFile]:
    """Every file among the chunks' metadata (`Store.metadatas`, or `chunk_metadatas` for a
    collection not opened as a `Store`), by name, counted from the metadata alone: an API
    client needs the exact stored name to remove a file."""
    parts: dict[str, list[tuple[int, str]]] = {}
    pages: dict[str, set[int]] = {}
    for meta in metadatas:
        source = str(meta["source"])
        parts.setdefault(source, []).append((int(meta.get("index", 0)), str(meta.get("heading", ""))))
        if isinstance(page := meta.get("page"), int):
            pages.setdefault(source, set()).add(page)
    return [
        StoredFile(
            source=source,
            chunks=len(parts[source]),
            pages=len(pages[source]) if source in pages else None,
            headings=tuple(dict.fromkeys(heading for _, heading in sorted(parts[source]) if heading)),
        )
        for source in sorted(parts)
    ]
