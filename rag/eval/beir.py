"""Public retrieval benchmarks in BEIR layout, so our retrieval compares with published tables.

A BEIR directory holds `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`,
`text`) and `qrels/test.tsv` (`query-id`, `corpus-id`, `score`, with a header row). Each
document becomes a text file (title, blank line, text) in a directory we ingest like any
other corpus, so BEIR measures the very chunking, embedding and retrieval a user gets; the
qrels become test cases whose relevant sources are those files, graded by the qrels score.

Scores are over a ranking of documents, as in published tables: the retrieval a user gets,
with each document's best chunk kept and its further chunks dropped (`Query.per_file`), so a
document longer than one chunk takes one rank, not two.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rag.eval.testset import CaseError, LineProblem, Relevant, TestCase, TestSet

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
QRELS_SPLIT = "test"
T = TypeVar("T")


@dataclass(frozen=True)
class BeirDocument:
    id: str
    title: str
    text: str

    @property
    def filename(self) -> str:
        """A file name that is the id when the id is a safe name, else a stable hash of it."""
        stem = self.id if _SAFE_ID.match(self.id) else hashlib.sha1(self.id.encode()).hexdigest()[:16]
        return f"{stem}.txt"

    @property
    def content(self) -> str:
        return f"{self.title}\n\n{self.text}\n" if self.title else f"{self.text}\n"


@dataclass
class BeirSet:
    name: str
    documents: list[BeirDocument]
    testset: TestSet


def is_beir_dir(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def load_beir(path: Path, split: str = QRELS_SPLIT) -> BeirSet:
    """Read a BEIR directory; bad lines are reported per file and line, like a test set's."""
    qrels_path = path / "qrels" / f"{split}.tsv"
    for required in (path / "corpus.jsonl", path / "queries.jsonl", qrels_path):
        if not required.is_file():
            raise CaseError(f"{path} is not a BEIR directory: {required.relative_to(path)} is missing")
    problems: list[LineProblem] = []
    documents = {
        doc.id: doc
        for doc in _records(path / "corpus.jsonl", problems, lambda r: BeirDocument(
            _field(r, "_id"), str(r.get("title") or ""), _field(r, "text")))
    }
    queries = {
        q_id: text for q_id, text in _records(path / "queries.jsonl", problems, lambda r: (
            _field(r, "_id"), _field(r, "text")))
    }
    qrels = _qrels(qrels_path, documents, problems)
    cases = [
        TestCase(
            id=q_id,
            question=queries[q_id],
            relevant=tuple(Relevant(source=documents[d].filename, grade=g) for d, g in judged.items()),
            tags=("beir",),
        )
        for q_id, judged in qrels.items()
        if q_id in queries
    ]
    missing = sorted(set(qrels) - set(queries))
    if missing:
        problems.append(LineProblem(0, f"{len(missing)} judged queries are not in queries.jsonl "
                                       f"(first: {missing[0]!r})", qrels_path.name))
    return BeirSet(path.name, list(documents.values()), TestSet(f"beir-{path.name}", cases, problems))


def materialise(beir: BeirSet, root: Path) -> Path:
    """Write each document as a file under `root`, leaving unchanged files untouched so an
    incremental re-ingest has nothing to do."""
    root.mkdir(parents=True, exist_ok=True)
    for doc in beir.documents:
        target = root / doc.filename
        if not target.is_file() or target.read_text(encoding="utf-8") != doc.content:
            target.write_text(doc.content, encoding="utf-8")
    return root


def _records(path: Path, problems: list[LineProblem], build: Callable[[dict[str, Any]], T]) -> Iterator[T]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict):
                    raise CaseError("expected a JSON object")
                yield build(raw)
            except json.JSONDecodeError as exc:
                problems.append(LineProblem(number, f"not valid JSON ({exc.msg})", path.name))
            except CaseError as exc:
                problems.append(LineProblem(number, str(exc), path.name))


def _field(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise CaseError(f"'{key}' is missing or not a non-empty string")
    return value


def _qrels(
    path: Path, documents: dict[str, BeirDocument], problems: list[LineProblem]
) -> dict[str, dict[str, float]]:
    """query id -> {document id: grade}; zero grades mean 'judged not relevant' and are dropped."""
    qrels: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0].strip().lower() == "query-id"):
                continue
            if len(row) < 3:
                problems.append(LineProblem(number, "expected query-id, corpus-id, score", path.name))
                continue
            q_id, d_id, score = (cell.strip() for cell in row[:3])
            try:
                grade = float(score)
            except ValueError:
                problems.append(LineProblem(number, f"score {score!r} is not a number", path.name))
                continue
            if d_id not in documents:
                problems.append(LineProblem(number, f"corpus-id {d_id!r} is not in corpus.jsonl", path.name))
                continue
            if grade > 0:
                qrels.setdefault(q_id, {})[d_id] = grade
    return qrels
