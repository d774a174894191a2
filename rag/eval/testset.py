"""Reading an evaluation test set: the cases, and every malformed line with its reason.

Format: JSONL, one case per line (blank lines and lines starting with `#` are skipped)::

    {"id": "q01", "question": "...", "reference_answer": "...",
     "relevant": [{"source": "quotas.md"}, {"source": "pricing.pdf", "page": 2}],
     "tags": ["multi-hop"], "history": ["earlier user question"]}

- `id`: optional, defaults to the line number (`"line-7"`); ids must be unique.
- `question`: required, non-empty.
- `reference_answer`: the expected answer; required unless the case is unanswerable.
- `relevant`: where the answer is. Each entry is `{"source": path}` (the path relative to the
  ingested root, as ingest stores it on chunks), optionally with a 1-based `"page"`, or
  `{"chunk_id": id}` for one passage. `"grade"` (a positive number, default 1) weighs an
  entry for nDCG, as graded BEIR qrels do.
- `tags`: optional labels ("multi-hop", "page", "follow-up", ...). An unanswerable question
  has `"relevant": []` and the tag `"unanswerable"`; the correct answer is a refusal.
- `history`: optional earlier user questions, oldest first, for follow-up questions.
- `comment`: optional, a reader's note (`python -m rag.eval feedback` writes it); not scored.
- `evidence`: optional quotes of the documents' own words that answer the question, each
  `{"source": path, "page": n, "quote": "..."}` (page for PDFs only). `python
  scripts/testsets.py verify` checks each against its file's text; the evaluation scores
  whether the reply quotes it (`evidence in reply`), since a reference answer written in the
  asker's words is rarely found verbatim in a reply that quotes the documents.

A malformed line is reported with its file, line number and the reason, and the run goes on
with the valid ones: one typo should not cost a whole evaluation. A key the format does not
have is such a typo ("histroy" made a follow-up a standalone question, silently); a line that
is not UTF-8 is one bad line, not a bad file; a byte-order mark is read past.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNANSWERABLE = "unanswerable"
KEYS = frozenset({"id", "question", "reference_answer", "relevant", "tags", "history", "evidence", "comment"})


@dataclass(frozen=True)
class Relevant:
    """One place the answer is found: a whole source, one page of it, or one chunk."""

    source: str | None = None
    page: int | None = None
    chunk_id: str | None = None
    grade: float = 1.0

    def matches(self, source: str, page: int | None, chunk_id: str = "") -> bool:
        if self.chunk_id is not None:
            return self.chunk_id == chunk_id
        return self.source == source and (self.page is None or self.page == page)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.source is not None:
            out["source"] = self.source
        if self.page is not None:
            out["page"] = self.page
        if self.chunk_id is not None:
            out["chunk_id"] = self.chunk_id
        if self.grade != 1.0:
            out["grade"] = self.grade
        return out


@dataclass(frozen=True)
class Evidence:
    """A quote from a relevant file (and page) that answers the question."""

    source: str
    quote: str
    page: int | None = None


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class, despite the name

    id: str
    question: str
    reference_answer: str = ""
    relevant: tuple[Relevant, ...] = ()
    tags: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    @property
    def unanswerable(self) -> bool:
        return UNANSWERABLE in self.tags


@dataclass(frozen=True)
class LineProblem:
    line: int
    reason: str
    file: str = ""

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.file else f"line {self.line}"
        return f"{where}: {self.reason}"


@dataclass
class TestSet:
    __test__ = False

    name: str
    cases: list[TestCase]
    problems: list[LineProblem] = field(default_factory=list)


class CaseError(ValueError):
    """Why one line is not a valid case."""


def load_testset(path: Path) -> TestSet:
    """Parse a JSONL test set; a missing or unreadable file is an error, a bad line is not."""
    if path.is_dir():  # "Is a directory" said nothing of what was expected
        raise CaseError(f"{path} is a folder but not a BEIR set (corpus.jsonl, queries.jsonl, qrels/test.tsv): name "
                        "a JSONL test set, or a folder holding those files")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaseError(f"cannot read test set {path}: {exc.strerror or exc}") from exc
    return parse_testset(data, name=path.stem, file=path.name)


def parse_testset(data: str | bytes, name: str = "testset", file: str = "") -> TestSet:
    """`data`: the file's bytes (each line decoded as UTF-8 on its own) or its text."""
    lines: list[str | bytes] = list(data.splitlines())
    cases: list[TestCase] = []
    problems: list[LineProblem] = []
    first: dict[str, int] = {}  # case id -> the line that holds it
    for number, raw in enumerate(lines, start=1):
        try:
            line = _decoded(raw, number)
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            case = parse_case(line, number)
            if case.id in first:
                raise CaseError(f"duplicate id {case.id!r} (first on line {first[case.id]})")
        except CaseError as exc:
            problems.append(LineProblem(number, str(exc), file))
            continue
        first[case.id] = number
        cases.append(case)
    return TestSet(name, cases, problems)


def _decoded(raw: str | bytes, number: int) -> str:
    """One line as text: a byte-order mark on the first line is read past (Windows editors
    write one; it made the first case "not valid JSON")."""
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff") if number == 1 else raw
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise CaseError(f"not UTF-8 (byte {raw[exc.start:exc.start + 1]!r} at column {exc.start + 1}): "
                        "save the file as UTF-8") from None


def parse_case(line: str, number: int) -> TestCase:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CaseError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(raw, dict):
        raise CaseError(f"expected a JSON object, got {type(raw).__name__}")
    if unknown := set(raw) - KEYS:
        raise CaseError(f"unknown keys: {', '.join(sorted(unknown))} (a case has {', '.join(sorted(KEYS))})")
    question = _text(raw, "question", required=True)
    tags = _strings(raw, "tags")
    relevant = tuple(_relevant(entry, i) for i, entry in enumerate(_list(raw, "relevant")))
    case = TestCase(
        id=_text(raw, "id") or f"line-{number}",
        question=question,
        reference_answer=_text(raw, "reference_answer"),
        relevant=relevant,
        tags=tags,
        history=_strings(raw, "history"),
        evidence=tuple(_evidence(entry, i) for i, entry in enumerate(_list(raw, "evidence"))),
    )
    if case.unanswerable and relevant:
        raise CaseError("an unanswerable case must have an empty 'relevant' list")
    if not case.unanswerable and not relevant:
        raise CaseError("'relevant' is empty: list where the answer is, or tag the case 'unanswerable'")
    if not case.unanswerable and not case.reference_answer:
        raise CaseError("'reference_answer' is missing or empty")
    return case


def _text(raw: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = raw.get(key)
    if value is None:
        if required:
            raise CaseError(f"'{key}' is missing")
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and key == "id":
        return str(value)
    if not isinstance(value, str):
        raise CaseError(f"'{key}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise CaseError(f"'{key}' is empty")
    return value.strip()


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise CaseError(f"'{key}' must be a list, got {type(value).__name__}")
    return value


def _strings(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    values = _list(raw, key)
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise CaseError(f"'{key}' must be a list of non-empty strings")
    return tuple(v.strip() for v in values)


def _evidence(entry: Any, index: int) -> Evidence:
    where = f"evidence[{index}]"
    if not isinstance(entry, dict):
        raise CaseError(f"{where} must be an object like {{\"source\": \"file.md\", \"quote\": \"...\"}}")
    unknown = set(entry) - {"source", "page", "quote"}
    if unknown:
        raise CaseError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    source, quote, page = _nonempty(entry, "source", where), _nonempty(entry, "quote", where), entry.get("page")
    if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
        raise CaseError(f"{where}.page must be a 1-based integer page of the source")
    return Evidence(source=source.replace("\\", "/"), quote=quote, page=page)


def _nonempty(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not (isinstance(value, str) and value.strip()):
        raise CaseError(f"{where}.{key} must be a non-empty string")
    return value.strip()


def _relevant(entry: Any, index: int) -> Relevant:
    where = f"relevant[{index}]"
    if not isinstance(entry, dict):
        raise CaseError(f"{where} must be an object like {{\"source\": \"file.md\"}}")
    unknown = set(entry) - {"source", "page", "chunk_id", "grade"}
    if unknown:
        raise CaseError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    source, chunk_id, page = entry.get("source"), entry.get("chunk_id"), entry.get("page")
    grade = entry.get("grade", 1.0)
    if (source is None) == (chunk_id is None):
        raise CaseError(f"{where} needs exactly one of 'source' or 'chunk_id'")
    for key, value in (("source", source), ("chunk_id", chunk_id)):
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise CaseError(f"{where}.{key} must be a non-empty string")
    if page is not None and (chunk_id is not None or isinstance(page, bool) or not isinstance(page, int)
                             or page < 1):
        raise CaseError(f"{where}.page must be a 1-based integer page of a source")
    if isinstance(grade, bool) or not isinstance(grade, int | float) or grade <= 0:
        raise CaseError(f"{where}.grade must be a positive number")
    return Relevant(
        source=source.strip().replace("\\", "/") if source else None,
        page=page,
        chunk_id=chunk_id,
        grade=float(grade),
    )
