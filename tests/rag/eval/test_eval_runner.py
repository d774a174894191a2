"""The runner on the tiny corpus, offline: every variant scored, answers judged lexically,
finished units checkpointed and skipped on a rerun."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.eval.checkpoint import Checkpoint
from rag.eval.configs import EvalConfig
from rag.eval.metrics import mean
from rag.eval.runner import Evaluator, Plan
from rag.eval.testset import load_testset
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from tests.fakes.eval_cases import CASES, write_testset

CONFIG = EvalConfig("hybrid", 3, False)


@pytest.mark.slow
def test_offline_run_scores_every_variant_and_answer(evaluator: Evaluator, tmp_path: Path) -> None:
    testset = load_testset(write_testset(tmp_path / "t.jsonl"))
    report = evaluator.run(Plan(testset, [CONFIG], workers=2))

    assert [r.variant for r in report.retrieval] == [
        "hybrid k=3", "hybrid+mmr k=3", "vector k=3", "vector+mmr k=3", "bm25 k=3", "bm25+mmr k=3"]
    assert all(r.cases == 4 for r in report.retrieval)  # the unanswerable case has no relevant set
    by_case = {s.case_id: s for s in report.retrieval_cases if s.variant == "hybrid k=3"}
    assert by_case["vacation"].hit == 1.0 and by_case["vacation"].retrieved[0] == "handbook.pdf#2"
    assert by_case["follow"].hit == 1.0  # the rewrite carried the subject of the earlier question

    row = report.answers[0]
    assert row.config == "hybrid k=3" and row.cases == 5 and row.errors == 0
    assert row.judge == "lexical"
    assert row.routes == {"offline": 5}
    answers = {a.case_id: a for a in report.answer_cases}
    assert answers["unknown"].refused and row.refusal_accuracy == 1.0
    assert answers["unknown"].token_f1 is None and answers["unknown"].faithfulness is None
    # The reference whole (all its words), beside the next sentence of its passage: F1 0.5.
    assert answers["vacation"].citation_recall == 1.0 and answers["vacation"].answer_in_reply == 1.0
    assert answers["vacation"].token_f1 >= 0.5
    assert answers["vacation"].faithfulness > 0.8  # the extractive answer quotes its sources
    assert answers["vacation"].evidence_in_reply == 1.0 and answers["vacation"].evidence_in_top3 == 1.0
    assert answers["rotate"].evidence_in_reply is None  # no quote: not scored
    assert row.evidence_in_reply == mean([answers[i].evidence_in_reply for i in ("vacation", "retry")])

    tags = {t.tag: t for t in report.tags}
    assert set(tags) == {"page", "follow-up", "unanswerable"}
    assert tags["page"].cases == 1 and tags["page"].recall == by_case["vacation"].recall
    assert tags["unanswerable"].refused == 1.0 and tags["unanswerable"].recall is None
    assert tags["page"].evidence_in_reply == 1.0 and tags["unanswerable"].evidence_in_reply is None


@pytest.mark.slow
def test_resume_skips_finished_units(
    settings: Settings, offline_provider: OfflineProvider, tiny_store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = Evaluator(settings, offline_provider, tiny_store, Checkpoint(out))
    first.run(Plan(load_testset(write_testset(tmp_path / "part.jsonl", CASES[:2])), [CONFIG]))  # "interrupted"

    again = Evaluator(settings, offline_provider, tiny_store, Checkpoint(out))
    asked = spy_on_ask(again)
    searched: list[str] = []
    real_search = again.search
    again.search = lambda q, *a: searched.append(q) or real_search(q, *a)  # type: ignore[method-assign]
    report = again.run(Plan(load_testset(write_testset(tmp_path / "full.jsonl")), [CONFIG]))

    done_before = {CASES[0]["question"], CASES[1]["question"]}
    assert len(asked) == 3 and not done_before & set(asked)
    assert searched and not done_before & set(searched)
    assert report.answers[0].cases == 5 and report.retrieval[0].cases == 4  # old and new units together


def test_interrupted_run_keeps_finished_answers_and_resumes(
    settings: Settings, offline_provider: OfflineProvider, tiny_store: Store, tmp_path: Path
) -> None:
    testset = load_testset(write_testset(tmp_path / "t.jsonl", CASES[:3]))
    plan = Plan(testset, [CONFIG], workers=1)
    first = Evaluator(settings, offline_provider, tiny_store, Checkpoint(tmp_path / "out"))
    first_asked = spy_on_ask(first)
    finished = 0

    def ctrl_c_after_first_answer(n: int) -> None:  # progress runs in the main thread, as Ctrl-C does
        nonlocal finished
        finished += n
        if finished == 4:  # three retrieval units, then one answer
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        first.run(plan, ctrl_c_after_first_answer)
    assert 1 <= len(first_asked) < 3  # units not started yet were dropped

    again = Evaluator(settings, offline_provider, tiny_store, Checkpoint(tmp_path / "out"))
    asked = spy_on_ask(again)
    report = again.run(plan)
    assert sorted(asked) == sorted({c["question"] for c in CASES[:3]} - set(first_asked))
    assert report.answers[0].cases == 3 and report.answers[0].errors == 0


def spy_on_ask(evaluator: Evaluator) -> list[str]:
    asked: list[str] = []
    real = evaluator.chain.ask
    evaluator.chain.ask = lambda q, *a, **kw: asked.append(q) or real(q, *a, **kw)  # type: ignore[method-assign]
    return asked


def test_changed_configuration_is_not_served_from_the_checkpoint(evaluator: Evaluator, tmp_path: Path) -> None:
    testset = load_testset(write_testset(tmp_path / "t.jsonl", CASES[:1]))
    evaluator.run(Plan(testset, [CONFIG]))
    asked = spy_on_ask(evaluator)
    evaluator.run(Plan(testset, [EvalConfig("bm25", 3, False)]))
    assert asked == [CASES[0]["question"]]


def test_cut_short_checkpoint_line_is_run_again(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path)
    checkpoint.add("a", {"x": 1})
    with checkpoint.path.open("a") as out:
        out.write('{"key": "b", "payl')
    assert Checkpoint(tmp_path).done == {"a": {"x": 1}}


def test_the_passages_an_answer_was_scored_on_are_those_retrieval_showed(
    settings: Settings, offline_provider: OfflineProvider, tmp_path: Path
) -> None:
    """The top-3 ceilings read the passages with their leads (rag.sentences), as the answer did."""
    from rag.answer import AnswerRecord, Citation, Route
    from rag.types import Chunk, Usage

    text = "Storage price\nExplicit caches are billed per hour: $1.00 for Gemini\n2.5 Flash, and $4.50 for Pro.\n"
    start = text.index("2.5 Flash")
    chunk = Chunk(id="price", text=text[start:], source="caching.pdf", index=1, start=start, end=len(text),
                  content_hash="h", page=2, lead="Explicit caches are billed per hour: $1.00 for Gemini\n")
    store = Store(settings, offline_provider.embedding_id, "eval-leads")
    store.upsert([chunk], offline_provider.embed_documents([chunk.text]).vectors)
    evaluator = Evaluator(settings, offline_provider, store, Checkpoint(tmp_path / "out"))
    source = Citation(n=1, chunk_id="price", source="caching.pdf", page=2, heading="", snippet="2.5 Flash", score=1.0)
    record = AnswerRecord(question="q", standalone_question="q", answer="a", citations=[], sources=[source],
                          route=Route("offline", "offline-extractive", ""), usage=Usage())
    (shown,) = evaluator.shown(record)
    assert shown.text == chunk.lead + chunk.text


def test_each_evaluation_charges_a_session_of_its_own_and_names_it(
    settings: Settings, offline_provider: OfflineProvider, tiny_store: Store, tmp_path: Path
) -> None:
    """Every evaluation's answers went to the session "" (Chain.ask's default): one session
    budget shared by every evaluation ever run, so with a key, once past it every case failed
    as refused; `rag costs` showed them as a row without a name."""
    testset = load_testset(write_testset(tmp_path / "t.jsonl", CASES[:1]))
    runs = [Evaluator(settings, offline_provider, tiny_store, Checkpoint(tmp_path / f"out{i}")) for i in range(2)]
    reports = [run.run(Plan(testset, [CONFIG], workers=1)) for run in runs]

    sessions = runs[0].chain.ledger.sessions()
    assert "" not in sessions and runs[0].session != runs[1].session
    for run, report in zip(runs, reports, strict=True):
        assert run.session.startswith("eval-") and sessions[run.session].answers == 1
        assert f"python -m rag costs --session {run.session}" in " ".join(report.notes)
