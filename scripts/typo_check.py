"""How the offline answerer meets a question whose asker misspelt the name it asks about.

    python scripts/typo_check.py [NAME...] [--out FILE]

Users type fast: "Gemni", "glp_simplx", "Asymptot". A name the passages never mention is
a reason to refuse (`rag.keyterms`), so before the typo rule one dropped letter turned an
answer the passages held into "the passages found never mention gemni". For every
answerable case of the sets whose question names something of five letters or more (a
name, an identifier; not a version), this script asks the question as written and again
with that name misspelt, one edit in its middle (a letter dropped, or two letters swapped:
the question's length decides), and counts for each how often a relevant passage is among those shown (hit@k,
k = top_k) and how often the answerer refuses. It reads the collections `python
scripts/testsets.py eval NAME` built (same GEMRAG_DATA_DIR). The misspellings are made by
rule, not chosen, and the sets' unanswerable cases are left out: whether a typo rule keeps
their refusals is what `python scripts/testsets.py eval NAME` shows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.keyterms import key_terms, lower_case_names, versions  # noqa: E402
from rag.refusal import says_not_in_documents  # noqa: E402
from scripts.testsets import Retrieved, retrieved_cases  # noqa: E402

MIN_NAME = 5  # letters of a name worth misspelling: a typo in a shorter one reads as another word


@dataclass(frozen=True)
class Outcome:
    set: str
    id: str
    question: str
    hit: bool  # a relevant passage is among those shown
    refused: bool


def misspelt(question: str) -> str | None:
    """The question with its longest name (capitalised, an identifier or a code: the names a
    question marks as such, not the words `lower_case_names` reads as names) misspelt
    past its middle: its first letter from there dropped when the question's length is
    even, else the first two neighbouring letters that differ swapped ("os.path" keeps its
    dot in place). None when it names nothing of `MIN_NAME` characters, or nothing to swap."""
    written = key_terms(question) - versions(question) - lower_case_names(question)  # as the asker wrote names
    names = sorted((t for t in written if len(t) >= MIN_NAME and not re.search(r"\d", t)), key=lambda t: (-len(t), t))
    found = next((m for t in names if (m := re.search(rf"(?<!\w){re.escape(t)}(?!\w)", question, re.I))), None)
    if found is None:
        return None
    word = found.group()
    letters = [i for i in range(len(word) // 2, len(word)) if word[i].isalpha()]
    if len(question) % 2 == 0 and letters:
        typo = word[: letters[0]] + word[letters[0] + 1 :]
    else:
        i = next((i for i in letters if word[i + 1 : i + 2].isalpha() and word[i] != word[i + 1]), None)
        if i is None:
            return None
        typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return question[: found.start()] + typo + question[found.end() :]


def outcomes(names: Sequence[str], typo: bool) -> Iterator[Outcome]:
    def variant(question: str) -> str | None:
        wrong = misspelt(question)
        return None if wrong is None else wrong if typo else question

    for seen in retrieved_cases(names, variant):
        if not seen.case.unanswerable:
            yield outcome(seen)


def outcome(seen: Retrieved) -> Outcome:
    answer = seen.provider.answerer.answer(seen.question, seen.shown, seen.mentioned_elsewhere, seen.unheard_of)
    hit = any(r.matches(p.source, p.page, p.chunk_id) for p in seen.shown for r in seen.case.relevant)
    return Outcome(seen.doc_set.name, seen.case.id, seen.question, hit, says_not_in_documents(answer))


def table(rows: Sequence[tuple[Outcome, Outcome]]) -> str:
    lines = ["| set | cases | hit@k as written → misspelt | refused as written → misspelt |", "|---|---|---|---|"]
    for name in dict.fromkeys(a.set for a, _ in rows):
        lines.append(f"| {name} | {compared([(a, b) for a, b in rows if a.set == name])} |")
    return "\n".join(lines)


def compared(pairs: Sequence[tuple[Outcome, Outcome]]) -> str:
    """The cells "cases | hit@k before → after | refused before → after" of one set's row."""
    n = len(pairs)
    return (f"{n} | {sum(a.hit for a, _ in pairs) / n:.3f} → {sum(b.hit for _, b in pairs) / n:.3f} | "
            f"{sum(a.refused for a, _ in pairs)} → {sum(b.refused for _, b in pairs)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="test sets (default: all)")
    parser.add_argument("--out", type=Path, help="also write every case's outcomes here (JSON lines)")
    args = parser.parse_args(argv)
    rows = list(zip(outcomes(args.names, typo=False), outcomes(args.names, typo=True), strict=True))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(json.dumps({"as_written": asdict(a), "misspelt": asdict(b)}) + "\n"
                                    for a, b in rows), encoding="utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
