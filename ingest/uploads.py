"""Uploads ingested: the UI's (ui.uploads) and the API's (its worker, ingest.worker), staged
by rag.uploads in a folder of their own upload.

Each staged file is moved onto its stored name (`os.replace`, atomic) by the ingest run that
reads it, once that run holds the collection's ingest lock. So a stored upload changes only
inside a locked run, each run ingests the bytes of its own upload, and of two uploads of one
name the later run's is what stays, reported as updated (or unchanged: the same bytes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ingest.pipeline import ingest_paths
from ingest.report import IngestReport, ProgressCallback
from rag.providers.base import Embedder, Generator
from rag.settings import Settings
from rag.uploads import StagedFile, discard, sweep


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
    """Move the staged files onto their stored paths and ingest those, in one locked run.
    A file already moved (a retried job whose run stopped after the move) is ingested as it
    is stored. Raises, like `ingest_paths`, for a refused run; the files stay staged when the
    lock was not had, for a retry: the caller `discard`s them when none will come."""

    def move() -> None:
        for file in staged:
            if file.path != file.stored and file.path.exists():
                os.replace(file.path, file.stored)
        discard(staged)
        sweep(settings, collection)

    stored = list(dict.fromkeys(f.stored for f in staged))  # one name sent twice in one upload is one file
    return ingest_paths(stored, settings, embedder, collection=collection,
                        on_progress=on_progress, generator=generator, session=session, on_lock=move)
