"""`python -m rag.eval` end to end, offline: ingest a corpus, write the three outputs, report
bad lines, resume, and fail the regression gate on a planted regression."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag.eval.cli import main
from rag.eval.results import RunReport
from rag.providers.offline import OfflineProvider
from tests.fakes.eval_cases import write_testset

DOCS = {
    "vacation.md": "# Vacation\n\nEmployees receive 25 days of paid vacation per year. Unused days can be "
                   "carried over until the end of March.\n",
    "retries.md": "# Retries\n\nWhen the API answers HTTP 429, wait for the suggested retry delay and retry "
                  "with exponential backoff. Never retry more than five times.\n",
    "badge.md": "# Building\n\nError code E4711 means the badge reader at the north entrance is offline.\n",
}
CASES = [
    {"id": "vacation", "question": "How many days of paid vacation do employees get?",
     "reference_answer": "25 days of paid vacation per year.", "relevant": [{"source": "vacation.md"}]},
    {"id": "badge", "question": "What does error code E4711 mean?",
     "reference_answer": "The badge reader at the north entrance is offline.",
     "relevant": [{"source": "badge.md"}]},
    {"id": "none", "question": "Which football team won the 1954 final in Bern?", "relevant": [],
     "tags": ["unanswerable"]},
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    (root / "notes.jsonl").write_text("{}\n")  # not a document type: skipped, not a failure
    return root


def run(tmp_path: Path, corpus: Path, provider: OfflineProvider, *extra: str, out: str = "out") -> int:
    testset = tmp_path / "t.jsonl"
    if not testset.exists():
        write_testset(testset, CASES, extra_lines=('{"question": "no closing brace"',))
    args = [str(testset), "--corpus", str(corpus), "--data-dir", str(tmp_path / "data"),
            "--out", str(tmp_path / out), "-q", "--workers", "2", *extra]
    return main(args, embedder=provider, generator=provider)


def test_writes_json_html_and_table_and_reports_bad_lines(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, corpus, offline_provider) == 0
    report = RunReport.load(tmp_path / "out" / "report.json")
    assert report.collection == "eval-docs"
    assert report.cases == 3
    assert report.problems == ["t.jsonl line 4: not valid JSON (Expecting ',' delimiter at column 32)"]
    hybrid = next(r for r in report.retrieval if r.variant == "hybrid k=6")
    assert hybrid.hit == 1.0 and hybrid.cases == 2
    assert report.answers[0].refusal_accuracy == 1.0 and report.answers[0].judge == "lexical"
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "lexical" in page
    # Each answer beside what was asked and expected, and what it cited: a failure is read in the report alone.
    badge = next(c for c in report.answer_cases if c.case_id == "badge")
    assert (badge.question, badge.expected) == (CASES[1]["question"], CASES[1]["reference_answer"])
    assert badge.cited == ["badge.md"] and badge.answer_in_reply == 1.0
    assert next(c for c in report.answer_cases if c.case_id == "none").expected.startswith("(a refusal")
    assert "What does error code E4711 mean?</td>" in page and "<td class='text'>badge.md</td>" in page
    captured = capsys.readouterr()
    shown = captured.out
    assert "skipped t.jsonl line 4: not valid JSON" in shown
    assert "warning: 1 skipped (test-set lines or corpus files" in captured.err  # where a CI log reads warnings
    assert "Retrieval" in shown and "report.html" in shown


def test_a_label_the_collection_cannot_hold_is_named_before_it_scores_zero(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    """A test set written before its folder was reorganised ("py/json.html" is now
    "python/json.html"), or with a page past the file's end, scored 0 on retrieval for those
    cases with nothing saying why."""
    write_testset(tmp_path / "t.jsonl", [
        {**CASES[0], "relevant": [{"source": "old/vacation.md"}]},
        {**CASES[1], "relevant": [{"source": "badge.md", "page": 3}]},
        CASES[2],
    ])
    assert run(tmp_path, corpus, offline_provider, "--retrieval-only") == 0
    warnings = [
        "warning: case vacation: collection 'eval-docs' holds no file 'old/vacation.md'; "
        "that label can never be retrieved",
        "warning: case badge: collection 'eval-docs' holds no text of page 3 of 'badge.md'; "
        "that label can never be retrieved",
    ]
    shown = capsys.readouterr().out
    assert all(w in shown for w in warnings), shown
    assert RunReport.load(tmp_path / "out" / "report.json").notes == warnings


def test_in_a_log_the_ingest_and_the_cases_show_progress_lines(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    """stderr not a terminal (CI, `| tee`): the bars are not drawn, and nothing said the
    evaluation was at work until its tables, minutes later on a real test set."""
    write_testset(tmp_path / "t.jsonl", CASES)
    args = [str(tmp_path / "t.jsonl"), "--corpus", str(corpus), "--data-dir", str(tmp_path / "data"),
            "--out", str(tmp_path / "out"), "--workers", "1"]
    assert main(args, embedder=offline_provider, generator=offline_provider) == 0
    err = capsys.readouterr().err
    assert re.search(r"^progress \d+ s: \d+ of 3 files, \d+ of \d+ chunks so far, reading \S+$", err, re.M), err
    assert re.search(r"^progress \d+ s: 1 retrieval and answer steps done for 3 cases$", err, re.M), err
    assert main([*args, "--fresh", "-q"], embedder=offline_provider, generator=offline_provider) == 0
    assert "progress" not in capsys.readouterr().err


def test_rerun_resumes_from_the_checkpoint(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(tmp_path, corpus, offline_provider) == 0
    monkeypatch.setattr("rag.chain.Chain.ask", lambda *a, **kw: pytest.fail("a finished case ran again"))
    assert run(tmp_path, corpus, offline_provider) == 0
    assert RunReport.load(tmp_path / "out" / "report.json").answers[0].cases == 3


@pytest.mark.slow
def test_gate_fails_on_a_planted_regression(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, corpus, offline_provider, out="before") == 0
    baseline = tmp_path / "before" / "report.json"
    assert run(tmp_path, corpus, offline_provider, "--baseline", str(baseline), out="same") == 0

    # The regression: the badge document loses its answer, as a broken loader might cause.
    (corpus / "badge.md").write_text("# Building\n\nThe north entrance is open on weekdays.\n")
    assert run(tmp_path, corpus, offline_provider, "--baseline", str(baseline), out="after") == 1
    err = capsys.readouterr().err
    assert "regression" in err
    page = (tmp_path / "after" / "report.html").read_text()
    assert "REGRESSION" in page

    # Nothing compared was a pass: other configurations than the baseline's, or other cases.
    assert run(tmp_path, corpus, offline_provider, "--baseline", str(baseline), "--compare", "k=4", out="k4") == 2
    assert "measured none of this run's headline metrics" in capsys.readouterr().err
    write_testset(tmp_path / "t.jsonl", CASES[:1])
    run(tmp_path, corpus, offline_provider, "--baseline", str(baseline), out="fewer")
    assert RunReport.load(tmp_path / "fewer" / "report.json").notes[-1:] == [
        "warning: the baseline was measured on other cases (1 of this run's 1 in common, of its 3): its "
        "differences say little about a change"]


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.jsonl").write_text("not json\n")
    assert run(tmp_path, corpus, offline_provider) == 2
    err = capsys.readouterr().err
    assert "has no valid case: t.jsonl line 1: not valid JSON" in err and "Traceback" not in err
    assert not (tmp_path / "data" / "chroma").exists()  # said before the corpus was ingested, not after
    write_testset(tmp_path / "t.jsonl", CASES)
    assert run(tmp_path, tmp_path / "missing", offline_provider) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(tmp_path, corpus, offline_provider, "--compare", "k=0") == 2
    assert "k must be a positive integer" in capsys.readouterr().err
    assert run(tmp_path, corpus, offline_provider, "--compare", "k=100") == 2  # every case failed on it
    assert "--compare k=100: answers take at most 50 passages" in capsys.readouterr().err
    (tmp_path / "base.json").write_text(json.dumps({"retrieval": []}))
    assert run(tmp_path, corpus, offline_provider, "--baseline", str(tmp_path / "base.json")) == 2
    assert "cannot read baseline" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert run(tmp_path, corpus, offline_provider, out="afile") == 2  # was exit 3, "unexpected FileExistsError"
    assert f"--out {tmp_path / 'afile'} is a file" in capsys.readouterr().err
    own = tmp_path / "out" / "report.json"
    assert run(tmp_path, corpus, offline_provider, "--baseline", str(own)) == 2  # it would overwrite its baseline
    assert "is the report this run writes" in capsys.readouterr().err
    for option, value, said in (("--max-drop", "-1", "not a number from 0 to 1"),
                                ("--workers", "0", "not a whole number of 1 or more")):
        with pytest.raises(SystemExit) as refused:  # argparse's own refusal: one line, exit 2
            run(tmp_path, corpus, offline_provider, option, value)
        assert refused.value.code == 2 and f"argument {option}: '{value}' is {said}" in capsys.readouterr().err


def test_compare_runs_configurations_side_by_side(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider
) -> None:
    assert run(tmp_path, corpus, offline_provider, "--compare", "k=1,2", "--compare", "mode=vector,bm25") == 0
    report = RunReport.load(tmp_path / "out" / "report.json")
    assert [a.config for a in report.answers] == ["vector k=1", "bm25 k=1", "vector k=2", "bm25 k=2"]
    # three modes and hybrid with the default second stage, with and without MMR, at k=1 and k=2
    assert len(report.retrieval) == 16
    assert all(a.cases == 3 for a in report.answers)


def test_compare_rerank_puts_the_second_stage_beside_the_fused_order(
    tmp_path: Path, corpus: Path, offline_provider: OfflineProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, corpus, offline_provider, "--compare", "rerank=none,local") == 0
    report = RunReport.load(tmp_path / "out" / "report.json")
    assert [a.config for a in report.answers] == ["hybrid k=6", "hybrid+local k=6"]
    assert {"hybrid k=6", "hybrid+local k=6", "vector k=6"} <= {r.variant for r in report.retrieval}
    assert "hybrid+local k=6" in capsys.readouterr().out
    assert run(tmp_path, corpus, offline_provider, "--compare", "rerank=cohere") == 2
    assert "rerank must be one of none, local, gemini" in capsys.readouterr().err
