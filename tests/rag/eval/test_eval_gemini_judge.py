"""A Gemini-judged run against the fake server: the judge is asked with the fixed rubric
for a JSON verdict, and its scores (not the lexical proxy) reach the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag.eval.checkpoint import Checkpoint
from rag.eval.configs import EvalConfig
from rag.eval.judge import RUBRIC, parse_verdict
from rag.eval.results import AnswerScores
from rag.eval.runner import Evaluator, Plan
from rag.eval.testset import load_testset
from rag.providers import get_generator
from rag.refusal import NOT_IN_DOCUMENTS
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini, Fault, GenerateRequest, RecordedRequest
from rag.types import Usage
from tests.fakes.eval_cases import CASES, write_testset


def grading_responder(request: GenerateRequest) -> str:
    """As the answerer, the first sentence of source 1, cited; as the judge, faithful when the
    answer cites a source and correct when it has a number of the reference."""
    first_source = re.search(r'<source n="1"[^>]*>\n(.+?)(?<=[.!?])', request.last_user_text, re.DOTALL)
    if request.system != RUBRIC:
        return f"{first_source.group(1)} [1]" if first_source else NOT_IN_DOCUMENTS
    assert request.json_output
    graded = request.last_user_text.split("Answer to grade:", 1)[1]
    reference = request.last_user_text.split("Reference answer:", 1)[1].split("Sources:", 1)[0]
    numbers = {w for w in reference.split() if w.strip(".").isdigit()}
    return json.dumps({
        "faithfulness": 1.0 if "[1]" in graded else 0.0,
        "correctness": 1.0 if any(n.strip(".") in graded for n in numbers) else 0.5,
        "reason": "graded by the fake",
    })


def _judged(fake_gemini: FakeGemini) -> list[RecordedRequest]:
    """The judge's calls: those with the rubric as their system instruction."""
    return [c for c in fake_gemini.calls("generateContent")
            if c.body.get("systemInstruction", {}).get("parts", [{}])[0].get("text") == RUBRIC]


@pytest.mark.slow
def test_gemini_judged_run(fake_gemini: FakeGemini, gemini_settings: Settings, tmp_path: Path) -> None:
    from tests.fakes.tiny_corpus import build_store

    fake_gemini.responder = grading_responder
    provider = get_generator(gemini_settings)
    assert provider.online
    store = build_store(gemini_settings, provider, name="eval-tiny")
    testset = load_testset(write_testset(tmp_path / "t.jsonl", CASES[:3]))
    evaluator = Evaluator(gemini_settings, provider, store, Checkpoint(tmp_path / "out"))

    report = evaluator.run(Plan(testset, [EvalConfig("hybrid", 3, False)], workers=2))

    row = report.answers[0]
    assert row.errors == 0 and row.judge == "gemini"
    assert row.faithfulness == 1.0 and row.citation_precision == 1.0  # answers cite and quote [1]
    assert row.correctness == (1.0 + 1.0 + 0.5) / 3  # 25 days and 90 days found; the 429 answer has no number
    assert row.routes == {"flash": 3}
    assert row.cost_total_usd > 0 and row.judge_cost_usd > 0
    judged = _judged(fake_gemini)
    assert len(judged) == 3
    assert all(c.body["generationConfig"]["responseMimeType"] == "application/json" for c in judged)
    # Gemini 3 judges think at the cheap-step level instead of taking a temperature.
    assert all("temperature" not in c.body["generationConfig"] for c in judged)
    assert all(c.body["generationConfig"]["thinkingConfig"] for c in judged)


def _impatient_run(
    fake_gemini: FakeGemini, gemini_settings: Settings, tmp_path: Path
) -> tuple[Evaluator, AnswerScores]:
    """One case answered and judged by a client that stops waiting for a reply after a second
    (the fake's slow replies take 1.5 s); the judge is the only call to the cheap model."""
    from tests.fakes.tiny_corpus import build_store

    settings = gemini_settings.model_copy(update={"request_timeout_s": 1.0})
    fake_gemini.responder = grading_responder
    provider = get_generator(settings)
    store = build_store(settings, provider, name="eval-tiny")
    evaluator = Evaluator(settings, provider, store, Checkpoint(tmp_path / "out"))
    report = evaluator.run(Plan(load_testset(write_testset(tmp_path / "t.jsonl", CASES[:1])),
                                [EvalConfig("hybrid", 3, False)], workers=1))
    [scores] = report.answer_cases
    return evaluator, scores


def test_a_judge_attempt_abandoned_on_timeout_is_charged_though_its_retry_answered(
    fake_gemini: FakeGemini, gemini_settings: Settings, tmp_path: Path
) -> None:
    """Google may serve and bill a call the client stopped waiting for: the judge's retry was
    priced in the report, the attempt before it nowhere, and neither was in the ledger."""
    lite = gemini_settings.lite_model
    fake_gemini.inject(Fault.slow(1.5), times=1, method="generateContent", model=lite)

    evaluator, scores = _impatient_run(fake_gemini, gemini_settings, tmp_path)

    assert scores.error == "" and scores.faithfulness == 1.0 and len(_judged(fake_gemini)) == 2
    billed = fake_gemini.billed_for(lite, count=2)
    spent = evaluator.chain.ledger.models(evaluator.session)[lite]
    assert (len(billed), spent.calls) == (2, 2)
    assert spent.usage.prompt_tokens == pytest.approx(sum(b.prompt_tokens for b in billed), rel=0.25)
    assert spent.usage.output_tokens == billed[-1].output_tokens  # the abandoned attempt's output is unknown
    assert scores.judge_cost_usd == pytest.approx(spent.cost_usd)


def test_a_judge_that_timed_out_on_every_attempt_fails_its_case_and_each_attempt_is_charged(
    fake_gemini: FakeGemini, gemini_settings: Settings, tmp_path: Path
) -> None:
    lite = gemini_settings.lite_model
    fake_gemini.inject(Fault.slow(1.5), times=None, method="generateContent", model=lite)

    evaluator, scores = _impatient_run(fake_gemini, gemini_settings, tmp_path)

    assert "no answer before the request timeout" in scores.error
    attempts = len(_judged(fake_gemini))
    billed = fake_gemini.billed_for(lite, count=attempts)
    spent = evaluator.chain.ledger.models(evaluator.session)[lite]
    assert attempts >= 2 and (spent.calls, spent.usage.output_tokens) == (attempts, 0)
    assert spent.usage.prompt_tokens == pytest.approx(sum(b.prompt_tokens for b in billed), rel=0.25)
    assert evaluator.chain.ledger.session(evaluator.session).held_usd == 0  # the hold is settled


def test_unparseable_verdict_leaves_scores_undefined() -> None:
    verdict = parse_verdict("I think it is fine.", Usage(), "gemini-3.8-flash")
    assert verdict.faithfulness is None and verdict.correctness is None
    assert "not a JSON verdict" in verdict.reason
    fenced = parse_verdict('```json\n{"faithfulness": 1.7, "correctness": 0.5}\n```', Usage(), "m")
    assert (fenced.method, fenced.faithfulness, fenced.correctness) == ("gemini", 1.0, 0.5)
    lexical = parse_verdict('{"method": "lexical", "faithfulness": 0.8}', Usage(), "offline")
    assert (lexical.method, lexical.correctness) == ("lexical", None)
