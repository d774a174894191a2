"""How the chain meets a question asked in the middle of a conversation about something else.

    python scripts/chat_check.py [NAME...] [--out FILE]

In the chat UI and the API, most questions come after earlier ones. The follow-up rewrite
(`rag.providers.followup.rewrite_follow_up`, offline) adds the previous question's words to
a question that leans on it ("and on Tier 1?"); a question that stands on its own must be
searched as it is, or the previous topic's words pull its search there. For every case of
the sets that has no history of its own, this script asks the question alone and again
after the set's case before it (another topic, as a user moves on), and counts for each how
often a relevant passage is among those shown (hit@k, k = top_k) and how often the answerer
refuses; then it asks the sets' follow-up cases after their own history, which the rewrite
must keep reading as follow-ups. It reads the collections `python scripts/testsets.py eval
NAME` built (same GEMRAG_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.testsets import retrieved_cases  # noqa: E402
from scripts.typo_check import Outcome, compared, outcome  # noqa: E402

if TYPE_CHECKING:
    from rag.eval.testset import TestCase


def previous(case: TestCase, cases: Sequence[TestCase]) -> list[str]:
    """The question of the case listed before this one (the last for the first)."""
    at = next(i for i, c in enumerate(cases) if c.id == case.id)
    return [cases[at - 1].question]


def alone(case: TestCase, cases: Sequence[TestCase]) -> list[str]:
    """No question before it: the baseline each question is compared with."""
    return []


def outcomes(names: Sequence[str], after_another: bool) -> Iterator[Outcome]:
    """The answerable cases without history of their own, alone or after another question."""
    for seen in retrieved_cases(names, history=previous if after_another else alone):
        if not seen.case.unanswerable and not seen.case.history:
            yield outcome(seen)


def follow_ups(names: Sequence[str]) -> Iterator[Outcome]:
    """The answerable follow-up cases, after their own history: they must stay follow-ups."""
    for seen in retrieved_cases(names):
        if seen.case.history and not seen.case.unanswerable:
            yield outcome(seen)


def table(rows: Sequence[tuple[Outcome, Outcome]], follow: Sequence[Outcome]) -> str:
    lines = ["| set | cases | hit@k alone → after another question | refused alone → after | changed by the "
             "rewrite | follow-ups: hit@k, refused |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(a.set for a, _ in rows):
        mine = [(a, b) for a, b in rows if a.set == name]
        theirs = [f for f in follow if f.set == name]
        lines.append(f"| {name} | {compared(mine)} | {sum(a.question != b.question for a, b in mine)} | "
                     f"{sum(f.hit for f in theirs)} of {len(theirs)}, {sum(f.refused for f in theirs)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="test sets (default: all)")
    parser.add_argument("--out", type=Path, help="also write every case's outcomes here (JSON lines)")
    args = parser.parse_args(argv)
    rows = list(zip(outcomes(args.names, after_another=False), outcomes(args.names, after_another=True),
                    strict=True))
    follow = list(follow_ups(args.names))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps({"alone": asdict(a), "after_another": asdict(b)}) + "\n"
                                    for a, b in rows)
                            + "".join(json.dumps({"follow_up": asdict(f)}) + "\n" for f in follow), encoding="utf-8")
    print(table(rows, follow))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
