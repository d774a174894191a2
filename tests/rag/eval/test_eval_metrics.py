"""Every metric on cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from rag.eval.metrics import (
    Found,
    answer_body,
    citation_precision,
    citation_recall,
    exact_match,
    hit_at,
    is_refusal,
    mean,
    ndcg_at,
    percentile,
    recall_at,
    reciprocal_rank,
    token_f1,
)
from rag.eval.testset import Relevant
from rag.providers.extractive import OFFLINE_NOTE
from rag.refusal import NOT_FOUND

A, B, C = Found("a.md"), Found("b.md"), Found("c.md")
PDF2, PDF3 = Found("p.pdf", 2), Found("p.pdf", 3)


def test_hit_and_recall_count_each_relevant_entry_once() -> None:
    relevant = [Relevant(source="b.md"), Relevant(source="c.md")]
    ranked = [A, B, B, C]
    assert hit_at(ranked, relevant, 1) == 0.0
    assert hit_at(ranked, relevant, 2) == 1.0
    assert recall_at(ranked, relevant, 3) == 0.5  # b twice is still one of two entries
    assert recall_at(ranked, relevant, 4) == 1.0


def test_page_entry_matches_only_that_page_and_source_entry_any_page() -> None:
    assert hit_at([PDF3], [Relevant(source="p.pdf", page=2)], 1) == 0.0
    assert hit_at([PDF2], [Relevant(source="p.pdf", page=2)], 1) == 1.0
    assert hit_at([PDF3], [Relevant(source="p.pdf")], 1) == 1.0


def test_chunk_id_entry_matches_by_id_only() -> None:
    relevant = [Relevant(chunk_id="c7")]
    assert hit_at([Found("a.md", None, "c7")], relevant, 1) == 1.0
    assert hit_at([Found("a.md", None, "c8")], relevant, 1) == 0.0


def test_reciprocal_rank_is_one_over_first_relevant_rank() -> None:
    relevant = [Relevant(source="c.md")]
    assert reciprocal_rank([A, B, C], relevant) == pytest.approx(1 / 3)
    assert reciprocal_rank([A, B], relevant) == 0.0


def test_ndcg_by_hand() -> None:
    relevant = [Relevant(source="b.md"), Relevant(source="c.md")]
    # gains 0, 1, 1(again b: 0), 1 -> DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3)
    ranked = [A, B, B, C]
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at(ranked, relevant, 10) == pytest.approx(expected)
    assert ndcg_at([B, C], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at(ranked, relevant, 1) == 0.0


def test_graded_ndcg_prefers_the_higher_grade_first() -> None:
    relevant = [Relevant(source="a.md", grade=2), Relevant(source="b.md", grade=1)]
    # [b, a]: DCG = 1 + 2/log2(3); IDCG = 2 + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at([B, A], relevant) == pytest.approx(expected)
    assert ndcg_at([A, B], relevant) == pytest.approx(1.0)


def test_exact_match_normalises_case_punctuation_articles_and_citations() -> None:
    assert exact_match("The limit is 60 requests. [2]", "limit is 60 requests") == 1.0
    assert exact_match("60 requests", "61 requests") == 0.0


def test_token_f1_by_hand() -> None:
    # answer: "limit is 60 rpm per project" (6 tokens), reference "limit is 60 requests" (4)
    # common: limit, is, 60 -> P = 3/6, R = 3/4, F1 = 2*.5*.75/1.25 = 0.6
    assert token_f1("The limit is 60 RPM per project [1].", "The limit is 60 requests") == pytest.approx(0.6)
    assert token_f1("nothing shared", "limit") == 0.0
    assert token_f1("", "") == 1.0


def test_offline_note_is_not_scored_as_answer_text() -> None:
    answer = f"Based on your documents:\n\n- Quota is 60. [1]\n\n{OFFLINE_NOTE}"
    assert "Offline mode" not in answer_body(answer)
    assert token_f1(answer, "Based on your documents quota is 60") == 1.0


def test_citation_precision_and_recall_by_hand() -> None:
    relevant = [Relevant(source="a.md"), Relevant(source="p.pdf", page=2)]
    cited = [A, PDF3, A, C]  # distinct: a (ok), p3 (wrong page), c (wrong)
    assert citation_precision(cited, relevant) == pytest.approx(1 / 3)
    assert citation_recall(cited, relevant) == pytest.approx(1 / 2)
    assert citation_precision([], relevant) is None
    assert citation_recall([], relevant) == 0.0
    assert citation_recall([A], []) is None


@pytest.mark.parametrize(
    "answer",
    [
        NOT_FOUND + "\n\n" + OFFLINE_NOTE,
        "The documents do not say what the refund policy is.",
        "The provided context doesn't mention a refund policy.",
        "I could not find anything about refunds in the sources.",
        "There is no information about refunds in the documents.",
        "That is not covered in the documents.",
    ],
)
def test_refusals_are_recognised(answer: str) -> None:
    assert is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "The free tier allows 10 requests per minute [1].",
        "Refunds are not available after 30 days, as the pricing document says [2].",
        f"Based on your documents:\n\n- Quotas reset daily. [1]\n\n{OFFLINE_NOTE}",
    ],
)
def test_answers_are_not_refusals(answer: str) -> None:
    assert not is_refusal(answer)


def test_mean_skips_undefined_and_percentile_interpolates() -> None:
    assert mean([1.0, None, 0.0]) == 0.5
    assert mean([None]) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert percentile([], 50) is None
