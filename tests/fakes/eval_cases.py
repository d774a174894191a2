"""A small test set over the tiny corpus (tests/fakes/tiny_corpus.py), for evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path

CASES = [
    {"id": "vacation", "question": "How many days of paid vacation do employees get per year?",
     "reference_answer": "Employees receive 25 days of paid vacation per year.",
     "relevant": [{"source": "handbook.pdf", "page": 2}], "tags": ["page"],
     "evidence": [{"source": "handbook.pdf", "page": 2,
                   "quote": "employees receive 25 days of paid vacation per year"}]},
    {"id": "retry", "question": "What should a client do when the API answers HTTP 429 RESOURCE_EXHAUSTED?",
     "reference_answer": "Wait for the suggested retry delay, then retry with exponential backoff.",
     "relevant": [{"source": "api-guide.md"}],
     "evidence": [{"source": "api-guide.md", "quote": "wait for the retry delay the server suggests"}]},
    {"id": "rotate", "question": "How often must passwords be rotated?",
     "reference_answer": "Passwords must be rotated every 90 days.",
     "relevant": [{"source": "security.md"}]},
    {"id": "follow", "question": "And how many times at most?", "history": ["How do I retry after HTTP 429?"],
     "reference_answer": "Never more than five times.", "relevant": [{"source": "api-guide.md"}],
     "tags": ["follow-up"]},
    {"id": "unknown", "question": "Which football team won the 1954 world championship final in Bern?",
     "relevant": [], "tags": ["unanswerable"]},
]


def write_testset(path: Path, cases: list[dict] = CASES, extra_lines: tuple[str, ...] = ()) -> Path:  # type: ignore[type-arg]
    path.write_text("\n".join([*(json.dumps(c) for c in cases), *extra_lines]) + "\n", encoding="utf-8")
    return path
