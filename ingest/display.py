"""How an ingest run looks in a terminal: a progress bar for files and chunks on stderr,
then a summary table and the list of failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.report import IngestReport, ProgressCallback, Status
from ingest.report import Progress as IngestProgress


@contextmanager
def progress_bars(console: Console, enabled: bool) -> Iterator[ProgressCallback | None]:
    """Two bars, files and chunks, redrawn from each progress event; nothing at all when
    disabled (not a terminal, or --quiet)."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("{task.description:<7}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", style="dim"),
    )
    with Progress(*columns, console=console, transient=True) as bars:
        files = bars.add_task("files", total=None, current="")
        chunks = bars.add_task("chunks", total=None, current="")

        def show(event: IngestProgress) -> None:
            bars.update(files, completed=event.files_done, total=event.files_total, current=event.current)
            bars.update(chunks, completed=event.chunks_done, total=event.chunks_total)

        yield show


def headline(report: IngestReport) -> str:
    return f"{'Dry run: would ingest' if report.dry_run else 'Ingested'} into collection {report.collection!r}"


def summary(report: IngestReport) -> Table:
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("files", justify="right")
    for status in Status:
        table.add_row(f"files {status}", str(report.count(status)))
    table.add_row("chunks embedded", f"{report.embedded_chunks:,}")
    table.add_row("chunks reused", f"{report.reused_chunks:,}")
    table.add_row("tokens embedded", f"{report.tokens:,}")
    if report.vision_calls:
        table.add_row("figures and scans read by Gemini", f"{report.vision_calls:,}")
        table.add_row("tokens (images and their text)", f"{report.vision_tokens:,}")
    table.add_row("cost (USD)", f"{report.cost_usd:.4f}")
    return table


def details(report: IngestReport) -> Iterator[str]:
    """The lines under the table: what failed and why, what was skipped, what was done
    besides (reused vectors, orphans removed), and why the run stopped."""
    yield f"Embedder {report.embedder}; corpus version {report.version}."
    for outcome in report.of(Status.FAILED):
        yield f"[red]failed[/]  {escape(outcome.source)}: {escape(outcome.reason)}"
    for outcome in report.of(Status.SKIPPED):
        yield f"[yellow]skipped[/] {escape(outcome.source)}: {escape(outcome.reason)}"
    for outcome in report.of(Status.ADDED) + report.of(Status.UPDATED):
        if outcome.reason:  # moved from another folder, or pages left unread
            yield f"[cyan]note[/]    {escape(outcome.source)}: {escape(outcome.reason)}"
    if report.orphans_removed:
        yield f"Removed {report.orphans_removed:,} chunks left behind by an interrupted run."
    if report.dry_run:
        yield "Dry run: nothing was written."
    elif report.stopped:
        yield f"[red bold]Stopped:[/] {escape(report.stopped)}"
        if report.not_done:
            yield f"{report.not_done:,} files were not ingested yet."
