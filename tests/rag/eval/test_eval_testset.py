"""Test-set parsing: valid cases in, every malformed line out with its number and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.eval.testset import CaseError, Evidence, Relevant, load_testset, parse_testset

GOOD = {
    "id": "q01",
    "question": "What is the quota?",
    "reference_answer": "60 requests per minute.",
    "relevant": [{"source": "quotas.md"}, {"source": "pricing.pdf", "page": 2}],
    "tags": ["multi-hop"],
    "history": ["What is the API?"],
    "evidence": [{"source": "quotas.md", "quote": "60 requests per minute"},
                 {"source": "pricing.pdf", "page": 2, "quote": "per minute"}],
}


def test_full_case_is_parsed() -> None:
    case = parse_testset(json.dumps(GOOD)).cases[0]
    assert case.id == "q01"
    assert case.relevant == (Relevant(source="quotas.md"), Relevant(source="pricing.pdf", page=2))
    assert case.tags == ("multi-hop",)
    assert case.history == ("What is the API?",)
    assert case.evidence == (Evidence("quotas.md", "60 requests per minute"),
                             Evidence("pricing.pdf", "per minute", page=2))
    assert not case.unanswerable


def test_id_defaults_to_line_number_and_unanswerable_needs_no_reference() -> None:
    lines = [
        "# a comment",
        "",
        json.dumps({"question": "Who won the 1998 World Cup?", "relevant": [], "tags": ["unanswerable"]}),
        json.dumps({"question": "q", "reference_answer": "r", "relevant": [{"chunk_id": "abc"}]}),
    ]
    parsed = parse_testset("\n".join(lines))
    assert parsed.problems == []
    assert [c.id for c in parsed.cases] == ["line-3", "line-4"]
    assert parsed.cases[0].unanswerable
    assert parsed.cases[1].relevant == (Relevant(chunk_id="abc"),)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"question": "q", "relevant": [', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**GOOD, "question": ""}), "'question' is empty"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "question"}), "'question' is missing"),
        (json.dumps({**GOOD, "relevant": []}), "tag the case 'unanswerable'"),
        (json.dumps({**GOOD, "tags": ["unanswerable"]}), "must have an empty 'relevant'"),
        (json.dumps({**GOOD, "reference_answer": ""}), "'reference_answer' is missing"),
        (json.dumps({**GOOD, "relevant": ["quotas.md"]}), "relevant[0] must be an object"),
        (json.dumps({**GOOD, "relevant": [{"source": "a.md", "page": 0}]}), "relevant[0].page"),
        (json.dumps({**GOOD, "relevant": [{"file": "a.md"}]}), "unknown keys: file"),
        (json.dumps({**GOOD, "relevant": [{"page": 2}]}), "exactly one of 'source' or 'chunk_id'"),
        (json.dumps({**GOOD, "tags": "multi-hop"}), "'tags' must be a list"),
        (json.dumps({**GOOD, "history": [3]}), "'history' must be a list of non-empty strings"),
        (json.dumps({**GOOD, "evidence": "60 requests"}), "'evidence' must be a list"),
        (json.dumps({**GOOD, "evidence": [{"source": "a.md"}]}), "evidence[0].quote must be a non-empty string"),
        (json.dumps({**GOOD, "evidence": [{"source": "a.pdf", "page": "2", "quote": "x"}]}), "evidence[0].page"),
        (json.dumps({**GOOD, "evidence": [{"source": "a.md", "quote": "x", "text": "y"}]}), "unknown keys: text"),
        # a mistyped key was ignored: "histroy" made a follow-up a standalone question, silently
        (json.dumps({**GOOD, "histroy": ["earlier"], "tag": ["x"]}), "unknown keys: histroy, tag (a case has comment,"),
    ],
)
def test_malformed_line_is_reported_with_number_and_reason(line: str, reason: str) -> None:
    text = "\n".join([json.dumps(GOOD), line, json.dumps({**GOOD, "id": "q02"})])
    parsed = parse_testset(text)
    assert [c.id for c in parsed.cases] == ["q01", "q02"]  # the run goes on with the valid ones
    assert len(parsed.problems) == 1
    assert parsed.problems[0].line == 2
    assert reason in parsed.problems[0].reason
    assert str(parsed.problems[0]).startswith("line 2: ")


def test_duplicate_ids_are_reported() -> None:
    parsed = parse_testset(json.dumps(GOOD) + "\n" + json.dumps(GOOD))
    assert len(parsed.cases) == 1
    assert parsed.problems[0].line == 2 and "duplicate id 'q01' (first on line 1)" in parsed.problems[0].reason


def test_a_line_not_in_utf8_is_one_bad_line_and_a_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    """A Latin-1 "é" refused the whole file ("can't decode byte 0xe9 in position 796"), and a
    byte-order mark made the first case "not valid JSON"."""
    path = tmp_path / "mine.jsonl"
    latin = json.dumps({**GOOD, "id": "q02", "question": "caf\u00e9?"}, ensure_ascii=False).encode("latin-1")
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n" + latin + b"\n"
                     + json.dumps({**GOOD, "id": "q03"}).encode() + b"\n")
    parsed = load_testset(path)
    assert [c.id for c in parsed.cases] == ["q01", "q03"]
    assert [str(p) for p in parsed.problems] == [
        "mine.jsonl line 2: not UTF-8 (byte b'\\xe9' at column 31): save the file as UTF-8"]


def test_a_folder_that_is_no_beir_set_is_named_as_such(tmp_path: Path) -> None:
    """It said "Is a directory", nothing of what a folder must hold."""
    with pytest.raises(CaseError, match="is a folder but not a BEIR set"):
        load_testset(tmp_path)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match=r"missing\.jsonl"):
        load_testset(tmp_path / "missing.jsonl")
