"""The columns of every report table, shared by the terminal and the HTML report so the two
always show the same figures under the same names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rag.eval.gate import Difference, GateResult
from rag.eval.results import AnswerRow, RetrievalRow, TagRow

Row = TypeVar("Row")


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def routes(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))


@dataclass(frozen=True)
class Columns(Generic[Row]):
    title: str
    header: tuple[str, ...]
    cells: Callable[[Row], list[str]]
    text: frozenset[str]  # columns of words, left-aligned; the rest are figures

    def rows(self, items: Sequence[Row]) -> list[list[str]]:
        return [self.cells(item) for item in items]


RETRIEVAL: Columns[RetrievalRow] = Columns(
    "Retrieval (hit@k, recall@k, MRR, nDCG@10)",
    ("variant", "cases", "hit@k", "recall@k", "MRR", "nDCG@10"),
    lambda r: [r.variant, str(r.cases), fmt(r.hit), fmt(r.recall), fmt(r.mrr), fmt(r.ndcg10)],
    frozenset({"variant"}),
)

QUALITY: Columns[AnswerRow] = Columns(
    "Answers (quality)",
    ("config", "cases", "errors", "EM", "F1", "cite P", "cite R", "refusal", "false ref.", "faithful", "judge",
     "correct"),
    lambda a: [a.config, str(a.cases), str(a.errors), fmt(a.exact_match), fmt(a.token_f1),
               fmt(a.citation_precision), fmt(a.citation_recall), fmt(a.refusal_accuracy),
               fmt(a.false_refusals), fmt(a.faithfulness), a.judge, fmt(a.correctness)],
    frozenset({"config", "judge"}),
)

GROUNDING: Columns[AnswerRow] = Columns(
    "Answers (grounding: the reference answer and the evidence quote in the reply, each next to its ceiling in "
    "the top 3 passages; cited sentences their source supports)",
    ("config", "answer in reply", "in top-3", "evidence in reply", "in top-3", "supported cites",
     "uncited facts/answer"),
    lambda a: [a.config, fmt(a.answer_in_reply), fmt(a.answer_in_top3), fmt(a.evidence_in_reply),
               fmt(a.evidence_in_top3), fmt(a.supported_citations), fmt(a.uncited_facts, 2)],
    frozenset({"config"}),
)

COST: Columns[AnswerRow] = Columns(
    "Answers (latency and cost; right: refused when unanswerable, else judged correct or the reference in "
    "the reply)",
    ("config", "p50 s", "p95 s", "cost p50 $", "p95 $", "total $", "right", "$/right", "judge $", "routes"),
    lambda a: [a.config, fmt(a.latency_p50_s, 2), fmt(a.latency_p95_s, 2), fmt(a.cost_p50_usd, 5),
               fmt(a.cost_p95_usd, 5), fmt(a.cost_total_usd, 4), f"{a.correct}/{a.cases - a.errors}",
               fmt(a.cost_per_correct_usd, 5), fmt(a.judge_cost_usd, 4), routes(a.routes)],
    frozenset({"config", "routes"}),
)

TAGS: Columns[TagRow] = Columns(
    "By tag",
    ("tag", "config", "cases", "recall@k", "F1", "answer in reply", "in top-3", "evidence in reply", "in top-3",
     "cite R", "faithful", "refused"),
    lambda t: [t.tag, t.config, str(t.cases), fmt(t.recall), fmt(t.token_f1), fmt(t.answer_in_reply),
               fmt(t.answer_in_top3), fmt(t.evidence_in_reply), fmt(t.evidence_in_top3), fmt(t.citation_recall),
               fmt(t.faithfulness), fmt(t.refused)],
    frozenset({"tag", "config"}),
)


def gate_columns(gate: GateResult) -> Columns[Difference]:
    failing = set(gate.regressions)
    return Columns(
        f"Against the baseline (a drop of more than {gate.max_drop:g} fails)",
        ("metric", "baseline", "now", "change", "verdict"),
        lambda d: [d.metric, fmt(d.baseline), fmt(d.current), f"{d.delta:+.3f}",
                   "REGRESSION" if d in failing else ""],
        frozenset({"metric"}),
    )


LEXICAL_NOTE = (
    "Faithfulness marked 'lexical' is the offline proxy: the share of the answer's content words found "
    "in the passages it was shown. It is not a model's judgement; set a Gemini key for a judged score."
)
