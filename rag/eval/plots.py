"""The report's charts as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from rag.eval.results import AnswerScores, RunReport


def grouped_bars(title: str, groups: Sequence[str], series: dict[str, Sequence[float | None]]) -> bytes:
    """One group of bars per row (variant or configuration), one bar per metric."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2), 3.8))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [g + i * width for g in range(len(groups))]
        ax.bar(xs, [v or 0.0 for v in values], width, label=name)
    ax.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))])
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7, ncols=min(len(series), 5), loc="upper center", bbox_to_anchor=(0.5, -0.35))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def latency_boxes(cases: Sequence[AnswerScores], configs: Sequence[str]) -> bytes:
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(configs) + 2), 3.5))
    data = [[c.latency_s for c in cases if c.config == cfg and not c.error] or [0.0] for cfg in configs]
    ax.boxplot(data, tick_labels=list(configs))
    ax.set_ylabel("seconds per answer")
    ax.set_title("Answer latency")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def charts(report: RunReport) -> dict[str, bytes]:
    """Title -> PNG for every chart the run has data for."""
    out: dict[str, bytes] = {}
    if report.retrieval:
        rows = report.retrieval
        out["Retrieval by variant"] = grouped_bars(
            "Retrieval", [r.variant for r in rows],
            {"hit@k": [r.hit for r in rows], "recall@k": [r.recall for r in rows],
             "MRR": [r.mrr for r in rows], "nDCG@10": [r.ndcg10 for r in rows]},
        )
    if report.answers:
        rows_a = report.answers
        out["Answer quality by configuration"] = grouped_bars(
            "Answers", [a.config for a in rows_a],
            {"token F1": [a.token_f1 for a in rows_a], "citation P": [a.citation_precision for a in rows_a],
             "citation R": [a.citation_recall for a in rows_a], "refusal": [a.refusal_accuracy for a in rows_a],
             f"faithfulness ({rows_a[0].judge})": [a.faithfulness for a in rows_a]},
        )
        out["Answer latency"] = latency_boxes(report.answer_cases, [a.config for a in rows_a])
    return out


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
