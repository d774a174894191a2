"""What an ingest run did (or, dry, would do), file by file, as typed records the CLI, the
UI upload and the benchmark all read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    FAILED = "failed"
    SKIPPED = "skipped"  # a type we do not read: listed, not a failure


@dataclass(frozen=True)
class FileOutcome:
    source: str
    status: Status
    chunks: int = 0
    tokens: int = 0
    reason: str = ""  # why it failed or was skipped; for an update, a note (the file moved)


@dataclass(frozen=True)
class Progress:
    """Sent to `on_progress` as each file starts to be read, after each file is done, and as
    each batch is embedded or stored. The chunk total grows as files are read: it is not
    known before. `current` names the file just done, or one whose chunks were just embedded
    (empty: no file in particular); `reading`, the file being read and chunked now (empty:
    none), which for one large PDF can take a minute before any count moves."""

    files_done: int
    files_total: int
    chunks_done: int
    chunks_total: int
    current: str = ""
    batch_done: int = 0  # `--batch`: chunks in batch jobs that finished, of
    batch_total: int = 0  # the chunks in all the run's jobs (0: no job)
    batch_state: str = ""  # the jobs' states ("pending", "running", "succeeded")
    reading: str = ""

    @property
    def at_work(self) -> str:
        """What a progress display names: the file being read, else the last file named."""
        return f"reading {self.reading}" if self.reading else self.current


ProgressCallback = Callable[[Progress], None]


@dataclass
class IngestReport:
    collection: str
    embedder: str
    dry_run: bool = False
    files: list[FileOutcome] = field(default_factory=list)
    embedded_chunks: int = 0  # chunks sent to the embedder (dry run: that would be)
    reused_chunks: int = 0  # chunks whose vectors were already stored: no embedding call
    tokens: int = 0  # tokens sent to the embedder, counted locally (see ingest.chunking)
    vision_calls: int = 0  # figures described and scanned pages transcribed by Gemini (dry run: would be)
    vision_tokens: int = 0  # their tokens, image input and text output (dry run: estimated)
    cost_usd: float = 0.0  # embedding and vision calls
    batch_usd: float | None = None  # dry run: the cost with --batch (None: the embedder has no batch price)
    batch_saved_usd: float = 0.0  # --batch: what this run's jobs would have cost more online
    pending_jobs: list[str] = field(default_factory=list)  # --batch --no-wait: jobs left running, with state
    notes: list[str] = field(default_factory=list)  # what the run did besides (a job that expired, ...)
    orphans_removed: int = 0  # chunks a crashed run left behind, removed by this one
    version: int = 0  # the collection's corpus version after the run
    stopped: str | None = None  # why the run stopped early; what was done is kept
    over_budget: bool = False  # ... a budget stopped it: trying again before it is raised refuses again
    not_done: int = 0  # files left for the next run after a stop

    def add(self, outcome: FileOutcome) -> None:
        self.files.append(outcome)

    def of(self, status: Status) -> list[FileOutcome]:
        return [f for f in self.files if f.status is status]

    def count(self, status: Status) -> int:
        return len(self.of(status))

    @property
    def chunks(self) -> int:
        """Chunks now stored for the files this run added or updated."""
        return sum(f.chunks for f in self.files if f.status in (Status.ADDED, Status.UPDATED))

    @property
    def exit_code(self) -> int:
        """2: stopped early (quota, key); 1: some file failed; 0: all well."""
        if self.stopped:
            return 2
        return 1 if self.count(Status.FAILED) else 0
