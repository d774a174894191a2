"""Gradio's copies of uploads under the data dir: removed once staged, leftovers of a killed
process swept at the next start, nothing outside the folder ever touched (issue #14, item 8)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rag.settings import Settings
from ui import browser_copies
from ui.uploads import ingest_uploads


def copy_in(root: Path, name: str, text: str = "# Notes\n\nThe canteen opens at noon.\n") -> Path:
    folder = root / f"{abs(hash(name)):x}"
    folder.mkdir(parents=True)
    path = folder / name
    path.write_text(text)
    return path


def test_an_uploaded_copy_is_gone_once_staged_and_ingested(settings: Settings, offline_provider) -> None:
    root = browser_copies.prepare(settings)
    uploaded = [copy_in(root, "notes.md"), copy_in(root, "virus.exe")]
    result = ingest_uploads(uploaded, settings, offline_provider, "corpus")
    assert [s.name for s in result.staged] == ["notes.md"] and len(result.rejected) == 1
    assert list(root.iterdir()) == []  # the accepted and the refused copy, and their folders
    assert (settings.data_dir / "uploads" / "corpus" / "notes.md").exists()


def test_leftovers_are_swept_at_start_but_fresh_copies_and_other_files_stay(
    settings: Settings, tmp_path: Path
) -> None:
    root = browser_copies.prepare(settings)
    old, fresh = copy_in(root, "old.md"), copy_in(root, "fresh.md")
    an_hour_ago = time.time() - browser_copies.LEFTOVER_AGE_S - 60
    os.utime(old, (an_hour_ago, an_hour_ago))
    elsewhere = tmp_path / "mine.md"
    elsewhere.write_text("keep")
    browser_copies.prepare(settings)
    assert not old.exists() and not old.parent.exists() and fresh.exists()
    browser_copies.discard([elsewhere], settings)
    assert elsewhere.exists()


def test_every_component_caches_inside_the_data_dir(settings: Settings, offline_provider) -> None:
    """Gradio reads GRADIO_TEMP_DIR when each component is made: set after building, uploads
    were copied to the machine's /tmp/gradio and never removed."""
    from rag.backend import Backend
    from ui.app import build_app

    demo = build_app(settings, Backend.build(settings, offline_provider))
    caches = {Path(block.GRADIO_CACHE) for block in demo.blocks.values()}
    assert caches == {(settings.data_dir / browser_copies.FOLDER).resolve()}


def test_a_file_uploaded_before_is_passed_over_when_the_next_is_added_beside_it(
    settings: Settings, offline_provider
) -> None:
    """The file box kept the first file, so adding a second sent both; the first one's copy
    was gone and the upload failed with a traceback, ingesting neither."""
    root = browser_copies.prepare(settings)
    first = copy_in(root, "canteen.md")
    assert [s.name for s in ingest_uploads([first], settings, offline_provider, "corpus").staged] == ["canteen.md"]
    second = copy_in(root, "printer.md", "# Printer\n\nThe printer is on the second floor.\n")
    result = ingest_uploads([first, second], settings, offline_provider, "corpus")
    assert [s.name for s in result.staged] == ["printer.md"] and result.rejected == []
    assert result.report is not None and result.report.exit_code == 0
