"""Uploads ingested: the UI's (ui.uploads) and the API's (its worker, ingest.worker), staged
by rag.uploads in a folder of their own upload.

Each staged file is moved onto its stored name (`os.replace`, atomic) by the ingest run that
reads it, once that run holds the collection's ingest lock. So a stored upload changes only
inside a locked run, each run ingests the bytes of its own upload, and of two uploads of one
name the later run's is what stays, reported as updated (or unchanged: the same bytes).

Bad input loses nothing: the stored file an upload replaces is kept (a hard link in the
upload's folder, `PREVIOUS`) until the run has read the upload, and put back, still under the
lock, if the run refused it (empty, unreadable): the previous version stays on disk as its
chunks stay in the collection, and the refusal says so. A refused upload that replaced
nothing is removed: no file of its name is searched. A run that raises puts every moved
upload back in its folder and every previous version back on its name, so a retry starts
from where the first attempt did and a caller that gives up loses nothing stored.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ingest.pipeline import STALE_HINT, LockWait, ingest_paths
from ingest.report import IngestReport, ProgressCallback, Status
from rag.providers.base import Embedder, Generator
from rag.settings import Settings
from rag.uploads import StagedFile, discard, sweep

PREVIOUS = ".previous"  # in an upload's folder (no stored name starts with a dot): the files it replaces
REFUSED = (Status.FAILED, Status.SKIPPED)


def ingest_staged(
    staged: Sequence[StagedFile],
    settings: Settings,
    embedder: Embedder,
    collection: str,
    *,
    on_progress: ProgressCallback | None = None,
    generator: Generator | None = None,
    session: str | None = None,
    wait: LockWait | None = None,
) -> IngestReport:
    """Move the staged files onto their stored paths and ingest those, in one locked run; a
    stored file whose upload the run refused is put back. A file already moved (a retried job
    whose run stopped after the move) is ingested as it is stored. Raises, like `ingest_paths`,
    for a refused run; the files stay staged when the lock was not had or the run raised (the
    moves undone, `_undo`), for a retry: the caller `discard`s them when none will come."""

    @contextmanager
    def locked(report: IngestReport) -> Iterator[None]:
        replaced = [r for f in staged if (r := _move(f)) is not None]
        try:
            yield
        except BaseException:
            _undo(replaced)
            raise
        _put_back_refused(replaced, report)
        discard(staged)
        sweep(settings, collection)

    stored = list(dict.fromkeys(f.stored for f in staged))  # one name sent twice in one upload is one file
    return ingest_paths(stored, settings, embedder, collection=collection,
                        on_progress=on_progress, generator=generator, session=session, locked=locked, wait=wait)


@dataclass(frozen=True)
class Moved:
    """A staged upload moved onto its stored name, and the previous version it replaced (None:
    the name was new)."""

    file: StagedFile
    previous: Path | None


def _move(file: StagedFile) -> Moved | None:
    """`file` moved onto its stored name, the stored file it replaces kept beside the upload
    (a hard link, or a copy where the file system has none: the stored name is never
    missing); None when it is where it is stored (queued before uploads were staged). An
    attempt killed after its move (no `_undo`) left the upload on its name and the previous
    version kept: its retry takes them as they are."""
    if file.path == file.stored:
        return None
    previous = file.path.parent / PREVIOUS / file.name
    if file.path.exists():
        if file.stored.exists() and not previous.exists():
            previous.parent.mkdir(exist_ok=True)
            try:
                os.link(file.stored, previous)
            except OSError:  # no hard links here (some network file systems)
                shutil.copy2(file.stored, previous)
        os.replace(file.path, file.stored)
    elif not file.stored.exists():
        return None
    return Moved(file, previous if previous.exists() else None)


def _undo(moved: Iterable[Moved]) -> None:
    """Each upload back in its folder and each previous version back on its name: the run
    raised, and its caller retries from the staged files or discards them."""
    for m in moved:
        if m.file.stored.exists():
            os.replace(m.file.stored, m.file.path)
        if m.previous is not None:
            os.replace(m.previous, m.file.stored)


def _put_back_refused(moved: Iterable[Moved], report: IngestReport) -> None:
    """The previous version of each file whose upload the run refused, back on its name (the
    same file, so the next run finds it unchanged), and the refusal saying so; a refused
    upload that replaced nothing, removed."""
    by_name = {m.file.name: m for m in moved}
    for n, outcome in enumerate(report.files):
        back = by_name.get(outcome.source)
        if back is None or outcome.status not in REFUSED:
            continue
        if back.previous is None:
            back.file.stored.unlink(missing_ok=True)
            continue
        os.replace(back.previous, back.file.stored)
        why = outcome.reason.removesuffix(f"; {STALE_HINT}")  # the CLI's --prune is not an uploader's to give
        report.files[n] = replace(outcome, reason=(
            f"the upload of {outcome.source} was refused ({why}); the previous {outcome.source} stays, "
            "as stored and as searched"))
