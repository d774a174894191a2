"""The corpus panel's facts come from the owners ingest uses, not from copies of their rules."""

from __future__ import annotations

from pathlib import Path

from ingest.pipeline import ingest_paths, lock_path
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from rag.stores import Stores
from tests.fakes.corpus import write_corpus
from tests.fakes.tiny_corpus import Doc, build_store, chunks
from tests.ingest.fake_embedder import FakeEmbedder
from ui.corpus import describe_collections, last_ingest


def test_last_ingest_is_when_ingest_last_took_the_collections_lock(settings: Settings, tmp_path: Path) -> None:
    assert last_ingest(settings, "notes") is None
    ingest_paths([write_corpus(tmp_path / "docs").root], settings, FakeEmbedder(), collection="notes")
    assert lock_path(settings, "notes").exists()
    shown = last_ingest(settings, "notes")
    assert shown is not None and shown.endswith(" UTC")


def test_the_panel_lists_each_file_as_the_api_does_and_a_collection_of_another_embedder_too(
    settings: Settings, offline_provider: OfflineProvider
) -> None:
    """The panel read Chroma with a loop of its own and counted pages its own way: a scan with
    text on pages 2 and 5 was 2 pages here and 5 in GET /v1/collections/{name}/documents. Both
    now list through `stored_files`; the panel still reads without opening a `Store`, so a
    collection built with another embedder is listed rather than refused."""
    build_store(settings, offline_provider, "scans", docs=(
        Doc("scan.pdf", "The warranty covers two years from the date of purchase.", 2, heading="Warranty"),
        Doc("scan.pdf", "It starts on the day of delivery.", 2, heading="Warranty"),
        Doc("scan.pdf", "Repairs under warranty are free of charge.", 5, heading="Repairs"),
    ))
    Store(settings, "another-embedder", "foreign").upsert(
        chunks((Doc("notes.md", "Old notes.", heading="Notes"),)), [[1.0, 0.0]])

    shown = {c.name: c for c in describe_collections(settings)}
    assert shown["scans"].files == tuple(Stores(settings).files("scans"))
    (scan,) = shown["scans"].files
    assert (scan.chunks, scan.pages, scan.headings) == (3, 2, ("Warranty", "Repairs"))
    assert shown["foreign"].embedder == "another-embedder"
    assert [(f.source, f.chunks, f.pages) for f in shown["foreign"].files] == [("notes.md", 1, None)]
