"""Every metric on cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from rag.eval.metrics import (
    Found,
    answer_body,
    citation_precision,
    citation_recall,
    contains_answer,
    contains_evidence,
    exact_match,
    hit_at,
    holds_evidence,
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


def test_contains_answer_asks_for_every_figure_of_the_reference_when_not_whole() -> None:
    """A long reply holding most of the reference's words scattered, but not its figure, was
    counted as the answer given."""
    reference = "About 7 hours of proofing at room temperature"
    scattered = "Proofing takes hours. Keep the dough at room temperature, about warm, out of drafts."
    assert contains_answer(scattered, reference) == 0.0
    assert contains_answer(scattered.replace("takes hours", "takes 7 hours"), reference) == 1.0
    # figures as the texts write them: "512-token" is 512 in "512 tokens", "2,048" is 2048
    long = "Gemini chunks are 512-token pieces with a 64-token overlap, embedded at 2,048 tokens at most."
    assert contains_answer("Gemini chunks are pieces of 512 tokens, with a 64 token overlap; embedded at 2048 at most.",
                           long) == 1.0


def test_contains_answer_reads_a_manual_s_typographic_quotes_and_dashes_as_punctuation() -> None:
    # PSPP's manual prints commands in curly quotes: a reply quoting it holds the answer.
    assert contains_answer("Use \u2018SPLIT FILE\u2019 before the procedure. [1]", "SPLIT FILE") == 1.0
    assert contains_answer("Values run 1\u201310 [2]", "1-10") == 1.0
    assert contains_answer("glp_simplex \u2014 the solver", "glp_simplex") == 1.0
    assert contains_answer("Use \u2018SORT CASES\u2019 first.", "SPLIT FILE") == 0.0
    # Letters' combining marks and vowel signs are no punctuation: composed or not, they stay.
    assert contains_answer("The capital is Ha\u0300 No\u0323\u0302i.", "H\u00e0 N\u1ed9i") == 1.0
    assert contains_answer("\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e", "\u0939\u0928\u0926") == 0.0


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


QUOTE = "the default value is evaluated only once. this makes a difference when the default is a mutable object"


def test_evidence_in_its_words_is_found_through_case_punctuation_hyphens_and_markers() -> None:
    reply = f"Based on your documents:\n\n- Important warning: The default value is evaluated only once. [2]\n- " \
            f"This makes a difference when the default is a mutable object such as a list. [2]\n\n{OFFLINE_NOTE}"
    assert holds_evidence(reply, QUOTE)  # each quoted sentence in one reply sentence
    assert holds_evidence("An optional con- figuration file config.asy [1]", "optional con-figuration file config.asy")
    assert holds_evidence("To create an empty set you have to use set(), not {}. [3]",
                          "to create an empty set you have to use set() , not {}")


def test_evidence_needs_most_of_a_sentence_in_one_sentence_not_words_scattered_over_the_reply() -> None:
    near = "- The default is evaluated once, which makes a difference for a mutable object [1]"
    assert not holds_evidence(near, QUOTE)  # the first quoted sentence is not there
    scattered = ("- A default value can be anything. [1]\n- It is evaluated at definition time. [2]\n"
                 "- This makes a difference when the default is a mutable object. [3]\n- Only once. [4]")
    assert not holds_evidence(scattered, QUOTE)
    cut = "- Evaluated only once: the default value. [1]\n- This makes a difference when the default is mutable. [1]"
    assert holds_evidence(cut, QUOTE)  # 4 of 4 and 4 of 5 content words: above 80% in one sentence each


def test_short_evidence_must_appear_whole() -> None:
    assert holds_evidence("Use bisect.insort(scores, 5) to keep it sorted. [1]", "insort")
    assert not holds_evidence("Use bisect to keep it sorted. [1]", "insort")
    assert not holds_evidence("Use the set type for that. [1]", "use set()")  # two content words: not 80% of one


def test_contains_evidence_needs_one_quote_or_every_quote_of_a_multi_hop_case() -> None:
    quotes = ["to deactivate a virtual environment, type: deactivate into the terminal",
              "glp_open_tee starts copying all the terminal output to an output text file"]
    one = "- To deactivate a virtual environment, type deactivate into the terminal. [1]"
    assert contains_evidence(one, quotes) == 1.0
    assert contains_evidence(one, quotes, every=True) == 0.0
    assert contains_evidence(one, []) is None  # a case without quotes is not scored
    refusal = f"{NOT_FOUND}\n\n{OFFLINE_NOTE}"
    assert contains_evidence(refusal, quotes) == 0.0
