"""scripts/answer_fit.py: its replay of the answerer's sentence choice is the answerer's own,
so what it measures under other weights is what the answerer would do with them."""

from __future__ import annotations

import re

from rag.types import Passage
from tests.fakes.scripts import load_script

answer_fit = load_script("answer_fit")

PASSAGES = (
    Passage(1, "Streaming sends partial results as server-sent events. Each event carries a JSON chunk.", "a.md"),
    Passage(2, "When you receive a 429 error, wait for the retry delay the server suggests. Then retry with "
               "exponential backoff, doubling the wait each time. Never retry more than five times in a row.",
            "b.pdf", page=3, heading="Retries"),
    Passage(3, "Quotas reset every minute. A project on the free tier gets 5 requests per minute.", "quotas.md"),
)


def test_the_replay_with_the_current_weights_gives_the_answerers_reply(offline_provider) -> None:
    for question in ("What should I do after a 429 error?", "How many requests per minute on the free tier?"):
        row = answer_fit.candidate_units(offline_provider.answerer, question, PASSAGES, frozenset())
        replayed = answer_fit.reply(row, answer_fit.CURRENT)
        answered = offline_provider.answerer.answer(question, PASSAGES)
        assert replayed and re.findall(r"^- .*$", answered, re.M) == replayed.splitlines()


def test_a_quote_counts_as_found_only_when_the_reply_holds_it() -> None:
    row = {"quotes": ["Never retry more than five times in a row."], "multi_hop": False, "reference": ""}
    assert answer_fit.found(row, "- Never retry more than five times in a row. [2]") == 1.0
    assert answer_fit.found(row, "- Quotas reset every minute. [3]") == 0.0
