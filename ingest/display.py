"""How an ingest run looks in a terminal: a progress bar for files and chunks on stderr (in
a log, a progress line now and then), then a summary table and the list of failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ingest.report import IngestReport, ProgressCallback, Status
from ingest.report import Progress as IngestProgress
from ingest.spending import ledger_session
from rag.text import counted

if TYPE_CHECKING:  # loading rag.filesearch loads google-genai, half a second an offline run never needs
    from rag.filesearch import ProgressCallback as UploadProgress


def _columns() -> tuple[ProgressColumn, ...]:
    """What each bar shows, ending with the file it is at. That name is printed as it is,
    not read as Rich markup: a file called `x[/red].md` would stop the run with a
    MarkupError, and `Report [final] 2.md` would lose its `[final]`."""
    return (
        TextColumn("{task.description:<7}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", style="dim", markup=False),
    )


@contextmanager
def progress_bars(console: Console, enabled: bool) -> Iterator[ProgressCallback | None]:
    """Two bars, files and chunks, redrawn from each progress event, and a third for the
    chunks in finished batch jobs while a --batch run waits; nothing at all when disabled
    (not a terminal, or --quiet)."""
    if not enabled:
        yield None
        return
    with Progress(*_columns(), console=console, transient=True) as bars:
        files = bars.add_task("files", total=None, current="")
        chunks = bars.add_task("chunks", total=None, current="")
        jobs: list[TaskID] = []

        def show(event: IngestProgress) -> None:
            bars.update(files, completed=event.files_done, total=event.files_total)
            if event.at_work:  # an event naming no file (chunks reused) leaves the last name shown
                bars.update(files, current=event.at_work)
            bars.update(chunks, completed=event.chunks_done, total=event.chunks_total)
            if event.batch_total:
                jobs[:] = jobs or [bars.add_task("batch", total=None, current="")]
                bars.update(jobs[0], completed=event.batch_done, total=event.batch_total, current=event.batch_state)

        yield show


LINE_EVERY_S = 30.0  # not a terminal: a progress line at most this often
HEARTBEAT_MIN_S = 0.01  # the shortest sleep of the heartbeat between two looks


class Every:
    """Where bars cannot be drawn (a log file, CI, `| tee`), when a plain progress line is
    due: at the first event, then at most every `seconds`. Events come from several threads."""

    def __init__(self, seconds: float = LINE_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()
        self._last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> float | None:
        """The seconds since the start when a line is due now, else None."""
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.seconds:
                return None
            self._last = now
            return now - self.started

    def left(self) -> float:
        """Seconds until the next line is due: `seconds` before any line, 0 when one is due."""
        with self._lock:
            since = self.clock() - self._last if self._last is not None else 0.0
            return max(0.0, self.seconds - since)


@contextmanager
def progress_lines(console: Console, every: Every | None = None) -> Iterator[ProgressCallback]:
    """The bars' counts as a line now and then (`Every`): without them a first ingest of 30
    pages and two PDFs on a busy machine printed nothing for ten minutes, which reads as hung.
    The last event is printed again when no new one came for `every.seconds` (a heartbeat):
    one large PDF is read for a minute or more without an event, and the log said nothing."""
    every = every or Every()
    last: list[IngestProgress] = []
    stopped = threading.Event()

    def line(event: IngestProgress) -> None:
        # A run with nothing to read says nothing ("progress 0 s: 0 of 0 files" on each re-run).
        if not (event.files_total or event.batch_total) or (elapsed := every.due()) is None:
            return
        batch = (f", batch jobs {event.batch_done:,} of {event.batch_total:,} chunks ({event.batch_state})"
                 if event.batch_total else "")
        reading = f", reading {event.reading}" if event.reading else ""
        console.print(f"progress {elapsed:.0f} s: {event.files_done:,} of {event.files_total:,} files, "
                      f"{event.chunks_done:,} of {event.chunks_total:,} chunks so far{batch}{reading}",
                      markup=False, highlight=False, soft_wrap=True)

    def show(event: IngestProgress) -> None:
        last[:] = [event]
        line(event)

    def heartbeat() -> None:
        # Woken when the next line is due, counted from the last one printed: woken every
        # `seconds` from its own start instead, it let nearly two periods pass between lines.
        while not stopped.wait(max(every.left(), HEARTBEAT_MIN_S)):
            if last:
                line(last[0])

    beating = threading.Thread(target=heartbeat, name="progress-lines", daemon=True)
    beating.start()
    try:
        yield show
    finally:
        stopped.set()
        beating.join()


def progress_shown(console: Console, quiet: bool) -> AbstractContextManager[ProgressCallback | None]:
    """Bars on a terminal, plain lines now and then in a log (`progress_lines`), nothing when quiet."""
    return progress_bars(console, not quiet) if quiet or console.is_terminal else progress_lines(console)


@contextmanager
def upload_bar(console: Console, enabled: bool) -> Iterator[UploadProgress | None]:
    """One bar over the files uploaded to File Search (each waits for its indexing)."""
    if not enabled:
        yield None
        return
    with Progress(*_columns(), console=console, transient=True) as bars:
        task = bars.add_task("upload", total=None, current="")

        def show(current: str, done: int, total: int) -> None:
            bars.update(task, completed=done, total=total, current=current)

        yield show


def headline(report: IngestReport) -> str:
    if report.pending_jobs:
        return f"Batch embedding jobs submitted for collection {report.collection!r}; nothing stored yet"
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
    if report.batch_usd is not None:
        table.add_row("cost online (USD)", f"{report.cost_usd:.6f}")
        table.add_row("cost with --batch (USD)", f"{report.batch_usd:.6f}")
    else:
        table.add_row("cost (USD)", f"{report.cost_usd:.6f}")  # as `python -m rag costs` shows it
    if report.batch_saved_usd:
        table.add_row("saved by the Batch API (USD)", f"{report.batch_saved_usd:.6f}")
    return table


FILES_NAMED = 20  # files named per status (a moved folder removes thousands); the table counts them all


def _named(report: IngestReport, status: Status) -> Iterator[str]:
    """The files of one status, by name: the first `FILES_NAMED`, and how many more."""
    outcomes = report.of(status)
    shown = outcomes[:FILES_NAMED]
    verb = f"would be {status}" if report.dry_run else str(status)
    for outcome in shown:
        yield f"[magenta]{verb}[/] {escape(outcome.source)}"
    if len(outcomes) > len(shown):
        yield f"... and {len(outcomes) - len(shown):,} more files {verb}"


def _skipped(report: IngestReport) -> Iterator[str]:
    """Skipped files with their reason, the first `FILES_NAMED` of each reason named: a folder
    of 300 .py files printed 300 "unknown type" lines on every run, burying the summary."""
    by_reason: dict[str, list[str]] = {}
    for outcome in report.of(Status.SKIPPED):
        by_reason.setdefault(outcome.reason, []).append(outcome.source)
    for reason, sources in by_reason.items():
        for source in sources[:FILES_NAMED]:
            yield f"[yellow]skipped[/] {escape(source)}: {escape(reason)}"
        if len(sources) > FILES_NAMED:
            yield f"... and {len(sources) - FILES_NAMED:,} more files skipped: {escape(reason)}"


def details(report: IngestReport) -> Iterator[str]:
    """The lines under the table: what failed and why, what was skipped, what was done
    besides (reused vectors, orphans removed), and why the run stopped."""
    yield f"Embedder {report.embedder}; corpus version {report.version}."
    for outcome in report.of(Status.FAILED):
        yield f"[red]failed[/]  {escape(outcome.source)}: {escape(outcome.reason)}"
    yield from _skipped(report)
    for outcome in report.of(Status.ADDED) + report.of(Status.UPDATED):
        if outcome.reason:  # moved from another folder, or pages left unread
            yield f"[cyan]note[/]    {escape(outcome.source)}: {escape(outcome.reason)}"
    yield from _named(report, Status.REMOVED)  # what leaves the collection is named in every run
    if report.dry_run:
        yield from _named(report, Status.ADDED)
        yield from _named(report, Status.UPDATED)
    if report.orphans_removed:
        yield f"Removed {counted(report.orphans_removed, 'chunk')} left behind by an interrupted run."
    for note in report.notes:
        yield f"[cyan]note[/]    {escape(note)}"
    for job in report.pending_jobs:
        yield f"[cyan]batch[/]   {escape(job)}"
    if report.pending_jobs:
        yield ("Not waiting: `python -m ingest --resume` (same --collection and --data-dir) stores the "
               "chunks once the jobs are done.")
    if report.cost_usd and not report.dry_run:
        yield f"Recorded in the cost ledger: python -m rag costs --session {ledger_session(report.collection)}"
    if report.dry_run:
        yield "Dry run: nothing was written."
    elif report.stopped:
        yield f"[red bold]Stopped:[/] {escape(report.stopped)}"
        if report.not_done:
            yield f"{counted(report.not_done, 'file')} {'was' if report.not_done == 1 else 'were'} not ingested yet."
