"""The HTML report: the tables, the charts (PNG embedded as base64, so it is one file to
send around) and every case's answer. All text is escaped: answers quote user documents."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from typing import TypeVar

from rag.eval.columns import COST, GROUNDING, LEXICAL_NOTE, QUALITY, RETRIEVAL, TAGS, Columns, fmt, gate_columns
from rag.eval.gate import GateResult
from rag.eval.metrics import without_note
from rag.eval.plots import charts
from rag.eval.results import AnswerScores, RunReport

Row = TypeVar("Row")

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: right; vertical-align: top; }
th.text, td.text { text-align: left; }
td.long { max-width: 40rem; white-space: pre-wrap; }
.bad { color: #b00020; font-weight: bold; } .note { color: #666; } img { max-width: 100%; }
"""

CASES: Columns[AnswerScores] = Columns(
    "Every answer",
    ("case", "config", "tags", "question", "expected", "answer", "cited", "in reply", "F1", "cite P", "cite R",
     "refused", "faithful", "route", "s"),
    lambda c: [c.case_id, c.config, ", ".join(c.tags), c.question, c.expected, c.error or without_note(c.answer),
               "; ".join(c.cited), fmt(c.answer_in_reply), fmt(c.token_f1), fmt(c.citation_precision),
               fmt(c.citation_recall), "yes" if c.refused else "", fmt(c.faithfulness), c.route, fmt(c.latency_s, 2)],
    frozenset({"case", "config", "tags", "question", "expected", "answer", "cited", "refused", "route"}),
)


def render(report: RunReport, gate: GateResult | None = None) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Evaluation: {escape(report.testset)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Evaluation: {escape(report.testset)}</h1>",
        f"<p>{report.cases} cases · provider {escape(report.provider)} · collection "
        f"{escape(report.collection)} (version {report.corpus_version}) · {report.workers} workers · "
        f"{escape(report.started)}</p>",
    ]
    if report.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in report.problems)
        parts.append(f"<h2>Skipped</h2><ul>{items}</ul>")
    parts += [f"<p>{escape(note)}</p>" for note in report.notes]
    if gate is not None:
        verdict = ("<p>No regression against the baseline.</p>" if gate.passed else
                   f"<p class='bad'>{len(gate.regressions)} regression(s) beyond {gate.max_drop:g}.</p>")
        parts += [verdict, table(gate_columns(gate), gate.differences)]
    if report.retrieval:
        parts.append(table(RETRIEVAL, report.retrieval))
    if report.answers:
        parts += [table(QUALITY, report.answers), table(GROUNDING, report.answers), table(COST, report.answers)]
        if any(a.judge == "lexical" for a in report.answers):
            parts.append(f"<p class='note'>{escape(LEXICAL_NOTE)}</p>")
    if report.tags:
        parts.append(table(TAGS, report.tags))
    for title, png in charts(report).items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{escape(title)}</h2><img alt='{escape(title)}' src='data:image/png;base64,{data}'>")
    if report.answer_cases:
        parts.append(table(CASES, report.answer_cases, long={"answer"}))
    parts.append("</body></html>")
    return "\n".join(parts)


def table(columns: Columns[Row], items: Sequence[Row], long: set[str] | None = None) -> str:
    long = long or set()
    classes = [
        " ".join(c for c, on in (("text", name in columns.text), ("long", name in long)) if on)
        for name in columns.header
    ]
    head = "".join(f"<th class='{cls}'>{escape(name)}</th>" for cls, name in zip(classes, columns.header,
                                                                                  strict=True))
    body = "".join(
        "<tr>" + "".join(
            f"<td class='{cls}{' bad' if cell == 'REGRESSION' else ''}'>{escape(cell)}</td>"
            for cls, cell in zip(classes, cells, strict=True)
        ) + "</tr>"
        for cells in columns.rows(items)
    )
    return f"<h2>{escape(columns.title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
