"""The HTML report: the tables, the charts (PNG embedded as base64, so it is one file to
send around) and every case's answer. All text is escaped: answers quote user documents."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from rag.eval.gate import GateResult
from rag.eval.plots import charts
from rag.eval.results import RunReport
from rag.eval.terminal import fmt

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: right; vertical-align: top; }
th:first-child, td:first-child, td.text { text-align: left; }
td.text { max-width: 36rem; white-space: pre-wrap; }
.bad { color: #b00020; font-weight: bold; } .note { color: #666; } img { max-width: 100%; }
"""


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
        parts.append(f"<h2>Skipped test-set lines</h2><ul>{items}</ul>")
    if gate is not None:
        parts.append(_gate(gate))
    if report.retrieval:
        parts.append("<h2>Retrieval</h2>")
        parts.append(_table(
            ["variant", "cases", "hit@k", "recall@k", "MRR", "nDCG@10"],
            [[r.variant, str(r.cases), fmt(r.hit), fmt(r.recall), fmt(r.mrr), fmt(r.ndcg10)]
             for r in report.retrieval],
        ))
    if report.answers:
        parts.append("<h2>Answers</h2>")
        parts.append(_table(
            ["config", "cases", "errors", "EM", "token F1", "citation P", "citation R", "refusal",
             "false refusals", "faithfulness", "judge", "correctness", "latency p50 s", "p95 s",
             "cost p50 $", "p95 $", "total $", "judge $", "routes"],
            [[a.config, str(a.cases), str(a.errors), fmt(a.exact_match), fmt(a.token_f1),
              fmt(a.citation_precision), fmt(a.citation_recall), fmt(a.refusal_accuracy),
              fmt(a.false_refusals), fmt(a.faithfulness), a.judge, fmt(a.correctness),
              fmt(a.latency_p50_s, 2), fmt(a.latency_p95_s, 2), fmt(a.cost_p50_usd, 5),
              fmt(a.cost_p95_usd, 5), fmt(a.cost_total_usd, 4), fmt(a.judge_cost_usd, 4),
              ", ".join(f"{k} {v}" for k, v in sorted(a.routes.items()))] for a in report.answers],
        ))
        if any(a.judge == "lexical" for a in report.answers):
            parts.append("<p class='note'>Faithfulness marked <b>lexical</b> is the offline proxy: the share "
                         "of the answer's content words found in the passages it was shown. It is not a "
                         "model's judgement; set a Gemini key for a judged score.</p>")
    if report.tags:
        parts.append("<h2>By tag</h2>")
        parts.append(_table(
            ["tag", "config", "cases", "recall@k", "token F1", "citation R", "faithfulness", "refused"],
            [[t.tag, t.config, str(t.cases), fmt(t.recall), fmt(t.token_f1), fmt(t.citation_recall),
              fmt(t.faithfulness), fmt(t.refused)] for t in report.tags],
        ))
    for title, png in charts(report).items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{escape(title)}</h2><img alt='{escape(title)}' src='data:image/png;base64,{data}'>")
    if report.answer_cases:
        parts.append("<h2>Every answer</h2>")
        parts.append(_table(
            ["case", "config", "tags", "answer", "F1", "cite P", "cite R", "refused", "faithful", "route", "s"],
            [[c.case_id, c.config, ", ".join(c.tags), c.error or c.answer, fmt(c.token_f1),
              fmt(c.citation_precision), fmt(c.citation_recall), "yes" if c.refused else "",
              fmt(c.faithfulness), c.route, fmt(c.latency_s, 2)] for c in report.answer_cases],
            text_columns={3},
        ))
    parts.append("</body></html>")
    return "\n".join(parts)


def _gate(gate: GateResult) -> str:
    verdict = (
        "<p>No regression against the baseline.</p>" if gate.passed
        else f"<p class='bad'>{len(gate.regressions)} regression(s) beyond {gate.max_drop:g}.</p>"
    )
    failing = set(gate.regressions)
    rows = [[d.metric, fmt(d.baseline), fmt(d.current), f"{d.delta:+.3f}",
             "REGRESSION" if d in failing else ""] for d in gate.differences]
    return "<h2>Against the baseline</h2>" + verdict + _table(["metric", "baseline", "now", "change", ""], rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: set[int] | None = None) -> str:
    text_columns = text_columns or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='text'>{escape(cell)}</td>" if i in text_columns else f"<td>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
