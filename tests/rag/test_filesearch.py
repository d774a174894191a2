"""Backend "file-search" answering, against the fake Gemini server on a socket: the model
searches the collection's File Search store itself, and its grounding metadata becomes our
citations (file and page), sources, costs and the CLI's output."""

from __future__ import annotations

import pytest

from ingest.filesearch import upload_collection
from ingest.pipeline import ingest_paths
from rag.backend import Backend
from rag.cli import describe
from rag.cli import main as rag_main
from rag.costs import price_usd
from rag.errors import ConfigError
from rag.filesearch import FileSearchStores
from rag.testing.fake_filesearch import file_search_stores
from rag.types import Usage
from tests.fakes.corpus import write_corpus
from tests.ingest.fake_embedder import FakeEmbedder

QUESTION = "How many requests per minute does the free tier allow for Flash?"


@pytest.fixture
def fs_settings(gemini_settings):
    return gemini_settings.model_copy(update={"file_search_poll_s": 0.0, "backend": "file-search"})


@pytest.fixture
def uploaded(tmp_path, fs_settings):
    corpus = write_corpus(tmp_path / "docs")
    ingest_paths([corpus.root], fs_settings, FakeEmbedder())
    return upload_collection(fs_settings, "corpus")


def test_grounding_becomes_citations_with_pages_and_costs(uploaded, fs_settings, fake_gemini):
    backend = Backend.build(fs_settings)
    record = backend.chain.ask(QUESTION, session_id="s1")
    assert record.answer == "The free tier allows ten requests per minute for Flash [1]."
    [cited] = record.citations
    assert (cited.n, cited.source, cited.page, cited.place) == (1, "sub/limits.pdf", 1, "p. 1")
    assert cited.chunk_id.startswith("file-search:") and "ten requests per minute" in cited.snippet
    assert len(record.sources) >= 1 and record.sources[0] == cited
    assert [c.verdict for c in record.checks] == ["supported"]  # the cited chunk's text backs the sentence
    # The answer call carried the File Search tool over the collection's store, on the main key.
    [call] = fake_gemini.calls("streamGenerateContent")
    assert file_search_stores(call.body) == [uploaded.store]  # google-genai 3.6 spells its fields in snake_case
    assert call.body["tools"][0]["fileSearch"].get("top_k", call.body["tools"][0]["fileSearch"].get("topK")) == 6
    assert "File Search" in call.body["systemInstruction"]["parts"][0]["text"]
    # The chunks the tool put into the context are billed as input, and charged.
    billed = fake_gemini.billed[-1]
    tool_tokens = call_tool_tokens(fake_gemini)
    assert record.usage.prompt_tokens == billed.prompt_tokens + tool_tokens and tool_tokens > 0
    usage = Usage(billed.prompt_tokens + tool_tokens, billed.output_tokens, thinking_tokens=billed.thinking_tokens)
    assert record.cost_usd == pytest.approx(price_usd(fs_settings, billed.model, usage))
    assert backend.ledger.session("s1").cost_usd == pytest.approx(record.cost_usd)


def call_tool_tokens(fake_gemini) -> int:
    """toolUsePromptTokenCount of the fake's last grounded answer (the text of its chunks)."""
    documents = fake_gemini.file_search.documents()
    found = fake_gemini.file_search.ground([documents[0].name.split("/documents/")[0]], QUESTION)
    return found.tool_tokens


def test_nothing_found_is_a_refusal_without_sources(uploaded, fs_settings):
    record = Backend.build(fs_settings).chain.ask("Zebra xylophone quartz?")
    assert record.answer == "The documents do not say." and record.sources == [] and record.citations == []


def test_a_question_restricted_to_a_source_sends_a_metadata_filter(uploaded, fs_settings):
    tool = FileSearchStores(fs_settings).tool("corpus", 4, ["sub/limits.pdf", "guide.md"])
    assert tool.stores == (uploaded.store,) and tool.top_k == 4
    assert tool.metadata_filter == 'source = "sub/limits.pdf" OR source = "guide.md"'


def test_a_collection_never_uploaded_is_a_clear_error(uploaded, fs_settings):
    with pytest.raises(ConfigError, match="'other' has not been uploaded to File Search"):
        FileSearchStores(fs_settings).tool("other")


def test_cli_ask_with_file_search_prints_pages(uploaded, fs_settings, fake_gemini, monkeypatch, capsys):
    from rag.settings import get_settings

    for name, value in {"GEMRAG_API_KEY": fs_settings.api_key.get_secret_value(), "GEMRAG_BASE_URL": fake_gemini.url,
                        "GEMRAG_DATA_DIR": str(fs_settings.data_dir), "GEMRAG_CHECK_MODELS": "false"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        assert rag_main(["ask", QUESTION, "--backend", "file-search"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "[1]" in out and " *[1] sub/limits.pdf p. 1" in out


def test_file_search_without_a_key_is_a_one_line_error(settings, monkeypatch, capsys):
    from rag.settings import get_settings

    monkeypatch.setenv("GEMRAG_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        assert rag_main(["ask", "anything", "--backend", "file-search"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'backend "file-search" needs a Gemini API key' in err


def test_describe_shows_file_search_sources(uploaded, fs_settings):
    record = Backend.build(fs_settings).chain.ask(QUESTION)
    assert " *[1] sub/limits.pdf p. 1" in describe(record)
