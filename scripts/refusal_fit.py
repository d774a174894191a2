"""Where the offline answerer's refusal rule comes from: its signals on every test set, and the
rule chosen by leave-one-set-out cross-validation.

    python scripts/refusal_fit.py signals [NAME...] [--out FILE]   # retrieve and score every case
    python scripts/refusal_fit.py fit [FILE...] [--max-false 0.04]   # choose the rule, report held-out figures

`signals` runs each set's cases through the default retrieval (the follow-up rewrite, hybrid
search, the second ranking stage, k = top_k) against the collection `python
scripts/testsets.py eval NAME` built (same GEMRAG_DATA_DIR), and writes one JSON line per
case: the answerer's `Support` signals and whether the case is unanswerable. `fit` tries
every candidate rule (a logistic model over a subset of the signals, its threshold chosen on
the training sets) with each set held out in turn, and prints what the held-out set got:
the figures EVALUATION.md reports. Measured so far, no learned rule beat the
key-term rule on a held-out set within the false-refusal budget, so none is shipped; nor did
the signals weighed by the corpus's rarity of the question's words (`covers`, 2026-12-05).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.testsets import Retrieved, doc_sets, retrieved_cases  # noqa: E402

if TYPE_CHECKING:
    from rag.store import Store
    from rag.types import Passage

DEFAULT_OUT = Path("eval-out") / "refusal" / "signals.jsonl"
MIN_SUPPORT = 0.30  # the answerer's floor: below it nothing is quoted, so it refuses (ExtractiveAnswerer.min_support)
MAX_FALSE_REFUSALS = 0.04  # on the training sets: below the goal of 1 in 20, to leave room on a new set


# --- signals -------------------------------------------------------------------------------


def collect(names: Sequence[str], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for seen in retrieved_cases(names):
            question, shown, store = seen.question, seen.shown, seen.store
            support = seen.provider.answerer.support(question, shown, seen.mentioned_elsewhere, seen.unheard_of)
            query = np.array(seen.provider.embed_query(question).vectors[0])  # the offline collection's embedder
            vectors = store.vectors([p.chunk_id for p in shown[:1]])
            row = {"set": seen.doc_set.name, "id": seen.case.id, "unanswerable": seen.case.unanswerable,
                   "question": question, **{k: v for k, v in asdict(support).items() if k != "scored"},
                   **covers(seen),
                   # the best passage's cosine to the question: retrieval's own closeness, absolute
                   "top_similarity": float(query @ np.array(vectors[shown[0].chunk_id])) if vectors else None,
                   "shown": [[p.source, p.page, p.score] for p in shown]}
            sink.write(json.dumps(row) + "\n")
            sink.flush()


@dataclass(frozen=True)
class Rarity:
    """Each content word's inverse document frequency over a collection's chunks; a word the
    collection never holds weighs `unseen`, the most."""

    idf: dict[str, float]
    unseen: float

    @classmethod
    def of(cls, texts: Sequence[str]) -> Rarity:
        from rag.text import content_words

        df: dict[str, int] = {}
        for text in texts:
            for w in set(content_words(text)):
                df[w] = df.get(w, 0) + 1
        return cls({w: math.log((len(texts) + 1) / (n + 0.5)) for w, n in df.items()}, math.log(len(texts) + 1))


_RARITIES: dict[str, Rarity] = {}  # per collection: its chunks are read once per run


def rarity(store: Store) -> Rarity:
    if store.name not in _RARITIES:
        _RARITIES[store.name] = Rarity.of([c.text for c in store.chunks()])
    return _RARITIES[store.name]


def covers(seen: Retrieved) -> dict[str, float]:
    """Signals weighed by the corpus's rarity of the question's words (tried 2026-12-05 for
    near-miss questions: the documents name the thing asked about but not the fact asked):
    the share of the question's weight the best quotable unit holds (`cover_idf`), the first
    passage (`cov1_idf`) and the first three (`cov3_idf`) hold; the share of its two rarest
    words one unit holds together (`cover_pair`); the best share a unit holding what the
    question asks for (a figure, a date, a name) holds (`kind_cover`, 1 for other questions);
    the rarity of the rarest question word missing from the six and the three passages
    shown (`missing6`, `missing3`), over the rarity of a word the collection lacks."""
    from rag.providers.extractive import fits_kind, question_kind
    from rag.text import content_words, in_some_form

    question, shown = seen.question, seen.shown
    weights = rarity(seen.store)
    wanted = set(content_words(question))
    if not wanted:
        return {"cover_idf": 1.0, "cov1_idf": 1.0, "cov3_idf": 1.0, "cover_pair": 1.0, "kind_cover": 1.0,
                "missing6": 0.0, "missing3": 0.0}
    weight = {w: weights.idf.get(w, weights.unseen) for w in wanted}

    def held(words: set[str]) -> float:
        return sum(v for w, v in weight.items() if in_some_form(w, words)) / sum(weight.values())

    def pooled(passages: Sequence[Passage]) -> set[str]:
        return set(content_words(" ".join(f"{p.source} {p.heading} {p.text}" for p in passages)))

    def missing(passages: Sequence[Passage]) -> float:
        pool = pooled(passages)
        return max((v for w, v in weight.items() if not in_some_form(w, pool)), default=0.0) / weights.unseen

    units = [(u, set(content_words(f"{u.context} {u.heading} {u.text}")))
             for u in seen.provider.answerer.units(question, shown)]
    rarest = sorted(weight, key=lambda w: (-weight[w], w))[:2]
    kind = question_kind(question)
    return {"cover_idf": max((held(words) for _, words in units), default=0.0),
            "cov1_idf": held(pooled(shown[:1])), "cov3_idf": held(pooled(shown[:3])),
            "cover_pair": max((sum(in_some_form(w, words) for w in rarest) / len(rarest) for _, words in units),
                              default=0.0),
            "kind_cover": max((held(words) for u, words in units if fits_kind(u.text, kind)), default=0.0)
            if kind in ("number", "date", "name") else 1.0,
            "missing6": missing(shown), "missing3": missing(shown[:3])}


# --- fit -----------------------------------------------------------------------------------

FEATURES = ("best", "similarity", "coverage", "kind_absent", "top_score", "margin", "top_similarity", "cover_idf",
            "cov1_idf", "cov3_idf", "cover_pair", "kind_cover", "missing6", "missing3")


@dataclass(frozen=True)
class Rule:
    """Refuse when w . x + bias > 0 (x: the named signals); fitted as a logistic model."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def refuses(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ np.array(self.weights) + self.bias > 0)


def matrix(rows: list[dict[str, object]], features: Sequence[str]) -> np.ndarray:
    """The signals, an unknown one (None) as 1.0: above any cosine, so it refuses nothing."""
    return np.array([[1.0 if r[f] is None else float(r[f]) for f in features] for r in rows])  # type: ignore[arg-type]


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> tuple[np.ndarray, float]:
    """Newton's method on the class-balanced, L2-penalised log loss (the few unanswerable
    cases weigh as much as the many answerable ones)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    weight = np.where(y == 1, len(y) / (2 * max(y.sum(), 1)), len(y) / (2 * max((1 - y).sum(), 1)))
    beta = np.zeros(z.shape[1])
    penalty = np.diag([l2] * (z.shape[1] - 1) + [0.0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ beta)))
        gradient = z.T @ (weight * (p - y)) + penalty @ beta
        hessian = (z * (weight * p * (1 - p))[:, None]).T @ z + penalty
        beta -= np.linalg.solve(hessian, gradient)
    w = beta[:-1] / scale
    return w, float(beta[-1] - w @ mean)


def train(rows: list[dict[str, object]], features: tuple[str, ...], max_false: float = MAX_FALSE_REFUSALS) -> Rule:
    """The logistic model on the cases the key-term rule leaves, its bias then moved to the
    threshold that refuses the most unanswerable cases with at most `max_false` of
    the answerable ones refused (counting those the key-term rule already refused)."""
    left = [r for r in rows if not refused_before(r)]
    x, y = matrix(left, features), np.array([float(bool(r["unanswerable"])) for r in left])
    w, _ = logistic(x, y)
    margin = x @ w
    answerable = sum(not r["unanswerable"] for r in rows)
    allowed = max_false * answerable - sum(refused_before(r) and not r["unanswerable"] for r in rows)
    best = (-1, 0.0)
    for cut in sorted(set(margin)):
        refused = margin >= cut
        false = int((refused & (y == 0)).sum())
        if false <= allowed and (hit := int((refused & (y == 1)).sum())) > best[0]:
            best = (hit, cut)
    cut = best[1] if best[0] > 0 else float(margin.max()) + 1.0
    return Rule(features, tuple(float(v) for v in w), float(-cut + 1e-9))


def refused_before(row: dict[str, object]) -> bool:
    """What the answerer refused without a learned rule: a key term in no passage, a word no
    document holds that the question rests on, a yes/no question's word no passage says, or
    no unit reaching the support floor."""
    said_nothing = bool(row["missing"] or row["unheard"] or row.get("never_said"))
    return said_nothing or float(row["best"]) < MIN_SUPPORT  # type: ignore[arg-type]


def outcome(rows: list[dict[str, object]], rule: Rule | None) -> tuple[int, int, int, int]:
    """(unanswerable refused, unanswerable, answerable refused, answerable)."""
    refused = np.array([refused_before(r) for r in rows])
    if rule is not None:
        refused |= rule.refuses(matrix(rows, rule.features))
    no = np.array([bool(r["unanswerable"]) for r in rows])
    return int((refused & no).sum()), int(no.sum()), int((refused & ~no).sum()), int((~no).sum())


Outcome = tuple[int, int, int, int]


def cross_validate(rows: list[dict[str, object]], features: tuple[str, ...],
                   max_false: float = MAX_FALSE_REFUSALS) -> dict[str, Outcome]:
    """Each set's outcome under the rule trained on the other sets."""
    held: dict[str, Outcome] = {}
    for name in dict.fromkeys(str(r["set"]) for r in rows):
        rule = train([r for r in rows if r["set"] != name], features, max_false)
        held[name] = outcome([r for r in rows if r["set"] == name], rule)
    return held


def goodness(held: dict[str, Outcome]) -> tuple[float, float]:
    """Unanswerable refused minus answerable refused, each as a share: on the worst set, then summed."""
    scores = [o[0] / max(o[1], 1) - o[2] / max(o[3], 1) for o in held.values()]
    return (min(scores), sum(scores))


def candidates(rows: list[dict[str, object]]) -> list[tuple[str, ...]]:
    """Every set of one to three signals, of those every row holds (a signal file written
    before a signal was added lacks it)."""
    held = [f for f in FEATURES if all(f in r for r in rows)]
    return [c for n in (1, 2, 3) for c in itertools.combinations(held, n)]


def choose(rows: list[dict[str, object]], max_false: float = MAX_FALSE_REFUSALS) -> tuple[str, ...]:
    """The signals whose rule does best on each of these sets when trained on the others."""
    return max(candidates(rows), key=lambda c: goodness(cross_validate(rows, c, max_false)))


def total(outcomes: Sequence[Outcome]) -> Outcome:
    return tuple(int(sum(o[i] for o in outcomes)) for i in range(4))  # type: ignore[return-value]


def cell(o: Outcome) -> str:
    return f"{o[0]} of {o[1]} / {o[2]} of {o[3]}"


def fit(paths: Sequence[Path], max_false: float = MAX_FALSE_REFUSALS) -> str:
    """Nested leave-one-set-out: for each held-out set, the signals are chosen and the rule is
    fitted on the other sets alone, then scored on it. The shipped rule is chosen and fitted
    the same way on all sets."""
    rows = [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    sets = list(dict.fromkeys(str(r["set"]) for r in rows))
    before = {s: outcome([r for r in rows if r["set"] == s], None) for s in sets}
    after: dict[str, Outcome] = {}
    chosen_for: dict[str, tuple[str, ...]] = {}
    for held in sets:
        others = [r for r in rows if r["set"] != held]
        chosen_for[held] = choose(others, max_false)
        after[held] = outcome([r for r in rows if r["set"] == held], train(others, chosen_for[held], max_false))
    lines = ["Held out: unanswerable refused / answerable refused, each set with the signals chosen and the rule",
             "fitted on the other sets", "",
             "| set | key terms and support floor (before) | signals chosen on the others | learned rule, held out |",
             "|---|---|---|---|"]
    lines += [f"| {s} | {cell(before[s])} | {' + '.join(chosen_for[s])} | {cell(after[s])} |" for s in sets]
    lines.append(f"| all | {cell(total(list(before.values())))} | | {cell(total(list(after.values())))} |")
    lines += ["", "Each signal alone, leave one set out (not nested):", "", "| signal | " + " | ".join(sets) + " |",
              "|---|" + "---|" * len(sets)]
    for (feature,) in (c for c in candidates(rows) if len(c) == 1):
        held_out = cross_validate(rows, (feature,), max_false)
        lines.append(f"| {feature} | " + " | ".join(cell(held_out[s]) for s in sets) + " |")
    chosen = choose(rows, max_false)
    rule = train(rows, chosen, max_false)
    terms = " + ".join(f"{w:.4f} * {name}" for name, w in zip(rule.features, rule.weights, strict=True))
    lines += ["", f"chosen on all sets: {' + '.join(chosen)}; fitted on all sets: refuse when "
              f"{terms} + {rule.bias:.4f} > 0",
              f"on all sets (not held out): {cell(outcome(rows, rule))}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/refusal_fit.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    signals = commands.add_parser("signals", help="every case's refusal signals, one JSON line each")
    signals.add_argument("names", nargs="*", help=f"test sets (default: all: {', '.join(doc_sets())})")
    signals.add_argument("--out", type=Path, default=DEFAULT_OUT)
    fitting = commands.add_parser("fit", help="leave-one-set-out choice of the refusal rule")
    fitting.add_argument("signals", type=Path, nargs="*", default=[DEFAULT_OUT], help="signal files, one or more")
    fitting.add_argument("--max-false", type=float, default=MAX_FALSE_REFUSALS,
                         help=f"answerable cases a rule may refuse on the training sets (default {MAX_FALSE_REFUSALS})")
    args = parser.parse_args(argv)
    if args.command == "signals":
        collect(args.names, args.out)
        return 0
    print(fit(args.signals, args.max_false))
    return 0


if __name__ == "__main__":
    sys.exit(main())
