"""`python -m rag.eval TESTSET --corpus DIR --compare backend=gemrag,file-search` against the
fake Gemini server on a socket: the corpus is uploaded to File Search once, and both backends
answer every case, with quality, citation checks, latency and cost per right answer side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.eval.cli import main
from rag.eval.configs import EvalConfig, parse_compare
from rag.eval.results import RunReport
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.eval_cases import write_testset
from tests.ingest.fake_embedder import FakeEmbedder
from tests.rag.eval.test_eval_cli import CASES, DOCS  # the same small corpus and cases

GEMRAG, FILE_SEARCH = "hybrid+local k=6", "file-search k=6"


@pytest.fixture
def online(fake_gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch, gemini_settings: Settings) -> FakeGemini:
    for name, value in {"GEMRAG_API_KEY": gemini_settings.api_key.get_secret_value(),  # type: ignore[union-attr]
                        "GEMRAG_BASE_URL": fake_gemini.url, "GEMRAG_CHECK_MODELS": "false",
                        "GEMRAG_FILE_SEARCH_POLL_S": "0", "GEMRAG_TIER": "unlimited"}.items():
        monkeypatch.setenv(name, value)
    return fake_gemini


def run(tmp_path: Path, *extra: str) -> int:
    corpus = tmp_path / "docs"
    corpus.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    testset = tmp_path / "t.jsonl"
    write_testset(testset, CASES)
    args = [str(testset), "--corpus", str(corpus), "--data-dir", str(tmp_path / "data"),
            "--out", str(tmp_path / "out"), "-q", "--workers", "2", *extra]
    return main(args, embedder=FakeEmbedder())


def test_compare_backends_prints_both_rows_and_uploads_once(tmp_path, online, capsys):
    assert run(tmp_path, "--compare", "backend=gemrag,file-search") == 0
    out = capsys.readouterr().out
    assert "File Search store fileSearchStores/gemrag-eval-docs-" in out and "3 uploaded" in out
    for table in ("Answers (quality)", "Answers (grounding", "Answers (latency and cost"):
        section = out.split(table, 1)[1].split("Answers", 1)[0]
        assert GEMRAG in section and FILE_SEARCH in section
    report = RunReport.load(tmp_path / "out" / "report.json")
    rows = {a.config: a for a in report.answers}
    assert set(rows) == {GEMRAG, FILE_SEARCH}
    searched = rows[FILE_SEARCH]
    assert searched.cases == 3 and searched.errors == 0
    assert searched.citation_precision == 1.0 and searched.citation_recall == 1.0  # grounding cited the right files
    assert searched.refusal_accuracy == 1.0 and searched.correct == 3  # two found, one refused
    assert searched.cost_per_correct_usd == pytest.approx(searched.cost_total_usd / 3) and searched.cost_total_usd > 0
    assert searched.latency_p50_s is not None and searched.supported_citations == 1.0
    cases = [c for c in report.answer_cases if c.config == FILE_SEARCH]
    assert {c.case_id: c.answer for c in cases}["badge"].endswith("[1].")
    assert [r.variant for r in report.retrieval if r.variant.startswith("file-search")] == []  # no retrieval-only call
    assert json.loads((tmp_path / "out" / "report.json").read_text())["notes"] == [n for n in report.notes]
    # The answer calls of the File Search rows carried the tool; the gemrag rows did not.
    tools = [r.body.get("tools") for r in online.calls("streamGenerateContent")]
    assert sum(t is not None for t in tools) == 3 and sum(t is None for t in tools) == 3


def test_a_second_run_uploads_nothing(tmp_path, online, capsys):
    assert run(tmp_path, "--compare", "backend=gemrag,file-search") == 0
    capsys.readouterr()
    assert run(tmp_path, "--compare", "backend=gemrag,file-search", "--fresh") == 0
    assert "0 uploaded, 0 replaced, 0 deleted, 3 unchanged" in capsys.readouterr().out
    assert len(online.file_search.uploaded) == 3


def test_file_search_without_a_key_is_one_line(tmp_path, capsys):
    assert run(tmp_path, "--compare", "backend=gemrag,file-search") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GEMINI_API_KEY" in err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").glob("chroma*"))


def test_an_unknown_backend_is_refused(tmp_path, capsys):
    assert run(tmp_path, "--compare", "backend=elastic") == 2
    assert "backend must be one of gemrag, file-search, got 'elastic'" in capsys.readouterr().err


def test_file_search_configurations_differ_only_by_k() -> None:
    settings = Settings(api_key=None)
    configs = parse_compare(["backend=gemrag,file-search", "mode=vector,bm25", "k=4"], settings)
    assert [c.label for c in configs] == ["vector k=4", "bm25 k=4", "file-search k=4"]
    assert EvalConfig("hybrid", 4, False, "none", "file-search").retrieval_label == ""
