"""The run's tables in the terminal (rich): what a person reads right after a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rag.eval.gate import GateResult
from rag.eval.results import AnswerRow, RetrievalRow, RunReport, TagRow


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def retrieval_table(rows: list[RetrievalRow]) -> Table:
    table = Table(title="Retrieval (hit@k, recall@k, MRR, nDCG@10)")
    for column in ("variant", "cases", "hit@k", "recall@k", "MRR", "nDCG@10"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in rows:
        table.add_row(r.variant, str(r.cases), fmt(r.hit), fmt(r.recall), fmt(r.mrr), fmt(r.ndcg10))
    return table


def answer_table(rows: list[AnswerRow]) -> Table:
    table = Table(title="Answers (quality)")
    columns = ("config", "cases", "EM", "F1", "cite P", "cite R", "refusal", "false ref.", "faithful",
               "judge", "correct")
    for column in columns:
        table.add_column(column, justify="left" if column in {"config", "judge"} else "right")
    for a in rows:
        table.add_row(
            a.config + (f" ({a.errors} errors)" if a.errors else ""), str(a.cases), fmt(a.exact_match),
            fmt(a.token_f1), fmt(a.citation_precision), fmt(a.citation_recall), fmt(a.refusal_accuracy),
            fmt(a.false_refusals), fmt(a.faithfulness), a.judge, fmt(a.correctness),
        )
    return table


def cost_table(rows: list[AnswerRow]) -> Table:
    table = Table(title="Answers (latency and cost)")
    for column in ("config", "p50 s", "p95 s", "cost p50 $", "p95 $", "total $", "judge $", "routes"):
        table.add_column(column, justify="left" if column in {"config", "routes"} else "right")
    for a in rows:
        table.add_row(
            a.config, fmt(a.latency_p50_s, 2), fmt(a.latency_p95_s, 2), fmt(a.cost_p50_usd, 5),
            fmt(a.cost_p95_usd, 5), fmt(a.cost_total_usd, 4), fmt(a.judge_cost_usd, 4),
            ", ".join(f"{k} {v}" for k, v in sorted(a.routes.items())),
        )
    return table


def tag_table(rows: list[TagRow]) -> Table:
    table = Table(title="By tag")
    for column in ("tag", "config", "cases", "recall@k", "F1", "cite R", "faithful", "refused"):
        table.add_column(column, justify="left" if column in {"tag", "config"} else "right")
    for t in rows:
        table.add_row(t.tag, t.config, str(t.cases), fmt(t.recall), fmt(t.token_f1), fmt(t.citation_recall),
                      fmt(t.faithfulness), fmt(t.refused))
    return table


def gate_table(gate: GateResult) -> Table:
    table = Table(title=f"Against the baseline (a drop of more than {gate.max_drop:g} fails)")
    for column in ("metric", "baseline", "now", "change", ""):
        table.add_column(column, justify="left" if column == "metric" else "right")
    failing = set(gate.regressions)
    for d in gate.differences:
        mark = "[red]REGRESSION[/red]" if d in failing else ""
        table.add_row(d.metric, fmt(d.baseline), fmt(d.current), f"{d.delta:+.3f}", mark)
    return table


def print_report(report: RunReport, console: Console, gate: GateResult | None = None) -> None:
    console.print(
        f"[bold]{report.testset}[/bold]: {report.cases} cases, provider {report.provider}, "
        f"collection {report.collection} (version {report.corpus_version}), {report.workers} workers"
    )
    for problem in report.problems:
        console.print(Text.assemble(("skipped ", "yellow"), str(problem)))
    if report.retrieval:
        console.print(retrieval_table(report.retrieval))
    if report.answers:
        console.print(answer_table(report.answers))
        console.print(cost_table(report.answers))
    if report.tags:
        console.print(tag_table(report.tags))
        if any(a.judge == "lexical" for a in report.answers):
            console.print("faithfulness marked 'lexical' is the offline word-overlap proxy, not a model's judgement")
    if gate is not None:
        console.print(gate_table(gate))
        if gate.only_in_baseline:
            console.print(f"not measured this run: {', '.join(gate.only_in_baseline)}")
