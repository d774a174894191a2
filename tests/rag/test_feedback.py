"""Ratings are kept per collection, on the SQLite default and on a real Redis alike, and a
later comment updates the same entry; `rag.eval feedback` turns them into valid test cases."""

from __future__ import annotations

import json
from dataclasses import replace

from rag.eval.feedback import main as feedback_main
from rag.eval.feedback import to_cases
from rag.eval.testset import parse_testset
from rag.feedback import Feedback, FeedbackStore, Place
from rag.settings import Settings


def rating(collection: str, question: str, rating: str, **kw: object) -> Feedback:
    return Feedback(collection, question, question, f"{question} answer [1]", rating,  # type: ignore[arg-type]
                    cited=(Place("a.pdf", 2, "c1", "passage text"),), **kw)  # type: ignore[arg-type]


def test_ratings_are_kept_per_collection_and_updated_in_place(store_settings: Settings) -> None:
    store = FeedbackStore(store_settings)
    first = rating("docs", "q1", "up")
    store.save(first)
    store.save(rating("docs", "q2", "down"))
    store.save(rating("docs-2", "q3", "up"))
    store.save(replace(first, comment="good", right_source=Place("b.md", None, "c9", "the right passage")))
    kept = FeedbackStore(store_settings).list("docs")
    assert [f.question for f in kept] == ["q1", "q2"]
    assert kept[0].comment == "good" and kept[0].right_source == Place("b.md", None, "c9", "the right passage")
    assert [f.question for f in store.list("docs-2")] == ["q3"]


def test_rated_answers_become_test_cases_the_evaluation_reads() -> None:
    converted = to_cases([
        rating("d", "up, cited", "up"),
        rating("d", "down, right source", "down", right_source=Place("b.md", None, "c9", "the right passage")),
        rating("d", "down, no source", "down"),
    ])
    assert len(converted.skipped) == 1 and "down, no source" in converted.skipped[0]
    parsed = parse_testset("\n".join(json.dumps(c) for c in converted.cases))
    assert parsed.problems == []
    up, down = parsed.cases
    assert up.reference_answer == "up, cited answer [1]" and [r.source for r in up.relevant] == ["a.pdf"]
    assert up.relevant[0].page == 2 and "rated-up" in up.tags
    assert down.reference_answer == "the right passage" and [r.source for r in down.relevant] == ["b.md"]


def test_feedback_of_a_collection_no_one_rated_names_those_rated(tmp_path, capsys) -> None:
    """A mistyped name printed "0 test case(s)" with exit 0, as if nothing had been rated."""
    settings = Settings(data_dir=tmp_path, api_key=None)
    FeedbackStore(settings).save(rating("docs", "q1", "up"))
    assert feedback_main(["--collection", "dosc", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: no ratings of collection 'dosc'; rated: docs\n"
    assert feedback_main(["--collection", "docs", "--data-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["question"] == "q1"
