"""The corpus panel's facts come from the owners ingest uses, not from copies of their rules."""

from __future__ import annotations

from pathlib import Path

from ingest.pipeline import ingest_paths, lock_path
from rag.settings import Settings
from tests.fakes.corpus import write_corpus
from tests.ingest.fake_embedder import FakeEmbedder
from ui.corpus import last_ingest


def test_last_ingest_is_when_ingest_last_took_the_collections_lock(settings: Settings, tmp_path: Path) -> None:
    assert last_ingest(settings, "notes") is None
    ingest_paths([write_corpus(tmp_path / "docs").root], settings, FakeEmbedder(), collection="notes")
    assert lock_path(settings, "notes").exists()
    shown = last_ingest(settings, "notes")
    assert shown is not None and shown.endswith(" UTC")
