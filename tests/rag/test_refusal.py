"""The answerers' refusals and the evaluator's recognition of them come from one owner
(rag.refusal): a wording changed on one side only, or written out again as a literal, fails here."""

from __future__ import annotations

import re

import pytest

from rag.eval.metrics import is_refusal
from rag.prompts import SYSTEM
from rag.providers.extractive import OFFLINE_NOTE
from rag.providers.offline import OfflineProvider
from rag.refusal import NOT_FOUND, NOT_IN_DOCUMENTS, PHRASES
from rag.types import Passage

LIMITS = Passage(1, "Gemini 2.5 Pro allows 5 requests per minute on the free tier and 150 on Tier 1.", "quotas.md")


@pytest.mark.parametrize("phrase", PHRASES)
def test_each_fixed_refusal_is_recognised_as_an_answerer_sends_it(phrase: str) -> None:
    assert is_refusal(phrase)
    assert is_refusal(f"{phrase} [1]\n\n{OFFLINE_NOTE}")
    assert is_refusal(phrase.upper().replace(" ", "\n  "))


def test_the_answering_prompt_asks_for_the_phrase_the_evaluator_recognises() -> None:
    asked = re.search(r'reply exactly: "([^"]+)"', SYSTEM)
    assert asked is not None and asked.group(1) == NOT_IN_DOCUMENTS


def test_the_offline_answerers_refusals_are_recognised(offline_provider: OfflineProvider) -> None:
    unrelated = offline_provider.answerer.answer("Who won the football world cup in 1954?", (LIMITS,))
    never_mentioned = offline_provider.answerer.answer("What is the context window of Gemini 1.5 Pro?", (LIMITS,))
    assert unrelated.startswith(NOT_FOUND) and is_refusal(unrelated)
    assert never_mentioned.startswith(NOT_FOUND.rstrip(".")) and is_refusal(never_mentioned)
    answered = offline_provider.answerer.answer("How many requests per minute does Tier 1 allow?", (LIMITS,))
    assert not is_refusal(answered)


def test_a_quoted_sentence_that_reads_as_a_refusal_does_not_make_the_reply_one() -> None:
    """The offline answerer quotes documents as cited list items; one saying "we don't know"
    is the document's claim, not the answer refusing."""
    quoted = ("Based on your documents:\n\n- Timings vary by machine, and we don't know your CPU's cache size. [2]\n"
              "- The documents do not cover Windows builds. [3]\n\n" + OFFLINE_NOTE)
    assert not is_refusal(quoted)
    assert is_refusal("The documents do not say which cache size is best.\n\n- Timings vary by machine. [2]")
    # A model's own words in a cited list item are read: only the offline reply quotes.
    assert is_refusal("- The documents do not say which timeout Tier 1 uses. [1]")
