"""rag.text: the word-level helpers shared by retrieval, reranking and the offline answerer."""

from __future__ import annotations

from rag.text import anchors


def test_anchors_are_the_literal_tokens_of_a_question():
    assert anchors("What should an application do when the Gemini API returns HTTP 429?") == {"429"}
    assert anchors("Does os.path.join take --strict or RESOURCE_EXHAUSTED and embedContent?") == {
        "os.path.join", "strict", "resource_exhausted", "embedcontent"}
    assert anchors("Which flag turns the reply into an event stream?") == set()
