"""Where the offline answerer's sentence scoring comes from: every candidate sentence of every
test case with the features the answerer scores it by, and the weights chosen by
leave-one-set-out cross-validation on "the documents' evidence is in the reply".

    python scripts/answer_fit.py units [NAME...] [--out FILE]   # retrieve, and score every candidate unit
    python scripts/answer_fit.py fit [--units FILE] [--rank-only] # choose the weights, report held-out figures
    python scripts/answer_fit.py picking [--units FILE]          # how much to quote: budget, floor, count

`units` runs each set's answerable cases through the default retrieval (the follow-up
rewrite, hybrid search, the second ranking stage, k = top_k) against the collection `python
scripts/testsets.py eval NAME` built (same GEMRAG_DATA_DIR), and writes one JSON line per
case: its evidence quotes (or, for the sample set, its reference answer) and each candidate
unit the answerer would embed, with its cosine to the question, word overlap, whether it
holds what the question asks for, its share of the question's literal tokens, and the rank
of its passage. `fit` replays the answerer's choice (`ExtractiveAnswerer.pick`) under each
setting of the weights, and for each set held out, picks the setting best on the others.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.testsets import retrieved_cases  # noqa: E402

if TYPE_CHECKING:
    from rag.providers.extractive import ExtractiveAnswerer
    from rag.types import Passage

DEFAULT_OUT = Path("eval-out") / "answer" / "units.jsonl"


# --- units ---------------------------------------------------------------------------------


def collect(names: Sequence[str], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for seen in retrieved_cases(names):
            case = seen.case
            if case.unanswerable:
                continue
            row = {"set": seen.doc_set.name, "id": case.id, "multi_hop": "multi-hop" in case.tags,
                   "quotes": [e.quote for e in case.evidence], "reference": case.reference_answer,
                   **candidate_units(seen.provider.answerer, seen.question, seen.shown, seen.mentioned_elsewhere)}
            sink.write(json.dumps(row) + "\n")
            sink.flush()


def candidate_units(
    answerer: ExtractiveAnswerer, question: str, shown: Sequence[Passage], elsewhere: frozenset[str]
) -> dict[str, object]:
    """The units the answerer would embed for `question` over `shown`, with their features,
    and whether it refuses on a key term (one `shown` misses and its documents do not hold)."""
    from rag.keyterms import missing_terms
    from rag.providers.extractive import fits_kind, question_kind
    from rag.text import anchors

    units = answerer.candidates(question, shown)
    vecs = answerer.model.embed([question, *(u.read_as for u in units)]) if units else None
    kind, literal = question_kind(question), anchors(question)
    rank = {p.n: i for i, p in enumerate(shown)}
    return {
        "question": question,
        "refused": bool(missing_terms(question, shown, elsewhere)),
        "units": [
            {"n": u.passage.n, "rank": rank[u.passage.n], "position": u.position, "text": u.text,
             "sim": float(vecs[i + 1] @ vecs[0]) if vecs is not None else 0.0, "overlap": u.overlap,
             "kind": float(fits_kind(u.text, kind)),
             "anchor": sum(t in u.text.lower() for t in literal) / len(literal) if literal else 0.0}
            for i, u in enumerate(units)
        ],
    }


# --- fit -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    """support = similarity * sim + (1 - similarity) * overlap + kind + anchor, and the prior
    rank / (passage rank + 1); units are chosen by the sum, refused on support alone
    (`ExtractiveAnswerer.pick`). The defaults are the answerer's."""

    similarity: float = 0.6
    kind: float = 0.08
    anchor: float = 0.10
    rank: float = 0.2

    def score(self, u: dict[str, float]) -> float:
        return self.similarity * u["sim"] + (1 - self.similarity) * u["overlap"] + self.kind * u["kind"] \
            + self.anchor * u["anchor"]

    def prior(self, u: dict[str, float]) -> float:
        from rag.providers.extractive import rank_prior

        return rank_prior(self.rank, int(u["rank"]))

    def label(self) -> str:
        return (f"sim {self.similarity:.2f}, kind {self.kind:.2f}, anchor {self.anchor:.2f}, "
                f"rank prior {self.rank:.2f}")


CURRENT = Weights()
GRID = [Weights(s, k, a, r) for s, k, a, r in itertools.product(
    (0.5, 0.6, 0.7), (0.0, 0.04, 0.08, 0.12), (0.0, 0.05, 0.10, 0.15), (0.0, 0.1, 0.2, 0.3))]
# The rank prior alone, the other weights as they are: the one-weight choice EVALUATION.md reports.
RANK_GRID = [Weights(rank=r) for r in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)]


def reply(row: dict[str, object], w: Weights, answerer: ExtractiveAnswerer | None = None) -> str:
    """The answerer's own pick (`ExtractiveAnswerer.pick`, or `answerer`'s) with the units
    scored by `w`, as reply text."""
    from rag.providers.extractive import Scored
    from rag.providers.quotable import Quotable
    from rag.types import Passage

    units: list[dict[str, float]] = row["units"]  # type: ignore[assignment]
    if row["refused"]:
        return ""
    shown = {int(u["n"]): Passage(int(u["n"]), "", "") for u in sorted(units, key=lambda u: u["rank"])}
    scored = sorted((Scored(shown[int(u["n"])], Quotable(str(u["text"])), int(u["position"]), w.score(u), w.prior(u))
                     for u in units), key=lambda s: s.ranking, reverse=True)
    picked = (answerer or _answerer()).pick(scored, list(shown.values()))
    return "\n".join(f"- {s.sentence} [{s.passage.n}]" for s in picked)


@cache
def _answerer() -> ExtractiveAnswerer:
    """Its defaults (support floor, reading budget); `pick` never embeds, so no model loads."""
    from rag.providers.extractive import ExtractiveAnswerer
    from rag.providers.minilm import MiniLM

    return ExtractiveAnswerer(MiniLM(workers=1))


def found(row: dict[str, object], text: str) -> float:
    """Evidence in reply where the case quotes its evidence, else the reference answer in reply."""
    from rag.eval.metrics import contains_answer, contains_evidence

    quotes: list[str] = row["quotes"]  # type: ignore[assignment]
    if quotes:
        return contains_evidence(text, quotes, every=bool(row["multi_hop"])) or 0.0
    return contains_answer(text, str(row["reference"]))


def scores(rows: list[dict[str, object]], w: Weights) -> dict[str, float]:
    by_set: dict[str, list[float]] = {}
    for row in rows:
        by_set.setdefault(str(row["set"]), []).append(found(row, reply(row, w)))
    return {s: sum(v) / len(v) for s, v in by_set.items()}


def fit(path: Path, grid: Sequence[Weights] = GRID) -> str:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    table = {w: scores(rows, w) for w in [*grid, CURRENT]}
    sets = list(table[CURRENT])
    mean = {w: sum(s.values()) / len(s) for w, s in table.items()}
    lines = ["Found in reply (evidence, or the reference answer where a case has no quotes), per held-out set,",
             "with the weights best on the other sets:", "",
             "| held-out set | current | weights chosen on the others | held out |", "|---|---|---|---|"]
    for held in sets:
        others = [s for s in sets if s != held]
        best = max(table, key=lambda w: (sum(table[w][s] for s in others), w == CURRENT))
        lines.append(f"| {held} | {table[CURRENT][held]:.3f} | {best.label()} | {table[best][held]:.3f} |")
    top = max(table, key=lambda w: (mean[w], w == CURRENT))
    lines += ["", f"Best on all sets: {top.label()}: mean {mean[top]:.3f} against {mean[CURRENT]:.3f} now "
              f"({', '.join(f'{s} {table[top][s]:.3f}' for s in sets)})"]
    return "\n".join(lines)


PICKING = list(itertools.product((400, 500, 600, 700, 10**6), (0.5, 0.6, 0.75), (4, 8)))  # characters, floor, units


def picking(path: Path) -> str:
    """How much is quoted: "found in reply" and the reply's mean length per set, under each
    reading budget (characters), floor relative to the best unit, and count of units, the
    weights as they are. The old rule was four units within 75% of the best, no budget."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    sets = list(dict.fromkeys(str(row["set"]) for row in rows))
    lines = [f"| characters | floor | units | {' | '.join(sets)} | mean | mean length |",
             "|---|---|---|" + "---|" * (len(sets) + 2)]
    from rag.providers.extractive import ExtractiveAnswerer

    for chars, floor, most in PICKING:
        answerer = ExtractiveAnswerer(_answerer().model, reply_chars=chars, relative_floor=floor, max_sentences=most)
        found_in: dict[str, list[float]] = {}
        lengths: list[int] = []
        for row in rows:
            text = reply(row, CURRENT, answerer)
            found_in.setdefault(str(row["set"]), []).append(found(row, text))
            lengths.append(len(text))
        means = [sum(found_in[s]) / len(found_in[s]) for s in sets]
        lines.append(f"| {'none' if chars >= 10**6 else chars} | {floor} | {most} | "
                     f"{' | '.join(f'{m:.3f}' for m in means)} | {sum(means) / len(means):.3f} | "
                     f"{sum(lengths) / len(lengths):.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/answer_fit.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    units = commands.add_parser("units")
    units.add_argument("names", nargs="*", default=["sample", "python-docs", "glpk", "asymptote"])
    units.add_argument("--out", type=Path, default=DEFAULT_OUT)
    fitting = commands.add_parser("fit")
    fitting.add_argument("--units", type=Path, default=DEFAULT_OUT)
    fitting.add_argument("--rank-only", action="store_true", help="choose only the rank prior, the rest as is")
    quoting = commands.add_parser("picking")
    quoting.add_argument("--units", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.command == "units":
        collect(args.names, args.out)
    elif args.command == "picking":
        print(picking(args.units))
    else:
        print(fit(args.units, RANK_GRID if args.rank_only else GRID))
    return 0


if __name__ == "__main__":
    sys.exit(main())
