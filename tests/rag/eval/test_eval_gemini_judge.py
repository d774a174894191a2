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
from rag.eval.runner import Evaluator, Plan
from rag.eval.testset import load_testset
from rag.providers import get_generator
from rag.refusal import NOT_IN_DOCUMENTS
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini, GenerateRequest
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
    judged = [c for c in fake_gemini.calls("generateContent")
              if c.body.get("systemInstruction", {}).get("parts", [{}])[0].get("text") == RUBRIC]
    assert len(judged) == 3
    assert all(c.body["generationConfig"]["responseMimeType"] == "application/json" for c in judged)
    # Gemini 3 judges think at the cheap-step level instead of taking a temperature.
    assert all("temperature" not in c.body["generationConfig"] for c in judged)
    assert all(c.body["generationConfig"]["thinkingConfig"] for c in judged)


def test_unparseable_verdict_leaves_scores_undefined() -> None:
    verdict = parse_verdict("I think it is fine.", Usage(), "gemini-3.8-flash")
    assert verdict.faithfulness is None and verdict.correctness is None
    assert "not a JSON verdict" in verdict.reason
    fenced = parse_verdict('```json\n{"faithfulness": 1.7, "correctness": 0.5}\n```', Usage(), "m")
    assert (fenced.method, fenced.faithfulness, fenced.correctness) == ("gemini", 1.0, 0.5)
    lexical = parse_verdict('{"method": "lexical", "faithfulness": 0.8}', Usage(), "offline")
    assert (lexical.method, lexical.correctness) == ("lexical", None)
