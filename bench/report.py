"""The run as Markdown: the tables RESULTS.md quotes, written beside the JSON so the
numbers in the document are copied from a run, never typed in."""

from __future__ import annotations

from bench.harness import Figure, Run, Table


def markdown(run: Run) -> str:
    m = run.machine
    lines = [
        f"Run `{run.profile}` at commit `{run.commit}`, {run.started} → {run.finished} (UTC).",
        f"Machine: {m.cpu}, {m.cores} cores, {m.memory_gib} GiB, Python {m.python}, {m.platform}; "
        f"load average (1/5/15 min) at start {_load(m.load_average)}, at the end {_load(run.load_average_end)}.",
        "",
    ]
    for table in run.tables:
        lines += _table(table)
    if run.problems:
        lines += ["Problems:", *(f"- {p}" for p in run.problems), ""]
    return "\n".join(lines)


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def _table(table: Table) -> list[str]:
    lines = [f"#### {table.bench}: {table.title}", ""]
    if table.setup:
        lines += [f"_{table.setup}_", ""]
    lines += ["| figure | value | unit | target | what it means |", "|---|---:|---|---|---|"]
    lines += [f"| {f.name} | {f.shown()} | {f.unit} | {_target(f)} | {_cell(f.note)} |" for f in table.figures]
    return [*lines, ""]


def _target(figure: Figure) -> str:
    if figure.met is None:
        return figure.target
    return f"{figure.target} {'met' if figure.met else '**missed**'}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
