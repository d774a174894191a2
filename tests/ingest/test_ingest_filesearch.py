"""Backend "file-search" at ingest, against the fake Gemini server on a socket: a collection's
files are uploaded to its File Search store once, by content hash; a re-run uploads nothing,
a changed file is replaced, a pruned one deleted, and indexing is charged to the ledger."""

from __future__ import annotations

import pytest

from ingest.cli import main
from ingest.filesearch import SESSION, collection_files, upload_collection
from ingest.pipeline import ingest_paths
from rag.costs import Ledger
from rag.testing.fake_gemini import FakeGemini

SOURCES = ["guide.md", "notes.txt", "runbook.html", "sub/limits.pdf"]


@pytest.fixture
def fs_settings(gemini_settings):
    return gemini_settings.model_copy(update={"file_search_poll_s": 0.0, "backend": "file-search"})


def _uploads(fake: FakeGemini) -> list[str]:
    return [r.path for r in fake.calls("fileSearch") if "uploadToFileSearchStore" in r.path]


def test_first_sync_uploads_every_file_with_its_hash_and_charges_indexing(corpus, fake, fs_settings, fake_gemini):
    ingest_paths([corpus.root], fs_settings, fake)
    synced = upload_collection(fs_settings, "corpus")
    assert sorted(synced.uploaded) == SOURCES and synced.replaced == synced.deleted == []
    documents = fake_gemini.file_search.documents()
    assert sorted(d.display_name for d in documents) == SOURCES
    assert {d.state for d in documents} == {"STATE_ACTIVE"}  # each upload's operation was polled to done
    hashes = {f.source: f.content_hash for f in collection_files(fs_settings, "corpus")}
    for document in documents:
        meta = {m["key"]: m["stringValue"] for m in document.custom_metadata}
        assert meta == {"source": document.display_name, "sha256": hashes[document.display_name]}
    pdf = next(d for d in documents if d.display_name == "sub/limits.pdf")
    assert pdf.mime_type == "application/pdf" and {c.page for c in pdf.chunks} == {1, 2, 3}
    # Indexing is billed at the embedding price, on the ledger, from the tokens ingest counted.
    tokens = sum(f.tokens for f in collection_files(fs_settings, "corpus"))
    price = fs_settings.models[fs_settings.embedding_model].price.input
    totals = Ledger(fs_settings).session(SESSION)
    assert synced.tokens == tokens > 0
    assert totals.cost_usd == pytest.approx(tokens * price / 1e6) == pytest.approx(synced.cost_usd)
    assert totals.calls == len(SOURCES) and totals.usage.prompt_tokens == tokens


def test_rerun_uploads_nothing(corpus, fake, fs_settings, fake_gemini):
    ingest_paths([corpus.root], fs_settings, fake)
    upload_collection(fs_settings, "corpus")
    fake_gemini.clear_log()
    synced = upload_collection(fs_settings, "corpus")
    assert synced.unchanged == len(SOURCES) and not synced.changed
    assert _uploads(fake_gemini) == [] and len(fake_gemini.file_search.uploaded) == len(SOURCES)
    assert Ledger(fs_settings).session(SESSION).calls == len(SOURCES)  # nothing charged again


def test_changed_file_is_replaced_and_pruned_file_deleted(corpus, fake, fs_settings, fake_gemini):
    ingest_paths([corpus.root], fs_settings, fake)
    upload_collection(fs_settings, "corpus")
    corpus.path("notes.txt").write_text("Plain notes, rewritten. The proxy now logs to a file.\n")
    corpus.path("runbook.html").unlink()
    ingest_paths([corpus.root], fs_settings, fake, prune=True)
    synced = upload_collection(fs_settings, "corpus")
    assert synced.uploaded == [] and synced.replaced == ["notes.txt"] and synced.deleted == ["runbook.html"]
    assert synced.unchanged == 2
    documents = {d.display_name: d for d in fake_gemini.file_search.documents()}
    assert sorted(documents) == ["guide.md", "notes.txt", "sub/limits.pdf"]  # one document per file, no copies
    assert "rewritten" in documents["notes.txt"].chunks[0].text
    assert fake_gemini.file_search.deleted == ["notes.txt", "runbook.html"]


def test_extra_copies_left_by_an_interrupted_run_are_removed(corpus, fake, fs_settings, fake_gemini):
    """File Search does not deduplicate: a copy uploaded twice (a run killed after its upload
    but before it could know) is cut back to one."""
    ingest_paths([corpus.root], fs_settings, fake)
    upload_collection(fs_settings, "corpus")
    store = fake_gemini.file_search.documents()[0].name.split("/documents/")[0]
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=fs_settings.api_key.get_secret_value(),
                          http_options=types.HttpOptions(base_url=fs_settings.base_url))
    hashes = {f.source: f.content_hash for f in collection_files(fs_settings, "corpus")}
    client.file_search_stores.upload_to_file_search_store(
        file_search_store_name=store, file=str(corpus.path("guide.md")),
        config={"display_name": "guide.md", "mime_type": "text/markdown", "custom_metadata": [
            {"key": "source", "string_value": "guide.md"}, {"key": "sha256", "string_value": hashes["guide.md"]}]})
    assert len(fake_gemini.file_search.documents()) == len(SOURCES) + 1
    synced = upload_collection(fs_settings, "corpus")
    assert synced.deleted == ["guide.md"] and synced.uploaded == synced.replaced == []
    assert len(fake_gemini.file_search.documents()) == len(SOURCES)


def test_cli_uploads_after_ingest_and_reports_it(corpus, fake, gemini_settings, fake_gemini, monkeypatch, capsys):
    monkeypatch.setenv("GEMRAG_API_KEY", gemini_settings.api_key.get_secret_value())
    monkeypatch.setenv("GEMRAG_BASE_URL", fake_gemini.url)
    monkeypatch.setenv("GEMRAG_FILE_SEARCH_POLL_S", "0")
    monkeypatch.setenv("GEMRAG_CHECK_MODELS", "false")
    argv = [str(corpus.root), "--data-dir", str(gemini_settings.data_dir), "--backend", "file-search", "-q"]
    assert main(argv, embedder=fake) == 0
    out = capsys.readouterr().out
    assert "4 uploaded, 0 replaced, 0 deleted, 0 unchanged" in out
    assert main(argv, embedder=fake) == 0
    assert "0 uploaded, 0 replaced, 0 deleted, 4 unchanged" in capsys.readouterr().out
    assert len(fake_gemini.file_search.uploaded) == 4


def test_file_search_without_a_key_is_one_line_and_ingests_nothing(corpus, fake, settings, capsys):
    argv = [str(corpus.root), "--data-dir", str(settings.data_dir), "--backend", "file-search", "-q"]
    assert main(argv, embedder=fake) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "file-search" in err and "GEMINI_API_KEY" in err
    assert fake.calls == []
