"""rag.text: the word-level helpers shared by retrieval, reranking and the offline answerer."""

from __future__ import annotations

from rag.text import anchors, share_present


def test_anchors_are_the_literal_tokens_of_a_question():
    assert anchors("What should an application do when the Gemini API returns HTTP 429?") == {"429"}
    assert anchors("Does os.path.join take --strict or RESOURCE_EXHAUSTED and embedContent?") == {
        "os.path.join", "strict", "resource_exhausted", "embedcontent"}
    assert anchors("Which flag turns the reply into an event stream?") == set()


def test_share_present_counts_the_literal_tokens_a_text_holds_whatever_their_case():
    assert share_present({"429", "resource_exhausted"}, "HTTP 429: RESOURCE_EXHAUSTED") == 1.0
    assert share_present({"429", "os.path.join"}, "Retry on 429.") == 0.5
    assert share_present(set(), "anything") == 0.0
