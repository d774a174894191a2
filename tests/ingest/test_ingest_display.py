"""What a terminal shows during and after an ingest run (ingest.display)."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from ingest.display import Every, details, progress_bars, progress_lines, upload_bar
from ingest.report import FileOutcome, IngestReport, Progress, Status
from tests.fakes.clock import ManualClock

# File names are whatever a user chose; Rich would read these as markup (the first one is
# a closing tag with no opening one: a MarkupError that stopped the run).
NAMES = ["x[/red].md", "Report [final] 2.md", "[bold]b.md"]


def _terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=200, color_system=None), screen


@pytest.mark.parametrize("name", NAMES)
def test_the_progress_bar_shows_a_file_name_as_it_is_not_as_markup(name):
    console, screen = _terminal()
    with progress_bars(console, enabled=True) as show:
        assert show is not None
        show(Progress(1, 2, 3, 4, current=name))
    assert name in screen.getvalue()  # drawn as the bars stop (they are then erased)


def test_an_event_naming_no_file_leaves_the_last_name_on_the_bar():
    """Reused chunks are counted without a file: the name of the file at work stays."""
    console, screen = _terminal()
    with progress_bars(console, enabled=True) as show:
        assert show is not None
        show(Progress(0, 2, 16, 300, current="big.md"))
        show(Progress(0, 2, 20, 300))
    assert "big.md" in screen.getvalue().rsplit("files", 1)[1]  # the files bar as last drawn


@pytest.mark.parametrize("name", NAMES)
def test_the_upload_bar_shows_a_file_name_as_it_is(name):
    console, screen = _terminal()
    with upload_bar(console, enabled=True) as show:
        assert show is not None
        show(name, 1, 2)
    assert name in screen.getvalue()


def test_the_lines_after_the_table_show_names_and_reasons_as_they_are():
    report = IngestReport("corpus", "offline")
    report.add(FileOutcome(NAMES[0], Status.FAILED, reason="cannot read: [/red] tag"))
    report.add(FileOutcome(NAMES[1], Status.SKIPPED, reason="unknown type '.[x]'"))
    console, screen = _terminal()
    for line in details(report):
        console.print(line, highlight=False, soft_wrap=True)
    assert f"{NAMES[0]}: cannot read: [/red] tag" in screen.getvalue()
    assert f"{NAMES[1]}: unknown type '.[x]'" in screen.getvalue()


@pytest.mark.parametrize(("left", "lines"), [
    (1, ["Removed 1 chunk left behind by an interrupted run.", "1 file was not ingested yet."]),
    (1200, ["Removed 1,200 chunks left behind by an interrupted run.", "1,200 files were not ingested yet."]),
])
def test_the_counts_after_the_table_agree_with_their_nouns(left, lines):
    report = IngestReport("corpus", "offline", orphans_removed=left, stopped="quota spent", not_done=left)
    assert set(lines) <= set(details(report))


def test_in_a_log_a_progress_line_comes_at_the_start_and_then_every_thirty_seconds():
    """Not a terminal, the run printed nothing until its summary: ten minutes of silence for a
    first ingest on a busy machine."""
    log, clock = io.StringIO(), ManualClock()
    with progress_lines(Console(file=log, width=200), Every(30, clock)) as show:
        show(Progress(0, 0, 0, 0))  # nothing to read (an unchanged re-run): no line, not "0 of 0 files"
        show(Progress(0, 32, 0, 0, current="a.html"))
        clock.advance(10)
        show(Progress(3, 32, 200, 410))  # too soon: no line
        clock.advance(25)
        show(Progress(12, 32, 1_200, 1_950, batch_done=100, batch_total=1_204, batch_state="running"))
    assert log.getvalue().splitlines() == [
        "progress 0 s: 0 of 32 files, 0 of 0 chunks so far",
        "progress 35 s: 12 of 32 files, 1,200 of 1,950 chunks so far, batch jobs 100 of 1,204 chunks (running)",
    ]


def test_in_a_log_the_file_being_read_is_named_and_a_quiet_spell_still_prints_lines():
    """One large PDF is read for a minute before any count moves: the log named no file and
    printed nothing meanwhile, as if the run had hung."""
    log = io.StringIO()
    with progress_lines(Console(file=log, width=200), Every(0.05)) as show:
        show(Progress(0, 1, 0, 0, reading="manual.pdf"))
        deadline = time.monotonic() + 10
        while len(log.getvalue().splitlines()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = log.getvalue().splitlines()
    assert len(lines) >= 3, lines  # the first at once, then the heartbeat's with no new event
    assert all(line.endswith("0 of 1 files, 0 of 0 chunks so far, reading manual.pdf") for line in lines)


def test_the_files_bar_names_the_file_being_read():
    console, screen = _terminal()
    with progress_bars(console, enabled=True) as show:
        assert show is not None
        show(Progress(0, 2, 0, 0, current="a.md", reading="manual.pdf"))
    assert "reading manual.pdf" in screen.getvalue().rsplit("files", 1)[1]


def test_the_next_line_is_due_a_period_after_the_last_one_printed():
    """The heartbeat sleeps until then: woken every period from its own start, it let nearly
    two periods pass between lines (a review)."""
    clock = ManualClock()
    every = Every(30, clock)
    assert every.left() == 30  # nothing printed yet: a period
    clock.advance(20)
    assert every.due() is not None and every.left() == 30
    clock.advance(25)
    assert every.left() == 5
    clock.advance(10)
    assert every.left() == 0 and every.due() is not None
