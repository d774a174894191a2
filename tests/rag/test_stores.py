"""The collections one process answers from (rag/stores.py)."""

from __future__ import annotations

import pytest

from rag.settings import Settings
from rag.store import Store
from rag.stores import Stores
from tests.fakes.tiny_corpus import build_store


def test_a_collections_file_listing_is_read_once_per_version(
    settings: Settings, offline_provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client paging through the API's listing read every chunk's metadata on each page."""
    store = build_store(settings, offline_provider)
    reads = []
    metadatas = Store.metadatas
    monkeypatch.setattr(Store, "metadatas", lambda self, *a: reads.append(self.name) or metadatas(self, *a))
    stores = Stores(settings)

    first = stores.files("tiny-corpus")
    assert stores.files("tiny-corpus") == first and len(reads) == 1
    store.delete([c.id for c in store.chunks() if c.source == "security.md"])
    store.bump_version()
    assert [f.source for f in stores.files("tiny-corpus")] == ["api-guide.md", "cafeteria.md", "handbook.pdf"]
    assert len(reads) == 2
