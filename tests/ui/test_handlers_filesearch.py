"""The chat UI over backend "file-search" (fake Gemini on a socket): a File Search answer's
grounding shows as chips and sources, and a chip opens the cited PDF page of the local file."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ingest.filesearch import upload_collection
from ingest.pipeline import ingest_paths
from rag.backend import Backend
from rag.settings import Settings
from tests.ingest.fake_embedder import FakeEmbedder
from tests.ui.conftest import write_corpus
from ui.handlers import Handlers
from ui.session import SessionState

BADGE = "Where is the office badge collected?"


def test_a_file_search_chip_opens_the_cited_pdf_page(gemini_settings: Settings, tmp_path: Path) -> None:
    settings = gemini_settings.model_copy(update={"backend": "file-search", "file_search_poll_s": 0.0})
    ingest_paths([write_corpus(tmp_path / "corpus")], settings, FakeEmbedder())
    upload_collection(settings, "corpus")
    handlers = Handlers(settings, Backend.build(settings))
    state = SessionState()
    *_, final = handlers.respond(BADGE, state, "corpus", "hybrid", 4, "")
    chat, sources = final[0], final[6]
    assert "class='cite' data-act='cite' data-turn='0' data-n='1'" in chat
    assert "onboarding.pdf" in sources and "<li class='cited'>" in sources
    _, _, image, viewer, drawer, *_ = handlers.act(state, gr.SelectData(None, {"index": [0, "cite"], "value": "1"}))
    assert drawer["open"] and image["visible"] and "onboarding.pdf</b> · page 3" in viewer
