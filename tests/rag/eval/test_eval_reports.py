"""Configurations, the regression gate, the JSON round trip and the HTML report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.eval.configs import EvalConfig, parse_compare, retrieval_variants
from rag.eval.gate import compare
from rag.eval.html import render
from rag.eval.results import AnswerScores, RetrievalScores, RunReport, answer_row, retrieval_row
from rag.settings import Settings


def scores(case_id: str, *, f1: float, refused: bool = False, unanswerable: bool = False,
           latency: float = 1.0, answer: str = "25 days [1]") -> AnswerScores:
    return AnswerScores(
        case_id=case_id, config="hybrid k=6", answer=answer, unanswerable=unanswerable, tags=["t"],
        exact_match=0.0, token_f1=None if unanswerable else f1, citation_precision=1.0, citation_recall=0.5,
        refused=refused, faithfulness=0.9, correctness=None, judge="lexical", route="offline", cost_usd=0.01,
        judge_cost_usd=0.0, latency_s=latency, ttft_s=0.1,
    )


def report(recall: float = 0.8, f1: float = 0.6, answer: str = "25 days [1]") -> RunReport:
    retrieval = [RetrievalScores("a", "hybrid k=6", 1.0, recall, 1.0, 0.9)]
    answers = [scores("a", f1=f1, answer=answer, latency=1.0),
               scores("b", f1=f1, latency=3.0),
               scores("c", f1=0.0, refused=True, unanswerable=True, latency=2.0)]
    return RunReport(
        testset="t", provider="offline", collection="eval-corpus", corpus_version=1, started="now", cases=3,
        workers=1, problems=["line 9: <b>bad</b>"], retrieval=[retrieval_row("hybrid k=6", retrieval)],
        answers=[answer_row("hybrid k=6", answers)], retrieval_cases=retrieval, answer_cases=answers,
    )


def test_compare_builds_every_combination_from_settings_defaults() -> None:
    settings = Settings(retrieval_mode="hybrid", top_k=6, mmr=False, rerank="none")
    assert parse_compare([], settings) == [EvalConfig("hybrid", 6, False)]
    configs = parse_compare(["k=4,8", "mode=vector,bm25"], settings)
    assert [c.label for c in configs] == ["vector k=4", "bm25 k=4", "vector k=8", "bm25 k=8"]
    assert parse_compare(["mmr=on,off"], settings) == [EvalConfig("hybrid", 6, True), EvalConfig("hybrid", 6, False)]
    assert [v.label for v in retrieval_variants(configs)][:2] == ["hybrid k=4", "hybrid+mmr k=4"]
    assert len(retrieval_variants(configs)) == 12
    reranked = parse_compare(["rerank=none,local"], settings)
    assert [c.label for c in reranked] == ["hybrid k=6", "hybrid+local k=6"]
    assert [v.label for v in retrieval_variants(reranked)][:4] == [
        "hybrid k=6", "hybrid+mmr k=6", "hybrid+local k=6", "hybrid+local+mmr k=6"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [("k=0", "positive integer"), ("mode=dense", "mode must be one of"), ("mmr=maybe", "on or off"),
     ("temperature=1", "expected one of"), ("k=", "expected one of"),
     ("rerank=cohere", "rerank must be one of")],
)
def test_bad_compare_spec_is_a_clear_error(spec: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_compare([spec], Settings())


def test_answer_row_aggregates_by_hand() -> None:
    row = report().answers[0]
    assert row.token_f1 == pytest.approx(0.6)  # the unanswerable case has no F1
    assert row.refusal_accuracy == 1.0 and row.false_refusals == 0.0
    assert row.latency_p50_s == 2.0 and row.latency_p95_s == pytest.approx(2.9)
    assert row.cost_total_usd == pytest.approx(0.03)
    assert row.routes == {"offline": 3}


def test_gate_passes_within_max_drop_and_fails_beyond(tmp_path: Path) -> None:
    baseline = RunReport.load(report().save(tmp_path / "base.json"))
    ok = compare(report(recall=0.79, f1=0.59), baseline, max_drop=0.02)
    assert ok.passed and {d.metric for d in ok.differences} >= {"retrieval hybrid k=6 / recall",
                                                               "answers hybrid k=6 / token_f1"}
    bad = compare(report(recall=0.7, f1=0.65), baseline, max_drop=0.02)
    assert not bad.passed
    assert [d.metric for d in bad.regressions] == ["retrieval hybrid k=6 / recall"]
    assert bad.regressions[0].delta == pytest.approx(-0.1)


def test_gate_lists_metrics_the_current_run_no_longer_measures() -> None:
    current = report()
    current.answers = [replace(current.answers[0], config="bm25 k=6")]
    result = compare(current, report(), max_drop=0.02)
    assert "answers hybrid k=6 / token_f1" in result.only_in_baseline


def test_html_escapes_document_text_and_embeds_plots() -> None:
    page = render(report(answer="<script>alert('x')</script> 25 days [1]"))
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "&lt;b&gt;bad&lt;/b&gt;" in page
    assert page.count("data:image/png;base64,") == 3
