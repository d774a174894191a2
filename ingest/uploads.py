"""Uploads ingested: the UI's (ui.uploads) and the API's (its worker, ingest.worker), staged
by rag.uploads in a folder of their own upload.

Each staged file is moved onto its stored name (`os.replace`, atomic) by the ingest run that
reads it, once that run holds the collection's ingest lock. So a stored upload changes only
inside a locked run, each run ingests the bytes of its own upload, and of two uploads of one
name the later run's is what stays, reported as updated (or unchanged: the same bytes).

Bad input loses nothing: the stored file an upload replaces is kept (a hard link in the
upload's folder, `PREVIOUS`) until the run has read the upload, and put back, still under the
lock, if the run refused it (empty, unreadable): the previous version stays on disk as its
chunks stay in the collection, and the refusal says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ingest.pipeline import STALE_HINT, ingest_paths
from ingest.report import IngestReport, ProgressCallback, Status
from rag.providers.base import Embedder, Generator
from rag.settings import Settings
from rag.uploads import StagedFile, discard, sweep

PREVIOUS = ".previous"  # in an upload's folder (no stored name starts with a dot): the files it replaces
REFUSED = (Status.FAILED, Status.SKIPPED)


@dataclass(frozen=True)
class Replaced:
    """A stored file an upload was moved onto, and where its previous version waits until the
    run has read the upload."""

    file: StagedFile
    previous: Path


def ingest_staged(
    staged: Sequence[StagedFile],
    settings: Settings,
    embedder: Embedder,
    collection: str,
    *,
    on_progress: ProgressCallback | None = None,
    generator: Generator | None = None,
    session: str | None = None,
) -> IngestReport:
    """Move the staged files onto their stored paths and ingest those, in one locked run; a
    stored file whose upload the run refused is put back. A file already moved (a retried job
    whose run stopped after the move) is ingested as it is stored. Raises, like `ingest_paths`,
    for a refused run; the files stay staged when the lock was not had, or moved with their
    previous versions kept when the run raised, for a retry: the caller `discard`s them when
    none will come."""

    @contextmanager
    def locked(report: IngestReport) -> Iterator[None]:
        replaced = {r.file.stored: r for f in staged if (r := _move(f)) is not None}
        yield
        _put_back_refused(replaced.values(), report)
        discard(staged)
        sweep(settings, collection)

    stored = list(dict.fromkeys(f.stored for f in staged))  # one name sent twice in one upload is one file
    return ingest_paths(stored, settings, embedder, collection=collection,
                        on_progress=on_progress, generator=generator, session=session, locked=locked)


def _move(file: StagedFile) -> Replaced | None:
    """`file` moved onto its stored name, the stored file it replaces kept beside the upload
    (a hard link: the stored name is never missing); None when there was none. A retry finds
    what its first attempt kept."""
    if file.path == file.stored:  # queued before uploads were staged: it is where it is stored
        return None
    previous = file.path.parent / PREVIOUS / file.name
    if file.path.exists():
        if file.stored.exists() and not previous.exists():
            previous.parent.mkdir(exist_ok=True)
            os.link(file.stored, previous)
        os.replace(file.path, file.stored)
    return Replaced(file, previous) if previous.exists() else None


def _put_back_refused(replaced: Iterable[Replaced], report: IngestReport) -> None:
    """The previous version of each file whose upload the run refused, back on its name (the
    same file, so the next run finds it unchanged), and the refusal saying so."""
    kept = {r.file.name: r for r in replaced}
    for n, outcome in enumerate(report.files):
        back = kept.get(outcome.source)
        if back is None or outcome.status not in REFUSED:
            continue
        os.replace(back.previous, back.file.stored)
        why = outcome.reason.removesuffix(f"; {STALE_HINT}")  # the CLI's --prune is not an uploader's to give
        report.files[n] = replace(outcome, reason=(
            f"the upload of {outcome.source} was refused ({why}); the previous {outcome.source} stays, "
            "as stored and as searched"))
