"""Ingest files into a collection: plan → load and chunk → embed → store → commit.

The CLI, the UI upload and the benchmark all call `ingest_paths` / `remove_paths`.

Why it survives kill -9 at any moment: the manifest (ingest.manifest) is the record of
truth, and each step leaves a state the next run can read back:
1. chunks are written to the store first, in batches, embedded or with vectors reused from
   the store when the same chunk (same id: same file, same content) is already there, or
   copied from a stored chunk of the same embedded text (a renamed or copied file);
2. a file's record is committed to the manifest only when all its chunks are stored;
3. then the chunks of its previous version are deleted.
A crash between any two steps leaves only chunks no committed file owns; every run ends by
deleting those orphans, and a committed file with chunks missing is ingested again. The
corpus version is bumped after every change, and a pending bump survives a crash.

With `--batch` the new chunks are embedded by Batch API jobs first (ingest.batchjobs), and
then stored by the same steps with the jobs' vectors.

Every call that costs money is charged in the cost ledger as it returns (ingest.spending);
the report's cost is the sum of those charges, so the summary and `python -m rag costs` agree.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TypedDict
from urllib.parse import quote

import rag
from ingest.batches import Batch, InFlight
from ingest.batchjobs import BatchJobs, BatchRun, Origin, embedding_jobs, nothing_to_resume, pending_origin
from ingest.chunking import Chunker, SizedChunk, TooManyChunks
from ingest.discover import Filters, Skipped, SourceFile, discover
from ingest.loaders import LoadError, Unreadable, read
from ingest.manifest import FileRecord, Manifest, Refusal
from ingest.prefetch import prefetched
from ingest.report import FileOutcome, IngestReport, Progress, ProgressCallback, Status
from ingest.spending import Spending, ledger_session
from ingest.vision import Vision
from rag.errors import BudgetExceeded, EmbedderMismatch, GemragError, ProviderError, charging_lost
from rag.filetypes import SUPPORTED, printable, unprintable
from rag.kv import StoreUnavailable
from rag.logs import TaggedPool
from rag.providers.base import BatchEmbedder, Embedder, Generator, Warms
from rag.settings import Settings
from rag.store import Store, check_collection_name, drop_collection, no_store_yet, write_stamp
from rag.store import recorded_embedder as stored_embedder
from rag.text import counted
from rag.types import Embedded, Usage, estimate_tokens
from rag.uploads import UPLOADS, upload_dir

MANIFEST = "manifest.sqlite3"
OFFLINE_EMBED_STEP = 64  # texts per offline call; MiniLM cuts them into its own batches (`Run.__init__`)
OFFLINE_FIRST_WINDOW = 32  # chunks in the first window offline: its files are committed within seconds
RACY_MTIME_NS = 2_000_000_000
LOCK_POLL_S = 0.5  # how often a run waiting for another on its collection tries the lock (`LockWait`)
STORE_STEP = 64  # chunks per write while a window's last batches embed (`_Run.hand_over`)
PREFETCH_FILES = 8  # files read and chunked ahead of the batch being embedded
GONE_NAMED = 5  # files gone from the folder named in the run's note (without --prune), the rest counted
REFUSED_BEFORE = "(found so by an earlier run, and not read again: the file is unchanged since)"
STALE_HINT = "its previous version stays in the collection; --prune removes it"
STOPPED_HINT = "Files ingested so far are kept: run the same command again to continue."


@dataclass(frozen=True)
class Task:
    """A file whose content the collection does not hold yet (new, changed or incomplete)."""

    file: SourceFile
    previous: FileRecord | None
    note: str = ""  # said next to the outcome: the file moved to another root


class Refused(LoadError):
    """A file refused for what it holds (`TooManyChunks`: failed) or that nothing in this run
    can read (`Unreadable`: skipped), with its size and mtime as read: the manifest
    remembers it (`lasting`), and the next run does not read it again unchanged; not an
    image Gemini gave no text for, which it may on the next try."""

    def __init__(self, reason: str, stat: TrustedStat, status: Status, lasting: bool = True) -> None:
        super().__init__(reason)
        self.stat = stat
        self.status = status
        self.lasting = lasting


@dataclass(frozen=True)
class Touched:
    """A file whose mtime moved but whose content did not: its record gets the new stat."""

    outcome: FileOutcome
    record: FileRecord


@dataclass(frozen=True)
class Plan:
    tasks: list[Task]
    removals: list[FileRecord]
    touched: list[FileRecord]  # unchanged content, new size/mtime to record (no store change)


@dataclass(frozen=True)
class Prepared:
    task: Task
    record: FileRecord  # committed once all its chunks are stored
    chunks: list[SizedChunk]
    note: str = ""  # what in the file was left unread (scanned pages without OCR)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.chunks)

    def outcome(self) -> FileOutcome:
        status = Status.UPDATED if self.task.previous else Status.ADDED
        note = "; ".join(n for n in (self.task.note, self.note) if n)
        return FileOutcome(self.record.source, status, len(self.chunks), self.tokens, note)


def ingest_paths(
    paths: Sequence[Path | str],
    settings: Settings,
    embedder: Embedder,
    *,
    collection: str | None = None,
    filters: Filters | None = None,
    prune: bool = False,
    rebuild: bool = False,
    dry_run: bool = False,
    on_progress: ProgressCallback | None = None,
    generator: Generator | None = None,
    batch: BatchRun | None = None,
    session: str | None = None,
    locked: Callable[[IngestReport], AbstractContextManager[object]] | None = None,
    wait: LockWait | None = None,
) -> IngestReport:
    """Bring the collection in line with the files under `paths`. Bad files are reported in
    the returned report, not raised; a provider failure (quota, key) stops the run with
    the work done so far kept (`report.stopped`). Raises GemragError for a refused run
    (mixed embedders, another ingest running, batch jobs pending without `batch`, nothing
    pending with `batch.resume`). `generator` is the session's: when it is Gemini it
    describes figures and transcribes scans; otherwise scans, and image files' printed words,
    are OCR'd by Tesseract if installed (ingest.vision). `batch`: embed through Batch API jobs.
    `session`: the ledger session the run's calls are charged to (default:
    `ledger_session(collection)`; the API's worker names the job's key). `locked`: entered
    once the collection's lock is held, before anything is read, and left with the run's
    report before the lock is released (ingest.uploads moves staged uploads onto the paths
    this run ingests, and puts back a stored file whose replacement the run refused, so only
    a locked run changes them). `wait`: how to wait for another run on the collection
    (default: refused at once)."""
    name = collection or settings.collection
    report = IngestReport(name, embedder.embedding_id, dry_run=dry_run)
    roots = [Path(p) for p in paths]
    filters = filters or Filters()
    if dry_run:
        _DryRun(settings, embedder, report, on_progress, generator).run(roots, filters, prune, rebuild)
        return report
    if batch is not None:
        embedding_jobs(embedder)  # refuses an embedder without batch jobs before anything is written
    with (
        run_lock(settings, name, wait),
        _open_manifest(settings, name) as manifest,
        locked(report) if locked is not None else nullcontext(),
    ):
        if rebuild:
            from rag.bm25 import remove_indexes  # numpy: not for a run that finds nothing to do

            manifest.clear()
            drop_collection(settings, name)
            remove_indexes(settings, name)
        _check_jobs(manifest, batch)
        spending = Spending(settings, session or ledger_session(name))
        _Run(settings, embedder, report, on_progress, manifest, spending, generator).run(roots, filters, prune, batch)
    return report


def _check_jobs(manifest: Manifest, batch: BatchRun | None) -> None:
    """A run must not embed online what a pending job is paid to embed, nor --resume nothing."""
    pending = [job.name or job.display_name for job in manifest.jobs()]
    if pending and batch is None:
        raise GemragError(
            f"Collection {manifest.collection!r} has batch embedding jobs pending ({', '.join(pending)}): "
            "collect them with `python -m ingest --resume` (or run with --batch), or start over with --rebuild."
        )
    if not pending and batch is not None and batch.resume:
        raise nothing_to_resume(manifest.collection)


def pending_batch(settings: Settings, collection: str) -> Origin | None:
    """The paths and options the collection's pending batch jobs were submitted with, read
    from the manifest (None: nothing pending), so `--resume` can repeat them."""
    path = settings.data_dir / MANIFEST
    if not path.exists():
        return None
    manifest = Manifest(path, collection)
    try:
        return pending_origin(manifest)
    finally:
        manifest.close()


def recorded_embedder(settings: Settings, collection: str) -> str | None:
    """The embedder the collection's last ingest used, read from the manifest: nothing heavy
    loads (an unchanged re-run never opens Chroma)."""
    path = settings.data_dir / MANIFEST
    if not path.exists():
        return None
    manifest = Manifest(path, collection)
    try:
        return manifest.embedder
    finally:
        manifest.close()


def remove_paths(
    sources: Sequence[str], settings: Settings, embedder: Embedder, *, collection: str | None = None
) -> IngestReport:
    """Remove files (by stored name, as `Chunk.source`) and their chunks from a collection;
    of an uploaded file, the copy the upload stored under the data dir too (a removed HR file's
    bytes stayed on the server; a file ingested from a folder of the user's is left alone)."""
    name = collection or settings.collection
    report = IngestReport(name, embedder.embedding_id)
    with run_lock(settings, name), _open_manifest(settings, name) as manifest:
        run = _Run(settings, embedder, report, None, manifest, Spending(settings, ledger_session(name)))
        run.recover()
        for source in sources:
            if source not in run.records:
                report.add(FileOutcome(source, Status.FAILED, reason=f"not in collection {name!r}"))
        removed = [run.records[s] for s in sources if s in run.records]
        run.remove(removed)
        run.finish()
        for record in removed:
            if uploaded(record.path, settings, name):  # only ever the data dir's own copy goes
                (upload_dir(settings, name) / Path(record.path).name).unlink(missing_ok=True)
    return report


@contextmanager
def _open_manifest(settings: Settings, collection: str) -> Iterator[Manifest]:
    manifest = Manifest(settings.path(MANIFEST), collection)
    try:
        yield manifest
    finally:
        manifest.close()


def lock_path(settings: Settings, collection: str) -> Path:
    """The collection's ingest lock file; every run opens (and so touches) it at its start,
    which is how the UI tells when a collection was last ingested. A name the store would
    refuse is refused here, before any file is made under it."""
    return settings.data_dir / f"ingest-{check_collection_name(collection)}.lock"


class CollectionBusy(GemragError):
    """Another run holds the collection's lock: this one read and wrote nothing."""


@dataclass(frozen=True)
class LockWait:
    """How a run waits for another run on its collection to end: up to `max_s` seconds (None:
    as long as it takes), telling `on_wait` the seconds waited at each look (`LOCK_POLL_S`).
    Without one, a busy collection refuses the run at once (`CollectionBusy`)."""

    max_s: float | None
    on_wait: Callable[[float], None] | None = None


@contextmanager
def run_lock(settings: Settings, collection: str, wait: LockWait | None = None) -> Iterator[None]:
    """One writer per collection: two runs interleaving commits would undo each other."""
    lock = settings.path(lock_path(settings, collection).name)  # the data dir, created on demand; writable
    with lock.open("w") as handle:
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if wait is None or (wait.max_s is not None and waited >= wait.max_s):
                    after = f" (waited {waited:.0f} s)" if wait is not None else ""
                    raise CollectionBusy(
                        f"Another ingest into collection {collection!r} is running; wait for it to finish{after}."
                    ) from None
                if wait.on_wait is not None:
                    wait.on_wait(waited)
                time.sleep(LOCK_POLL_S)
        yield  # the lock goes with the file handle, also when the process is killed


def plan_run(
    roots: Sequence[Path],
    filters: Filters,
    prune: bool,
    records: dict[str, FileRecord],
    incomplete: set[str],
    refused: dict[str, Refusal],
    settings: Settings,
    report: IngestReport,
) -> Plan:
    """Decide per file: unchanged (same content hash, all chunks stored), to ingest, or
    (with --prune) to remove. Files that cannot be ingested at all, and entries left out,
    are reported here, with the files refused before and unchanged since (`refused`)."""
    tasks: list[Task] = []
    touched: list[FileRecord] = []
    stale: list[FileRecord] = []  # ingested before, unreadable now: removed with --prune
    found: dict[str, Path] = {}
    aliases: list[str] = []
    typed = 0  # files of a type ingest reads
    outer = _held_from_outside(records, roots)
    for root in roots:
        try:
            there = root.exists()
        except OSError as exc:  # a folder on the way cannot be listed: not the same as gone
            report.add(FileOutcome(printable(root), Status.FAILED, reason=_reason(exc)))
            continue
        if not there:
            held = [r for r in records.values() if r.root == str(root.resolve())]
            if prune and held:  # how a deleted folder's files leave the collection: not a failure
                report.notes.append(f"{printable(root)} no longer exists: {counted(len(held), 'file')} ingested "
                                    f"from it {'was' if len(held) == 1 else 'were'} removed")
            else:
                report.add(FileOutcome(printable(root), Status.FAILED, reason="no such file or folder"))
            continue
        for file in discover(root, filters, settings.data_dir):
            if isinstance(file, Skipped):
                report.add(FileOutcome(file.source, Status.FAILED if file.failed else Status.SKIPPED,
                                       reason=file.reason))
                if file.alias:
                    aliases.append(file.source)
                continue
            if file.source in found:  # the same file named twice ("docs docs/a.md") is taken once
                if found[file.source] != file.path:
                    report.add(FileOutcome(file.source, Status.FAILED, reason=(
                        f"{printable(file.path)} has the same stored name as {printable(found[file.source])}; "
                        "ingest the two folders into different collections, or rename one")))
                continue
            found[file.source] = file.path
            if file.kind is None:
                what = f"unknown type {file.path.suffix!r}" if file.path.suffix else "no extension to tell its type"
                report.add(FileOutcome(file.source, Status.SKIPPED, reason=what))
                continue
            typed += 1
            around = outer.get(str(file.path.resolve())) if outer else None
            if around is not None and around.source != file.source:  # held under another name, from a folder around
                report.add(FileOutcome(file.source, Status.SKIPPED, reason=(
                    f"already in the collection as {around.source}, ingested from {printable(around.root)}; "
                    f"ingest that folder again to update it")))
                continue
            previous = records.get(file.source)
            verdict = _triage(file, previous, file.source in incomplete, refused.get(file.source), settings,
                              report.collection)
            if isinstance(verdict, Task):
                tasks.append(verdict)
            elif isinstance(verdict, Touched):
                touched.append(verdict.record)
                report.add(verdict.outcome)
            elif verdict.status is Status.FAILED and previous and previous.root == str(file.root):
                stale.append(previous)  # too large now, or cannot be read: its old chunks do not reflect it
                report.add(replace(verdict, reason=_stale(verdict.reason, prune)))
            else:
                report.add(verdict)
    if not found and filters.include:
        # A glob that matched nothing looked like a run that found an empty folder.
        report.notes.append(f"no file matched --include {' '.join(filters.include)}: globs are matched against "
                            f"each file's name relative to PATH (e.g. 'notes/*.md', not 'docs/notes/*.md')")
    if found and not typed:  # a run that reads nothing must not look like one that did
        report.notes.append(f"nothing to ingest: no file found is of a type ingest reads "
                            f"({', '.join(sorted(SUPPORTED))})")
    resolved = {str(r.resolve()) for r in roots}
    missing = [r for r in records.values() if r.root in resolved and r.source not in found]
    renamed = _read_from_a_parent(records, found, resolved)
    aliased: list[FileRecord] = []
    gone: list[FileRecord] = []
    for r in missing:
        if any(_under(r.source, a) for a in aliases):
            aliased.append(r)
        elif not may_exist(_discovered(r)):
            gone.append(r)
    if not prune:
        # Still searchable and cited: a user who deleted them expects to hear so.
        if gone:
            report.notes.append(f"{counted(len(gone), 'file')} ingested before {'is' if len(gone) == 1 else 'are'} "
                                f"gone from the folder but still in the collection ({_names(gone)}); "
                                f"--prune removes {_them(gone)}")
        if aliased:
            report.notes.append(f"{counted(len(aliased), 'file')} ingested before through a link to what is now read "
                                f"under its real name {'is' if len(aliased) == 1 else 'are'} still in the collection "
                                f"({_names(aliased)}); --prune removes {_them(aliased)}")
        if renamed:
            report.notes.append(f"{counted(len(renamed), 'file')} ingested before from a folder inside one now read "
                                f"whole {'is' if len(renamed) == 1 else 'are'} still in the collection under "
                                f"{'its' if len(renamed) == 1 else 'their'} old name ({_names(renamed)}), beside the "
                                f"new; --prune removes {_them(renamed)}")
    return Plan(tasks, [*gone, *aliased, *renamed, *stale] if prune else [], touched)


def _held_from_outside(records: dict[str, FileRecord], roots: Sequence[Path]) -> dict[str, FileRecord]:
    """The files ingested from a folder that holds one of `roots` ("ingest docs", then "ingest
    docs/notes"), by their resolved path: read again under the inner folder, each would be a
    second copy under a shorter name ("README.md" beside "notes/README.md"), in answers and
    sources, and nothing said so. Empty in the common case (no such folder)."""
    inner = {Path(os.path.realpath(root)) for root in roots}
    return {r.path: r for r in records.values()
            if any(root != Path(r.root) and root.is_relative_to(r.root) for root in inner)}


def _read_from_a_parent(records: dict[str, FileRecord], found: dict[str, Path], roots: set[str]) -> list[FileRecord]:
    """Files ingested from a folder inside one of `roots` ("ingest docs/a", then, as a name
    clash advises, "ingest docs") that this run reads again under a longer name ("a/x.txt"
    for "x.txt"): the old name is a second copy of the same file, in answers and sources."""
    inner = [r for r in records.values() if r.root not in roots and r.source not in found
             and any(Path(r.root).is_relative_to(root) for root in roots)]
    if not inner:  # the common case: nothing resolved below
        return []
    read = {str(path.resolve()) for path in found.values()}
    return [r for r in inner if r.path in read]


def _them(files: Sequence[FileRecord]) -> str:
    return "it" if len(files) == 1 else "them"


def _stale(reason: str, prune: bool) -> str:
    """A failed file's reason, saying its previous version stays when nothing removes it."""
    return reason if prune else f"{reason}; {STALE_HINT}"


def _owned(records: Iterable[FileRecord]) -> set[str]:
    """The chunk ids these files own: whatever else the store holds is an orphan."""
    return {i for r in records for i in r.chunk_ids}


def _removed(record: FileRecord) -> FileOutcome:
    return FileOutcome(record.source, Status.REMOVED, len(record.chunk_ids), record.tokens)


def _names(records: Sequence[FileRecord]) -> str:
    """The first `GONE_NAMED` named, the rest counted."""
    names = ", ".join(r.source for r in records[:GONE_NAMED])
    if len(records) > GONE_NAMED:
        names += f" and {len(records) - GONE_NAMED} more"
    return names


def _under(source: str, alias: str) -> bool:
    """Whether a stored name is the skipped link `alias` or, for a folder link, under it."""
    return source == alias or (alias.endswith("/") and source.startswith(alias))


def _discovered(record: FileRecord) -> Path:
    """The file as the walk would find it: the path through the folder, links included (the
    record's `path` is the link's target, which may well outlive the link)."""
    return Path(record.path) if record.root == record.path else Path(record.root) / unprintable(record.source)


def may_exist(path: Path) -> bool:
    """Whether `path` exists, or may: behind a folder that cannot be listed (permissions),
    `Path.exists` raises instead of answering. A file ingested before there is not gone, so
    --prune keeps it, and a PATH there is read and reported as failed with its reason."""
    try:
        return path.exists()
    except OSError:
        return True


def uploaded(path: Path | str, settings: Settings, collection: str) -> bool:
    """Whether a stored file is one of the collection's uploads: in its uploads folder, in
    this data dir or one copied or moved since, whose path the manifest still holds
    (`same_folder`). No folder is created to look."""
    return same_folder(str(Path(path).parent), settings.data_dir / UPLOADS / collection, settings)


def _held_elsewhere(previous: FileRecord, file: SourceFile, settings: Settings, collection: str) -> str:
    """Why a file is refused when another folder's file of its name is stored and still
    there. Where either is one of the collection's uploads, an API client is told: the
    message names no server folder (the data dir is the operator's) and no CLI flag."""
    if uploaded(file.path, settings, collection):
        return ("the collection already holds a file of this name, ingested from a folder on the server; "
                "upload this one under another name")
    if uploaded(previous.path, settings, collection):
        return (f"the collection already holds an uploaded file of this name; remove it first (over HTTP: DELETE "
                f"/v1/collections/{collection}/documents/{quote(file.source)}), or ingest this folder into another "
                "collection")
    return (f"already ingested from {printable(previous.root)}, where it still is; a second folder "
            f"does not replace it. Ingest {printable(file.root)} into another --collection, or "
            "ingest both from their common parent folder.")


def _triage(
    file: SourceFile, previous: FileRecord | None, incomplete: bool, refusal: Refusal | None, settings: Settings,
    collection: str,
) -> Task | Touched | FileOutcome:
    """A task, or the outcome already known: unchanged, too large, refused before and
    unchanged since, unreadable, or held by another folder's file of the same name."""
    if previous and not same_folder(previous.root, file.root, settings) and previous.path != str(file.path.resolve()):
        if may_exist(Path(previous.path)):
            return FileOutcome(file.source, Status.FAILED, reason=_held_elsewhere(previous, file, settings, collection))
        moved = f"now read from {printable(file.root)} ({printable(previous.root)} no longer has it)"
        return Task(file, previous, note=moved)
    try:
        stat = file.path.stat()
        limit = int(settings.max_file_mb * 1024 * 1024)
        if stat.st_size > limit:  # in bytes: a file just over the limit would round to it in MB
            return FileOutcome(file.source, Status.FAILED, reason=(
                f"{stat.st_size:,} bytes is over the {settings.max_file_mb:g} MB limit ({limit:,} bytes; "
                "GEMRAG_MAX_FILE_MB)"))
        if refusal and (refusal.size, refusal.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return FileOutcome(file.source, refusal.status, reason=f"{refusal.reason} {REFUSED_BEFORE}")
        if previous and not incomplete:
            unchanged = FileOutcome(file.source, Status.UNCHANGED, len(previous.chunk_ids), previous.tokens)
            if (previous.size, previous.mtime_ns) == (stat.st_size, stat.st_mtime_ns) and os.access(file.path, os.R_OK):
                # Not even read: size and mtime are as when it was hashed. Unless it can no longer
                # be read (chmod changes no mtime): then the read below fails it, and --prune removes it.
                return unchanged
            if previous.content_hash == file_hash(file.path.read_bytes()):
                return Touched(unchanged, replace(previous, **trusted_stat(stat)))
    except OSError as exc:
        return FileOutcome(file.source, Status.FAILED, reason=_reason(exc))
    return Task(file, previous)


def same_folder(recorded: str, root: Path, settings: Settings) -> bool:
    """Whether `root` is the folder the manifest recorded as `recorded`: the same path, or the
    same place inside a data dir that was copied or moved since (a collection's upload folder,
    `DATA_DIR/uploads/NAME`, recorded under the old data dir). Otherwise an upload into a
    moved data dir was refused as "already ingested from" the old one, naming both server
    paths to a user who chose neither."""
    if recorded == str(root):
        return True
    try:
        inside = root.resolve().relative_to(settings.data_dir.resolve())
    except ValueError:
        return False
    return Path(recorded).parts[-len(inside.parts):] == inside.parts if inside.parts else False


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare(task: Task, chunker: Chunker, vision: Vision | None = None) -> Prepared:
    """Read, load and chunk one file; raises LoadError (or OSError) when it cannot."""
    before = task.file.path.stat()  # taken before reading: a change while we read shows next time
    data = task.file.path.read_bytes()  # hashed again: the file may have changed since planning
    try:
        reading = read(data, task.file.kind or "", vision)
        chunks = chunker.chunk(task.file.source, reading.sections)
    except (Unreadable, TooManyChunks) as exc:
        unread = isinstance(exc, Unreadable)
        # Gemini's empty reply may be a hiccup: `Vision` does not keep it either, and asks again.
        lasting = not (unread and vision is not None and vision.describes)
        raise Refused(str(exc), trusted_stat(before), Status.SKIPPED if unread else Status.FAILED, lasting) from exc
    record = FileRecord(
        source=task.file.source,
        root=str(task.file.root),
        path=str(task.file.path.resolve()),
        content_hash=file_hash(data),
        chunk_ids=tuple(c.chunk.id for c in chunks),
        tokens=sum(c.tokens for c in chunks),
        **trusted_stat(before),
    )
    return Prepared(task, record, chunks, reading.note)


class TrustedStat(TypedDict):
    """The FileRecord fields that let the next run skip hashing an unchanged file."""

    size: int
    mtime_ns: int


def trusted_stat(stat: os.stat_result) -> TrustedStat:
    """Size and mtime to record for skipping the next hash. A file modified within the
    last couple of seconds could be written again within the same mtime tick, unseen by a
    size+mtime check, so its mtime is not recorded and the next run hashes it."""
    recent = time.time_ns() - stat.st_mtime_ns < RACY_MTIME_NS
    return {"size": stat.st_size, "mtime_ns": -1 if recent else stat.st_mtime_ns}


class _Pass:
    """What a real run and a dry run share: planning, and reading files one by one."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        report: IngestReport,
        on_progress: ProgressCallback | None,
        generator: Generator | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.report = report
        self.on_progress = on_progress
        self.vision = Vision(settings, generator, estimate=report.dry_run, on_call=self.count_vision,
                             on_lost=self.lost, before_call=self.allow)
        self.files_done = self.files_total = self.chunks_done = self.chunks_total = 0
        self._counting = threading.Lock()  # reader, embedding and writer threads all count
        self.prune = False  # the run's --prune
        self.stale: list[FileRecord] = []  # files ingested before that cannot be read now (`failed`)
        self.refusals: list[Refusal] = []  # files refused for what they hold (`Refused`), to remember
        self.reading = ""  # the file the reader is on (`advance`)

    @property
    def terms(self) -> str:
        """The settings that decide whether a file is refused for what it holds, or can be read
        (`Refused`), and the release reading it: under others, a file refused before is read
        again (an upgrade may read a file's pages or chunk them otherwise)."""
        profile = self.settings.chunk_profiles[self.embedder.name]
        return (f"max_chunks_per_file={self.settings.max_chunks_per_file}; {profile!r}; reader={self.vision.identity}; "
                f"gemrag={rag.__version__}")

    # Built on first use, like everything heavy: an unchanged re-run loads no tokenizer,
    # no model, no chromadb (the CLI's whole cost is then reading the manifest).
    @cached_property
    def chunker(self) -> Chunker:
        from rag.providers.minilm import shared_minilm

        profile = self.settings.chunk_profiles[self.embedder.name]
        return Chunker(profile, shared_minilm(), self.settings.max_chunks_per_file)

    def prepared(self, tasks: Sequence[Task]) -> Iterator[Prepared]:
        """Each task's file loaded and chunked; the ones that fail are reported and skipped.
        A file counts as done (`finished`) when its consumer has dealt with it, not when it
        was read: reading may run ahead of embedding."""
        self.files_total = len(tasks)
        for task in tasks:
            self.advance(reading=task.file.source)
            try:
                prepared = prepare(task, self.chunker, self.vision)
            except Refused as exc:
                if exc.lasting:
                    self.refusals.append(Refusal(task.file.source, **exc.stat, terms=self.terms, reason=str(exc),
                                                 status=exc.status))
                if exc.status is Status.SKIPPED:
                    self.report.add(FileOutcome(task.file.source, Status.SKIPPED, reason=str(exc)))
                else:
                    self.failed(task, str(exc))
                self.advance(files=1, current=task.file.source)
                continue
            except (LoadError, OSError) as exc:
                self.failed(task, _reason(exc))
                self.advance(files=1, current=task.file.source)
                continue
            except GemragError:
                raise  # a quota, a budget, a key: the run stops, as for any file
            except Exception as exc:  # a reader's bug on one file must not stop the others
                # A parser tripped by a hostile file would otherwise end the run at that file,
                # and every rerun with it: the file fails, named, and the folder goes on.
                self.failed(task, f"could not be read, an error of gemrag's reader ({type(exc).__name__}: {exc});"
                                  " please report it")
                self.advance(files=1, current=task.file.source)
                continue
            with self._counting:
                self.chunks_total += len(prepared.chunks)
            yield prepared
        self.advance(reading="")

    def failed(self, task: Task, reason: str) -> None:
        """A file that cannot be read (emptied, turned binary, unreadable). Ingested before,
        its old chunks no longer reflect it: --prune removes them once the run's writes are
        done (`_Run.run`); without it the run says they stay."""
        if task.previous is not None:
            self.stale.append(task.previous)
            reason = _stale(reason, self.prune)
        self.report.add(FileOutcome(task.file.source, Status.FAILED, reason=reason))

    def count_embedding(self, chunks: Sequence[SizedChunk]) -> None:
        """The chunker's token counts, not the embedder's: counted once, when chunking (the
        cost is what the calls are charged, see `pay`). The progress names a file these chunks
        are of: a big file embeds for minutes before it counts as done."""
        with self._counting:
            self.report.embedded_chunks += len(chunks)
            self.report.tokens += sum(c.tokens for c in chunks)
        self.advance(chunks=len(chunks), current=chunks[0].chunk.source if chunks else "")

    def count_vision(self, model: str, usage: Usage) -> None:
        """A figure described or a page transcribed (a dry run: estimated), priced as
        `model`; called from the reading thread."""
        with self._counting:
            self.report.vision_calls += 1
            self.report.vision_tokens += usage.total_tokens
        self.pay(model, usage)

    def pay(self, model: str, usage: Usage) -> None:
        """A call's price added to the report's cost (from any thread)."""
        cost = self.price(model, usage)
        with self._counting:
            self.report.cost_usd += cost

    def lost(self, model: str, attempts: Sequence[Usage]) -> None:
        """A call's attempts that got no reply (an embedding batch's, a figure's), each of which
        the API may have served and billed (rag.retry.Unanswered): paid like the call."""
        for usage in attempts:
            self.pay(model, usage)

    @cached_property
    def store(self) -> Store:
        """Opened on first use: a run that finds nothing to write (or a dry run with
        nothing to compare) never imports chromadb."""
        return Store(self.settings, self.embedder.embedding_id, self.report.collection)

    def allow(self, model: str, usage: Usage) -> None:
        """A dry run sends nothing: no budget to check (a real run checks, `_Run.allow`)."""

    def price(self, model: str, usage: Usage) -> float:
        """What a dry run's call would cost (a real run charges it instead, `_Run.price`)."""
        from rag.costs import price_usd

        return price_usd(self.settings, model, usage)

    def advance(self, *, files: int = 0, chunks: int = 0, current: str = "", reading: str | None = None) -> None:
        """Counts moved, and the file named (`current`); `reading`: the reader started on a
        file ("" when it has read them all), named in every event until the next."""
        with self._counting:
            self.files_done += files
            self.chunks_done += chunks
            if reading is not None:
                self.reading = reading
            event = Progress(self.files_done, self.files_total, self.chunks_done, self.chunks_total, current,
                             reading=self.reading)
        if self.on_progress:
            self.on_progress(event)


class _DryRun(_Pass):
    """What a run would add, update and remove, and what embedding it would cost: reads
    the manifest if there is one, writes nothing."""

    def run(self, roots: Sequence[Path], filters: Filters, prune: bool, rebuild: bool) -> None:
        self.prune = prune
        records, refused = ({}, {}) if rebuild else self.read_manifest()
        owned = _owned(records.values())
        plan = plan_run(roots, filters, prune, records, set(), refused, self.settings, self.report)
        for record in plan.removals:
            self.report.add(_removed(record))
        sent: set[str] = set()
        for prepared in self.prepared(plan.tasks):
            fresh = [c for c in prepared.chunks if c.chunk.id not in owned]
            held = self.held(fresh, owned) if owned else set()
            new = [c for c in fresh if c.chunk.content_hash not in held]
            twins = _twins(new, sent)
            embedded = [c for c in new if c.chunk.id not in twins]  # as the real run's copies and twins
            self.count_embedding(embedded)
            if embedded:
                self.pay(self.embedder.embedding_model, Usage(prompt_tokens=sum(c.tokens for c in embedded)))
            self.report.reused_chunks += len(prepared.chunks) - len(embedded)
            self.report.add(prepared.outcome())
            self.advance(files=1, chunks=len(prepared.chunks), current=prepared.task.file.source)
        for record in self.stale if prune else []:
            self.report.add(_removed(record))
        self.price_batch()

    def held(self, chunks: Sequence[SizedChunk], owned: set[str]) -> set[str]:
        """The embedded texts (hashes) of `chunks` that a committed file's stored chunk holds:
        a real run copies their vectors (`_Run.copies`), so a renamed or copied file was
        estimated at its full embedding cost though the run embedded nothing. Read from the
        store's metadata, no vectors; asked only when the collection holds files."""
        store = self.existing_store
        if not chunks or store is None:
            return set()
        holders = store.holders_of_texts(c.chunk.content_hash for c in chunks)
        return {h for h, ids in holders.items() if not ids.isdisjoint(owned)}

    @cached_property
    def existing_store(self) -> Store | None:
        """The collection's store if it exists: a dry run creates none (opening a `Store` made
        the collection), and one it cannot reach leaves the estimate as before, every new
        chunk counted as embedded."""
        try:
            if no_store_yet(self.settings) or stored_embedder(self.settings, self.report.collection) is None:
                return None
            return self.store
        except StoreUnavailable:
            return None

    def price_batch(self) -> None:
        """The same run with --batch: its embedding at the batch price, the rest (figures,
        scans) as it is. Only for an embedder that has batch jobs and a batch price."""
        row = self.settings.models.get(self.embedder.embedding_model)
        if not isinstance(self.embedder, BatchEmbedder) or row is None or row.batch_discount is None:
            return
        online = self.price(self.embedder.embedding_model, Usage(prompt_tokens=self.report.tokens))
        self.report.batch_usd = self.report.cost_usd - online * (1 - row.batch_discount)

    def read_manifest(self) -> tuple[dict[str, FileRecord], dict[str, Refusal]]:
        """The files the collection holds, and those refused before under these settings."""
        path = self.settings.data_dir / MANIFEST
        if not path.exists():
            return {}, {}
        manifest = Manifest(path, self.report.collection)
        try:
            recorded = manifest.embedder
            if recorded and recorded != self.embedder.embedding_id:
                raise EmbedderMismatch(
                    f"Collection {self.report.collection!r} was built with {recorded}, not "
                    f"{self.embedder.embedding_id}: a real run would be refused. Add --rebuild, "
                    "or use another --collection."
                )
            self.report.version = manifest.version  # the collection's as it stands: a dry run changes nothing
            return manifest.records(), manifest.refusals(self.terms)
        finally:
            manifest.close()


class _Run(_Pass):
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        report: IngestReport,
        on_progress: ProgressCallback | None,
        manifest: Manifest,
        spending: Spending,
        generator: Generator | None = None,
    ) -> None:
        super().__init__(settings, embedder, report, on_progress, generator)
        self.manifest = manifest
        self.spending = spending
        # Gemini: one request per batch, `embed_concurrency` in flight. Offline: MiniLM runs
        # one batch per core at once (rag.providers.minilm), so a call per core is in flight:
        # while one call's last batch runs, the next call's batches are already queued. A
        # call's texts are of like length (`InFlight.submit`), and MiniLM cuts them by its
        # token budget: 16 texts of 200 tokens made batches of 5, 5, 5 and 1, so the bench's
        # 1,000 chunks ran as 251 batches where the embedder alone ran 200, for 7% more
        # embedding time; calls of 64 make 204.
        gemini = embedder.name == "gemini"
        self.batch_size = settings.embed_batch_size if gemini else OFFLINE_EMBED_STEP
        self.in_flight = settings.embed_concurrency if gemini else os.cpu_count() or 1
        self.round = self.batch_size * self.in_flight  # texts of one round of requests
        self.first_window = self.round if gemini else OFFLINE_FIRST_WINDOW  # `windows`
        rpm = settings.limit_for(embedder.embedding_model).rpm
        self.lookahead = min(rpm * self.batch_size, settings.ingest_lookahead_chunks) if rpm else 0
        self.present: set[str] = set()
        self.records: dict[str, FileRecord] = {}
        # The chunks the files committed before this run own: read once (`recover`), as each
        # window's `copies` asks which stored chunks it may copy vectors from.
        self.committed: frozenset[str] = frozenset()
        self.incomplete: set[str] = set()
        self.trusted = False  # the manifest is known to match the store: no need to read it

    def run(self, roots: Sequence[Path], filters: Filters, prune: bool, batch: BatchRun | None = None) -> None:
        self.prune = prune
        self.recover()
        refused = self.manifest.refusals(self.terms)
        plan = plan_run(roots, filters, prune, self.records, self.incomplete, refused, self.settings, self.report)
        if plan.touched:
            self.manifest.commit(plan.touched)
        try:
            if batch is None:
                self.ingest(plan.tasks)
            else:
                self.ingest_batch(plan.tasks, batch)
        # A spent quota or budget, a bad key; a ledger that cannot record.
        except (ProviderError, StoreUnavailable, BudgetExceeded) as exc:
            self.report.stopped = f"{exc} {STOPPED_HINT}"
            self.report.over_budget = isinstance(exc, BudgetExceeded)
            done = {f.source for f in self.report.files}
            self.report.not_done = sum(t.file.source not in done for t in plan.tasks)
        self.remove(plan.removals)  # after: a file renamed on disk copies its vectors from its old name's chunks
        if prune:
            self.remove(self.stale)  # after the writer is done: the manifest and store have one writer
        ingested = [f.source for f in self.report.files if f.status in (Status.ADDED, Status.UPDATED)]
        if self.refusals or ingested:
            self.manifest.refuse(self.refusals, ingested)
        self.finish()

    def recover(self) -> None:
        """Read back what earlier runs left: a pending version bump, the stored ids, and
        committed files whose chunks are not all stored. When the manifest is clean and the
        store's write stamp is the one the last run recorded (or no store exists yet),
        nothing else has touched the collection: the manifest's own ids are what the store
        holds, and the store is opened only when there is something to write (by the
        writer thread, while the first window embeds)."""
        if self.manifest.embedder not in (None, self.embedder.embedding_id):
            _ = self.store  # refuses (EmbedderMismatch) if the collection holds the other embedder's vectors
            self.manifest.clear()  # it does not: it was rebuilt by hand with this embedder
        self.manifest.set_embedder(self.embedder.embedding_id)
        self.records = self.manifest.records()
        self.committed = frozenset(_owned(self.records.values()))
        stamp = self.manifest.store_stamp
        clean = not self.manifest.dirty
        self.trusted = clean and (
            (bool(stamp) and stamp == write_stamp(self.settings, self.report.collection))
            or (not self.records and no_store_yet(self.settings))  # a first ingest: nothing stored anywhere
        )
        if self.trusted:
            self.present = set(self.committed)
            return
        if self.manifest.dirty or self.store.version < self.manifest.version:
            self.bump()  # a crash before the last bump, or a dropped and recreated collection
        self.present = self.store.ids()
        self.incomplete = {s for s, r in self.records.items() if not self.present.issuperset(r.chunk_ids)}

    def ingest(self, tasks: Sequence[Task]) -> None:
        """The files are read, embedded and stored (`store_all`); when there are some, a local
        model starts loading at once (a run with nothing to read never loads it)."""
        warm_up = self.embedder.warm_up if tasks and isinstance(self.embedder, Warms) else None
        self.store_all(prefetched(self.prepared(tasks), PREFETCH_FILES), self.embed_online, warm_up)

    def embed_online(self, texts: Sequence[str]) -> Embedded:
        """One batch through the embedder, charged as soon as it returns (from an embedding
        thread): its failures refused with a status were never billed, and are not charged;
        its attempts with no reply (a timeout, a dropped connection) may have been, and are."""
        self.allow(self.embedder.embedding_model, Usage(prompt_tokens=sum(map(estimate_tokens, texts))))
        with charging_lost(self.lost):
            embedded = self.embedder.embed_documents(texts)
        self.pay(embedded.model, embedded.usage)
        self.lost(embedded.model, embedded.abandoned)
        return embedded

    def allow(self, model: str, usage: Usage) -> None:
        """Refuses a call the budgets cannot cover, before it is sent (`Spending.allow`)."""
        self.spending.allow(model, usage)

    def price(self, model: str, usage: Usage) -> float:
        """Charged in the ledger under the run's session; what it cost."""
        return self.spending.charge(model, usage)

    def ingest_batch(self, tasks: Sequence[Task], batch: BatchRun) -> None:
        """Embed the new chunks by Batch API jobs (or pick up the jobs an earlier run left),
        wait for them, then store the files with their vectors. Files are read once when
        this run submits, and again by a run that resumes."""
        jobs = BatchJobs(self.settings, self.manifest, embedding_jobs(self.embedder), self.spending, self.job_progress)
        records = jobs.pending()
        prepared: list[Prepared] | None = None
        if not records:
            prepared = list(self.prepared(tasks))
            records = jobs.submit(self.fresh(prepared), batch.origin)
        statuses = jobs.wait(records, block=batch.wait)
        if not all(statuses[r.name].finished for r in records):
            self.report.pending_jobs = [f"{r.name} ({counted(len(r.text_keys), 'chunk')}): {statuses[r.name].state}"
                                        for r in records]
            return
        collected = jobs.collect(records, statuses, self.embed_online)
        with self._counting:
            self.report.cost_usd += collected.cost_usd
        self.report.batch_saved_usd += collected.saved_usd
        self.report.notes.extend(collected.notes)
        files = iter(prepared) if prepared is not None else prefetched(self.prepared(tasks), PREFETCH_FILES)
        self.store_all(files, collected.vectors.embed)
        jobs.forget(records)
        if collected.vectors.unsubmitted:
            self.report.notes.append(
                f"{collected.vectors.unsubmitted:,} chunks were not in the batch jobs (files new or changed since "
                "they were submitted): embedded online, at the standard price."
            )

    def job_progress(self, done: int, total: int, state: str) -> None:
        with self._counting:
            event = Progress(self.files_done, self.files_total, self.chunks_done, self.chunks_total,
                             f"batch job {state}", done, total, state, self.reading)
        if self.on_progress:
            self.on_progress(event)

    def store_all(
        self,
        prepared: Iterator[Prepared],
        embed: Callable[[Sequence[str]], Embedded],
        warm_up: Callable[[], None] | None = None,
    ) -> None:
        """Three stages at once: files are read and chunked ahead (`prefetched`); each
        window of files has its new chunks embedded (by `embed`) in length-sorted batches,
        queued behind the window before it (ingest.batches); and a writer thread stores and
        commits each window while the next one embeds. Windows grow from one embedding round
        to `ingest_batch_chunks`, so the first files are committed within seconds. Under a
        requests/min limit, windows keep being read and queued while the limiter holds their
        requests, up to `lookahead` chunks, so its next minute finds them ready."""
        if warm_up is not None:
            # numpy first, in this thread: the model loading on its thread and chromadb
            # loading on the writer's both import it, and a thread importing it while
            # another one does can get it half initialised ("cannot import name 'NDArray'").
            import numpy  # noqa: F401

        embedding = InFlight(embed, self.batch_size, self.in_flight, warm_up)
        writer = TaggedPool(1, thread_name_prefix="ingest-store")
        queued: deque[Window] = deque()
        storing: Future[None] | None = None
        sent: set[str] = set()  # the embedded texts (content hashes) this run has sent to the embedder
        try:
            try:
                for files in self.windows(prepared):
                    fresh = self.fresh(files)
                    copied = self.copies(fresh)
                    new = [c for c in fresh if c.chunk.id not in copied]
                    twins = _twins(new, sent)
                    queued.append(Window(files, copied, embedding.submit([c for c in new if c.chunk.id not in twins]),
                                         twins))
                    while len(queued) > 1 and (_embedded(queued[0].batches) or _queued_chunks(queued) > self.lookahead):
                        storing = self.hand_over(queued.popleft(), writer, storing, embed)
            except (ProviderError, StoreUnavailable, BudgetExceeded):
                # Reading stopped (a figure's call refused by a budget or a quota): the windows
                # already read are embedded, and paid for: stored before the run stops, not
                # embedded and paid again by the next run.
                while queued:
                    storing = self.hand_over(queued.popleft(), writer, storing, embed)
                raise
            while queued:
                storing = self.hand_over(queued.popleft(), writer, storing, embed)
        finally:
            embedding.close()
            try:
                if storing is not None:
                    storing.result()  # work already embedded is kept, even when the run stops
            finally:
                writer.shutdown()

    def windows(self, files: Iterator[Prepared]) -> Iterator[list[Prepared]]:
        """Whole files, grouped until they hold `limit` chunks; the limit starts at one
        round of requests (offline: `OFFLINE_FIRST_WINDOW`, so the first files are committed
        within seconds) and doubles up to `ingest_batch_chunks`, rounded up to whole rounds
        (when it is above one), so the windows of a long run send no round half full. The
        offline windows below a round queue behind each other, which keeps every core busy."""
        most = self.settings.ingest_batch_chunks
        limit = min(self.first_window, most)
        cap = most if most <= self.round else -(-most // self.round) * self.round
        window: list[Prepared] = []
        size = 0
        for prepared in files:
            window.append(prepared)
            size += len(prepared.chunks)
            if size >= limit:
                yield window
                window, size, limit = [], 0, min(limit * 2, cap)
        if window:
            yield window

    def fresh(self, files: Sequence[Prepared]) -> list[SizedChunk]:
        """The chunks to store: those whose id (same file, same content) is not stored."""
        return [c for p in files for c in p.chunks if c.chunk.id not in self.present]

    def copies(self, fresh: Sequence[SizedChunk]) -> dict[str, list[float]]:
        """Vectors for those of the `fresh` chunks whose embedded text a stored chunk of
        another file (or place) holds: a renamed or copied file costs a store lookup, not an
        embedding. Only a chunk of a committed file is copied (an orphan is no file's, and
        whatever wrote it is not vouched for); asked only when the collection held files
        before this run."""
        if not fresh or not self.committed:
            return {}
        holders = self.store.vectors_of_texts(c.chunk.content_hash for c in fresh)
        copied = {}
        for c in fresh:
            vector = next((v for i, v in holders.get(c.chunk.content_hash, {}).items() if i in self.committed), None)
            if vector is not None:
                copied[c.chunk.id] = vector
        return copied

    def hand_over(
        self, window: Window, writer: ThreadPoolExecutor, storing: Future[None] | None,
        embed: Callable[[Sequence[str]], Embedded],
    ) -> Future[None]:
        """Wait for a window's vectors, then for the previous window's write, then start
        writing this one (windows are committed in order). Vectors already back are stored
        in parts of `STORE_STEP` while the rest embed: for all but the last window they are
        all back by now, but the last one would otherwise be written whole after the
        embedder has finished, with nothing left to overlap it. Copied vectors (`copies`)
        and those of the window's twins (`twin_vectors`) count as reused chunks, not
        embedded ones."""
        files, batches = window.files, window.batches
        vectors = dict(window.copied)
        if window.copied:
            with self._counting:
                self.report.reused_chunks += len(window.copied)
            self.advance(chunks=len(window.copied))
        written: set[str] = set()
        for i, batch in enumerate(batches):
            vectors.update(batch.vectors())
            self.count_embedding(batch.chunks)
            if _embedded(batches[i + 1 :]) or len(vectors) - len(written) < STORE_STEP:
                continue
            if storing is not None:
                storing.result()
            part = {k: v for k, v in vectors.items() if k not in written}
            storing = writer.submit(self.store_part, files, part)
            written.update(part)
        if storing is not None:
            storing.result()
        if window.twins:
            vectors.update(self.twin_vectors(window, vectors, embed))
        return writer.submit(self.flush, files, vectors, written)

    def twin_vectors(
        self, window: Window, vectors: dict[str, list[float]], embed: Callable[[Sequence[str]], Embedded]
    ) -> dict[str, list[float]]:
        """The vectors of the window's twins (`_twins`): the vector of a chunk of this window
        with the same text, else of one stored by an earlier window of the run (all written
        by now), else, should that be missing, embedded now."""
        chunks = {c.chunk.id: c for p in window.files for c in p.chunks}
        by_text = {chunks[i].chunk.content_hash: v for i, v in vectors.items() if i in chunks}
        wanted = {h for h in window.twins.values() if h not in by_text}
        if wanted:  # from chunks this run stored or committed files hold, as `copies`: not an orphan's
            for h, held in self.store.vectors_of_texts(wanted).items():
                vector = next((v for i, v in held.items() if i in self.present or i in self.committed), None)
                if vector is not None:
                    by_text[h] = vector
        found = {i: by_text[h] for i, h in window.twins.items() if h in by_text}
        missing = [chunks[i] for i in window.twins if i not in found]
        if missing:
            found.update(zip([c.chunk.id for c in missing],
                             embed([c.embedded_text for c in missing]).vectors, strict=True))
            self.count_embedding(missing)
        with self._counting:
            self.report.reused_chunks += len(window.twins) - len(missing)
        self.advance(chunks=len(window.twins) - len(missing))
        return found

    def store_part(self, files: Sequence[Prepared], vectors: dict[str, list[float]]) -> None:
        """Some of a window's new chunks, stored before its files are committed: a crash now
        leaves them as orphans, which the dirty manifest tells the next run to look for."""
        self.manifest.set_dirty(True)
        fresh = [c.chunk for p in files for c in p.chunks if c.chunk.id in vectors]
        self.store.upsert(fresh, [vectors[c.id] for c in fresh])

    def flush(self, files: Sequence[Prepared], vectors: dict[str, list[float]], written: set[str]) -> None:
        """Store the chunks of these files (new ones with their `vectors`, but for those
        `written` already; those already stored get their new place only), then commit the
        files, then delete the chunks of their previous versions, then bump the version if
        the collection changed."""
        self.store_part(files, {k: v for k, v in vectors.items() if k not in written})  # marks the manifest dirty
        chunks = [c.chunk for p in files for c in p.chunks]
        fresh = [c for c in chunks if c.id in vectors]
        reused = [c for c in chunks if c.id not in vectors]
        if reused:
            self.store.update_places(reused)
            self.report.reused_chunks += len(reused)
            self.advance(chunks=len(reused))
        self.present.update(c.id for c in chunks)
        self.manifest.commit([p.record for p in files])
        stale = [
            old for p in files if p.task.previous
            for old in set(p.task.previous.chunk_ids) - set(p.record.chunk_ids)
        ]
        self.store.delete(stale)
        self.present.difference_update(stale)
        if stale or fresh:
            self.bump()
        else:  # only files moved to another root: the same chunks, the same corpus
            self.manifest.set_dirty(False)
        for p in files:
            self.report.add(p.outcome())
            self.advance(files=1, current=p.task.file.source)

    def remove(self, records: Sequence[FileRecord]) -> None:
        """Forget first, then delete: a crash in between leaves orphans, never a record
        pointing at deleted chunks."""
        if not records:
            return
        self.manifest.set_dirty(True)
        self.manifest.forget([r.source for r in records])
        ids = [i for r in records for i in r.chunk_ids]
        self.store.delete(ids)
        self.present.difference_update(ids)
        self.bump()
        for r in records:
            self.report.add(_removed(r))

    def finish(self) -> None:
        """Delete the chunks no committed file owns (left by a crash or a stop), then record
        the store's write stamp: the next run can trust the manifest if nothing else writes.
        A run that started trusted left no orphans (every window it wrote was committed)."""
        orphans: set[str] = set()
        if not self.trusted:
            orphans = self.store.ids() - _owned(self.manifest.records().values())
        if orphans:
            self.manifest.set_dirty(True)
            self.store.delete(orphans)
            self.bump()
        self.report.orphans_removed = len(orphans)
        if "store" in self.__dict__:  # opened, so perhaps written: record where it stands now
            self.report.version = self.store.version
            self.manifest.set_store_stamp(write_stamp(self.settings, self.report.collection))
        else:
            self.report.version = self.manifest.version  # the stamp vouched for it

    def bump(self) -> None:
        """To above every version the collection ever had; the manifest records it first, so
        a crash in between leaves it ahead and dirty, never behind."""
        target = max(self.store.version, self.manifest.version) + 1
        self.manifest.set_version(target)
        self.store.bump_version(past=target - 1)
        self.manifest.set_dirty(False)


@dataclass(frozen=True)
class Window:
    """Files read together, and their new chunks' vectors: copied from the store, or on their
    way from the embedder in `batches`."""

    files: list[Prepared]
    copied: dict[str, list[float]]
    batches: list[Batch]
    twins: dict[str, str] = field(default_factory=dict)  # chunk id -> its embedded text's hash (`_twins`)


def _twins(chunks: Sequence[SizedChunk], sent: set[str]) -> dict[str, str]:
    """Those of `chunks` whose embedded text this run has already sent to the embedder (in an
    earlier window, or earlier among them), by id, with the text's hash: each text is
    embedded once per run, and its twins take its vector (two copies of a file in one folder
    cost one embedding). `sent` gains the others' hashes."""
    twins = {}
    for c in chunks:
        if c.chunk.content_hash in sent:
            twins[c.chunk.id] = c.chunk.content_hash
        else:
            sent.add(c.chunk.content_hash)
    return twins


def _queued_chunks(queued: Iterable[Window]) -> int:
    """Chunks of the windows read and queued behind the oldest one."""
    return sum(len(p.chunks) for window in list(queued)[1:] for p in window.files)


def _embedded(batches: Sequence[Batch]) -> bool:
    """A window whose vectors are all back goes to the writer now, lookahead or not."""
    return all(b.embedded.done() for b in batches)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)
