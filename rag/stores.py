"""The collections one process answers from: each opened once, with the embedder it records.

The chain, the UI's passage view and an HTTP server all ask for collections by name from
many threads; opening one means reading its metadata from Chroma, so it is done once per
name, under a lock. A collection is opened with the embedder that built it (read from its
metadata), never the one the current key would choose for a new collection.
"""

from __future__ import annotations

import threading

from rag.errors import EmptyCollection
from rag.providers import Embedders, get_embedder
from rag.providers.base import Embedder
from rag.settings import Settings
from rag.store import Store, recorded_embedder


class Stores:
    def __init__(self, settings: Settings, *opened: Store) -> None:
        """`opened`: stores already open (a test's or an evaluation's collection); the first
        is the default collection instead of `settings.collection`."""
        self.settings = settings
        self.default = opened[0].name if opened else settings.collection
        self._open: dict[str, Store] = {s.name: s for s in opened}
        self._lock = threading.Lock()

    def get(self, name: str | None = None) -> Store:
        """The collection to answer from, pinned at its current version (`Store.pinned`: one
        question, one version, one read of it); refuses one that nothing was ingested into."""
        name = name or self.default
        with self._lock:
            store = self._open.get(name)
            if store is None:
                embedder = recorded_embedder(self.settings, name)
                if embedder is not None:
                    store = self._open[name] = Store(self.settings, embedder, name)
        if store is None or (pinned := store.pinned()).count() == 0:
            raise EmptyCollection(f"Collection {name!r} is empty: nothing ingested yet: run python -m ingest PATH")
        return pinned


def embedder_for(settings: Settings, collection: str, embedders: Embedders) -> Embedder:
    """The embedder to add documents to `collection` with: the one that built it, so new
    vectors match the old; for a new collection, the one the settings choose."""
    recorded = recorded_embedder(settings, collection)
    return embedders.get(recorded) if recorded else get_embedder(settings)
