"""The same incremental ingest against a Chroma server (CHROMA_URL) instead of the embedded store."""

import uuid

import pytest

from ingest.pipeline import ingest_paths
from ingest.report import Status
from rag.store import Store, drop_collection


@pytest.mark.chroma_server
def test_ingest_update_and_prune_on_a_chroma_server(corpus, settings, fake, chroma_server_url):
    settings = settings.model_copy(update={"chroma_url": chroma_server_url})
    name = f"ingest-test-{uuid.uuid4().hex[:8]}"
    try:
        first = ingest_paths([corpus.root], settings, fake, collection=name)
        assert first.count(Status.ADDED) == 4
        store = Store(settings, fake.embedding_id, name)
        assert store.count() == first.chunks
        calls = len(fake.calls)
        assert ingest_paths([corpus.root], settings, fake, collection=name).count(Status.UNCHANGED) == 4
        assert len(fake.calls) == calls
        corpus.path("notes.txt").unlink()
        corpus.path("guide.md").write_text("# Handbook\n\nShorter now.\n")
        report = ingest_paths([corpus.root], settings, fake, collection=name, prune=True)
        assert report.count(Status.REMOVED) == 1 and report.count(Status.UPDATED) == 1
        sources = {c.source: c.text for c in store.chunks()}
        assert set(sources) == {"guide.md", "runbook.html", "sub/limits.pdf"}
        assert "Shorter now." in sources["guide.md"]
        assert store.version == report.version > first.version
    finally:
        drop_collection(settings, name)
