"""What a run produced, per case and in aggregate, and its JSON form.

The JSON file is the record other runs compare with (`--baseline`), so it carries the
aggregate rows under stable keys and every per-case score for drilling down.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.eval.metrics import mean, percentile

RETRIEVAL_HEADLINE = ("hit", "recall", "mrr", "ndcg10")
ANSWER_HEADLINE = ("token_f1", "citation_precision", "citation_recall", "refusal_accuracy", "faithfulness",
                   "answer_in_reply", "evidence_in_reply", "supported_citations")


@dataclass(frozen=True)
class RetrievalScores:
    """One case under one retrieval variant."""

    case_id: str
    variant: str
    hit: float
    recall: float
    mrr: float
    ndcg10: float
    retrieved: list[str] = field(default_factory=list)  # "source" or "source#page", in rank order


@dataclass(frozen=True)
class AnswerScores:
    """One case answered under one configuration. None means 'not defined for this case'
    (no citations to be precise about, no reference for an unanswerable question)."""

    case_id: str
    config: str
    answer: str
    unanswerable: bool
    tags: list[str]
    exact_match: float | None
    token_f1: float | None
    citation_precision: float | None
    citation_recall: float | None
    refused: bool
    faithfulness: float | None
    correctness: float | None
    judge: str  # "gemini" or "lexical": how faithfulness was scored
    route: str
    cost_usd: float
    judge_cost_usd: float
    latency_s: float
    ttft_s: float
    error: str = ""
    answer_in_reply: float | None = None  # the reference answer is in the reply
    answer_in_top3: float | None = None  # ... in the first three passages shown: the quoting ceiling
    supported_citations: float | None = None  # share of cited sentences their citation supports
    uncited_facts: int = 0  # sentences stating a fact without a citation
    evidence_in_reply: float | None = None  # the case's evidence quote is in the reply (metrics.contains_evidence)
    evidence_in_top3: float | None = None  # ... in the first three passages shown
    # What a reader of the report needs to judge a failure without the test set beside it
    # (empty in reports written before they were kept).
    question: str = ""
    expected: str = ""  # the reference answer; for an unanswerable case, that a refusal is right
    cited: list[str] = field(default_factory=list)  # the sources the answer cites: "guide.pdf p. 3"


@dataclass(frozen=True)
class RetrievalRow:
    variant: str
    cases: int
    hit: float | None
    recall: float | None
    mrr: float | None
    ndcg10: float | None


@dataclass(frozen=True)
class AnswerRow:
    config: str
    cases: int
    errors: int
    exact_match: float | None
    token_f1: float | None
    citation_precision: float | None
    citation_recall: float | None
    refusal_accuracy: float | None  # unanswerable cases the answer refused
    false_refusals: float | None  # answerable cases the answer refused anyway
    faithfulness: float | None
    correctness: float | None
    judge: str
    latency_p50_s: float | None
    latency_p95_s: float | None
    cost_p50_usd: float | None
    cost_p95_usd: float | None
    cost_total_usd: float
    judge_cost_usd: float
    routes: dict[str, int]
    answer_in_reply: float | None = None
    answer_in_top3: float | None = None
    supported_citations: float | None = None
    uncited_facts: float | None = None  # per answer
    evidence_in_reply: float | None = None  # over the answerable cases that quote evidence
    evidence_in_top3: float | None = None
    correct: int = 0  # answers counted right (see `is_correct`)
    cost_per_correct_usd: float | None = None  # what the configuration paid per right answer


@dataclass(frozen=True)
class TagRow:
    """One configuration's scores on the cases with one tag (multi-hop, page, follow-up, ...)."""

    tag: str
    config: str
    cases: int
    recall: float | None  # recall@k of the configuration's own retrieval setting
    token_f1: float | None
    citation_recall: float | None
    faithfulness: float | None
    refused: float | None  # share of the cases the answer refused
    answer_in_reply: float | None = None
    answer_in_top3: float | None = None
    evidence_in_reply: float | None = None
    evidence_in_top3: float | None = None


@dataclass
class RunReport:
    testset: str
    provider: str
    collection: str
    corpus_version: int
    started: str
    cases: int
    workers: int  # cases in flight: latency under load is not latency alone
    problems: list[str]
    retrieval: list[RetrievalRow]
    answers: list[AnswerRow]
    tags: list[TagRow] = field(default_factory=list)
    retrieval_cases: list[RetrievalScores] = field(default_factory=list)
    answer_cases: list[AnswerScores] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run did besides answering (a File Search upload)

    def headline(self) -> dict[str, float]:
        """Flat `row / metric -> value` of the metrics a regression gate watches."""
        out: dict[str, float] = {}
        for r in self.retrieval:
            out |= {f"retrieval {r.variant} / {m}": v for m in RETRIEVAL_HEADLINE
                    if (v := getattr(r, m)) is not None}
        for a in self.answers:
            out |= {f"answers {a.config} / {m}": v for m in ANSWER_HEADLINE if (v := getattr(a, m)) is not None}
        return out

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> RunReport:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            **{k: v for k, v in raw.items() if k not in _NESTED},
            retrieval=[RetrievalRow(**r) for r in raw["retrieval"]],
            answers=[AnswerRow(**a) for a in raw["answers"]],
            tags=[TagRow(**t) for t in raw.get("tags", [])],
            retrieval_cases=[RetrievalScores(**c) for c in raw.get("retrieval_cases", [])],
            answer_cases=[AnswerScores(**c) for c in raw.get("answer_cases", [])],
        )


_NESTED = {"retrieval", "answers", "tags", "retrieval_cases", "answer_cases"}


def retrieval_row(variant: str, scores: list[RetrievalScores]) -> RetrievalRow:
    return RetrievalRow(
        variant=variant,
        cases=len(scores),
        hit=mean([s.hit for s in scores]),
        recall=mean([s.recall for s in scores]),
        mrr=mean([s.mrr for s in scores]),
        ndcg10=mean([s.ndcg10 for s in scores]),
    )


def is_correct(score: AnswerScores) -> bool:
    """An answer counted right: an unanswerable case refused; an answerable one not refused
    and judged at least half correct, or, with no judged correctness (offline), with the
    reference answer found in the reply."""
    if score.error:
        return False
    if score.unanswerable:
        return score.refused
    if score.refused:
        return False
    found = score.correctness if score.correctness is not None else score.answer_in_reply
    return found is not None and found >= 0.5


def answer_row(config: str, scores: list[AnswerScores]) -> AnswerRow:
    ok = [s for s in scores if not s.error]
    answerable = [s for s in ok if not s.unanswerable]
    latencies = [s.latency_s for s in ok]
    costs = [s.cost_usd for s in ok]
    correct = sum(is_correct(s) for s in ok)
    return AnswerRow(
        config=config,
        cases=len(scores),
        errors=len(scores) - len(ok),
        exact_match=mean([s.exact_match for s in ok]),
        token_f1=mean([s.token_f1 for s in ok]),
        citation_precision=mean([s.citation_precision for s in ok]),
        citation_recall=mean([s.citation_recall for s in ok]),
        refusal_accuracy=mean([float(s.refused) for s in ok if s.unanswerable]),
        false_refusals=mean([float(s.refused) for s in answerable]),
        faithfulness=mean([s.faithfulness for s in ok]),
        correctness=mean([s.correctness for s in ok]),
        judge=", ".join(sorted({s.judge for s in ok if s.faithfulness is not None})) or "none",
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        cost_p50_usd=percentile(costs, 50),
        cost_p95_usd=percentile(costs, 95),
        cost_total_usd=sum(costs),
        judge_cost_usd=sum(s.judge_cost_usd for s in ok),
        routes=dict(Counter(s.route for s in ok)),
        answer_in_reply=mean([s.answer_in_reply for s in answerable]),
        answer_in_top3=mean([s.answer_in_top3 for s in answerable]),
        supported_citations=mean([s.supported_citations for s in ok]),
        uncited_facts=mean([float(s.uncited_facts) for s in ok]),
        evidence_in_reply=mean([s.evidence_in_reply for s in answerable]),
        evidence_in_top3=mean([s.evidence_in_top3 for s in answerable]),
        correct=correct,
        cost_per_correct_usd=sum(costs) / correct if correct else None,
    )


def tag_rows(
    config: str, variant: str, answers: list[AnswerScores], retrieval: list[RetrievalScores]
) -> list[TagRow]:
    """Per tag, in order of first appearance: where a configuration is strong or weak."""
    mine = [a for a in answers if a.config == config and not a.error]
    recall = {r.case_id: r.recall for r in retrieval if r.variant == variant}
    rows = []
    for tag in dict.fromkeys(t for a in mine for t in a.tags):
        tagged = [a for a in mine if tag in a.tags]
        rows.append(TagRow(
            tag=tag,
            config=config,
            cases=len(tagged),
            recall=mean([recall.get(a.case_id) for a in tagged]),
            token_f1=mean([a.token_f1 for a in tagged]),
            citation_recall=mean([a.citation_recall for a in tagged]),
            faithfulness=mean([a.faithfulness for a in tagged]),
            refused=mean([float(a.refused) for a in tagged]),
            answer_in_reply=mean([a.answer_in_reply for a in tagged]),
            answer_in_top3=mean([a.answer_in_top3 for a in tagged]),
            evidence_in_reply=mean([a.evidence_in_reply for a in tagged]),
            evidence_in_top3=mean([a.evidence_in_top3 for a in tagged]),
        ))
    return rows
