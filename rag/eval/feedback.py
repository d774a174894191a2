"""`python -m rag.eval feedback`: the answers readers rated, as test cases.

A thumbs-up answer becomes a case whose reference is that answer and whose relevant sources
are the right source the reader picked, else the sources it cited. A thumbs-down answer
becomes a case only if the reader picked the right source: its reference is that source's
passage. A thumbs-down with no source says something was wrong but not what the right
answer is, so it is counted and skipped. The output is the test-set format
(rag/eval/testset.py): append it to a test set and the regression gate learns from users.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.commands import Parser, folder_path
from rag.errors import ConfigError, GemragError
from rag.feedback import Feedback, FeedbackStore, Place
from rag.providers.extractive import OFFLINE_NOTE
from rag.settings import load_settings


@dataclass
class Converted:
    cases: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per rating that made no case


def to_cases(feedback: Sequence[Feedback]) -> Converted:
    out = Converted()
    for entry in feedback:
        question = entry.standalone_question or entry.question
        relevant = [entry.right_source] if entry.right_source else list(entry.cited)
        tags = ["feedback", f"rated-{entry.rating}"]
        if not relevant:
            out.skipped.append(f"{entry.id}: the answer cites no source and none was picked: {question}")
            continue
        if entry.rating == "up":
            reference = entry.answer.replace(OFFLINE_NOTE, "").strip()
        elif entry.right_source is not None:
            reference = entry.right_source.text
        else:
            out.skipped.append(f"{entry.id}: rated down without the right source: {question}")
            continue
        case: dict[str, Any] = {
            "id": f"feedback-{entry.id}",
            "question": question,
            "reference_answer": reference,
            "relevant": [_relevant(p) for p in relevant],
            "tags": tags,
        }
        if entry.comment:
            case["comment"] = entry.comment
        out.cases.append(case)
    return out


def _relevant(place: Place) -> dict[str, Any]:
    return {"source": place.source, **({"page": place.page} if place.page is not None else {})}


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="python -m rag.eval feedback",
        description="Print the answers rated in the UI as test cases (JSONL, the test-set format).",
    )
    parser.add_argument("--collection", help="whose ratings (default: the configured collection)")
    parser.add_argument("--out", type=Path, help="write the cases to this file instead of standard output")
    parser.add_argument("--data-dir", type=folder_path,
                        help="where stores live (default: GEMRAG_DATA_DIR or ./.gemrag)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
        collection = args.collection or settings.collection
        store = FeedbackStore(settings)
        ratings = store.list(collection)
        if not ratings and (rated := sorted({f.collection for f in store.all()})):
            # a mistyped name printed "0 test case(s)" and exit 0, as if no one had rated anything
            raise GemragError(f"no ratings of collection {collection!r}; rated: {', '.join(rated)}")
        converted = to_cases(ratings)
    except (ConfigError, GemragError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in converted.cases)
    if args.out:
        args.out.write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    for reason in converted.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    where = f" to {args.out}" if args.out else ""
    print(f"{len(converted.cases)} test case(s) from the ratings of collection {collection!r}{where}; "
          f"{len(converted.skipped)} rating(s) skipped", file=sys.stderr)
    return 0
