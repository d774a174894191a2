"""The embedder belongs to the collection, the generator to the session: a collection built
offline keeps working once a Gemini key is set (MiniLM embeds the question, Flash answers),
and one built with Gemini embeddings says what it needs when the key is gone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answer import AskOptions
from rag.chain import Chain
from rag.errors import ConfigError
from rag.providers import get_generator
from rag.providers.gemini import GeminiProvider
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini
from tests.fakes.tiny_corpus import build_store

QUESTION = "How many days of paid vacation do employees get?"
EMBED_METHODS = ("embedContent", "batchEmbedContents")
TINY = AskOptions(collection="tiny-corpus")


def test_an_offline_collection_answers_with_the_gemini_generator(
    settings: Settings, gemini_settings: Settings, offline_provider: OfflineProvider, fake_gemini: FakeGemini
) -> None:
    build_store(settings, offline_provider)  # no key: MiniLM embeddings
    online = gemini_settings.model_copy(update={"data_dir": settings.data_dir})

    record = Chain(online, get_generator(online)).ask(QUESTION, options=TINY)

    assert (record.route.kind, record.route.model) == ("flash", online.flash_model) and not record.offline
    assert record.sources[0].source == "handbook.pdf" and record.sources[0].page == 2  # MiniLM found it
    assert all(fake_gemini.calls(m) == [] for m in EMBED_METHODS)  # the question was embedded locally
    assert len(fake_gemini.calls("streamGenerateContent")) == 1


def test_a_gemini_collection_without_a_key_says_what_it_needs(
    settings: Settings, gemini_settings: Settings, offline_provider: OfflineProvider
) -> None:
    build_store(gemini_settings, GeminiProvider(gemini_settings))
    offline = settings.model_copy(update={"data_dir": gemini_settings.data_dir})

    with pytest.raises(ConfigError, match=r"built with Gemini embeddings .*set GEMINI_API_KEY"):
        Chain(offline, offline_provider).ask(QUESTION, options=TINY, session_id="s")


@pytest.mark.slow
def test_ingest_offline_then_ask_and_add_files_with_a_key(tmp_path: Path, fake_gemini: FakeGemini) -> None:
    """Through the commands a user types: `python -m ingest` without a key, then with a key
    set `python -m rag ask` answers from Flash and `python -m ingest` adds a file with MiniLM."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nEmployees get 25 days of paid vacation per year.\n")
    offline = {**os.environ, "GEMRAG_DATA_DIR": str(tmp_path / "data")}
    assert _run(offline, "ingest", str(docs), "-q").returncode == 0

    online = {**offline, "GEMINI_API_KEY": TEST_API_KEY, "GEMRAG_BASE_URL": fake_gemini.url, "GEMRAG_TIER": "unlimited"}
    asked = _run(online, "rag", "ask", QUESTION)
    assert asked.returncode == 0, asked.stderr
    assert "Route: flash · gemini-3.8-flash" in asked.stdout and "leave.md" in asked.stdout
    (docs / "travel.md").write_text("# Travel\n\nTrain travel is booked through the portal.\n")
    added = _run(online, "ingest", str(docs), "-q")
    assert added.returncode == 0, added.stdout + added.stderr
    assert re.search(r"files added\s*│\s*1 │", added.stdout)  # the table's width follows its longest value
    assert all(fake_gemini.calls(m) == [] for m in EMBED_METHODS)
    assert len(fake_gemini.calls("streamGenerateContent")) == 1


def _run(env: dict[str, str], module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, timeout=300)
