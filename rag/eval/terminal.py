"""The run's tables in the terminal (rich): what a person reads right after a run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rag.eval.columns import COST, GROUNDING, LEXICAL_NOTE, QUALITY, RETRIEVAL, TAGS, Columns, gate_columns
from rag.eval.gate import GateResult
from rag.eval.results import RunReport

Row = TypeVar("Row")


def table(columns: Columns[Row], items: Sequence[Row]) -> Table:
    out = Table(title=columns.title)
    for name in columns.header:
        out.add_column(name, justify="left" if name in columns.text else "right")
    for cells in columns.rows(items):
        out.add_row(*(Text(c, style="bold red" if c == "REGRESSION" else "") for c in cells))
    return out


def print_report(report: RunReport, console: Console, gate: GateResult | None = None) -> None:
    console.print(
        f"{report.testset}: {report.cases} cases, provider {report.provider}, collection {report.collection} "
        f"(version {report.corpus_version}), {report.workers} workers",
        markup=False, highlight=False,
    )
    for problem in report.problems:
        console.print(Text.assemble(("skipped ", "yellow"), str(problem)))
    for note in report.notes:
        console.print(note, markup=False, highlight=False)
    if report.retrieval:
        console.print(table(RETRIEVAL, report.retrieval))
    if report.answers:
        console.print(table(QUALITY, report.answers))
        console.print(table(GROUNDING, report.answers))
        console.print(table(COST, report.answers))
        if any(a.judge == "lexical" for a in report.answers):
            console.print(LEXICAL_NOTE, markup=False, highlight=False)
    if report.tags:
        console.print(table(TAGS, report.tags))
    if gate is not None:
        console.print(table(gate_columns(gate), gate.differences))
        if gate.only_in_baseline:
            console.print(f"not measured this run: {', '.join(gate.only_in_baseline)}", markup=False)
