"""Files uploaded from the browser: checked, copied into the data dir, then ingested.

Each call's files are staged in a folder of their own and moved onto their stored names by
the ingest that reads them, under the collection's lock (ingest.uploads, as the API's jobs
are), so an upload of the same name at the same time cannot swap the bytes this one ingests.

Names are made safe and kept inside the uploads folder by rag.uploads. Size and type are
checked here even though Gradio also limits them, because the limits
must hold for any client that talks to the server directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.pipeline import LockWait
from ingest.report import IngestReport, ProgressCallback
from ingest.spending import ledger_session
from ingest.uploads import ingest_staged
from rag.providers.base import Embedder, Generator
from rag.settings import Settings
from rag.uploads import StagedFile, UploadRejected, incoming_dir, readable_name, safe_name, staged_file, upload_dir
from ui import browser_copies

__all__ = [
    "StagedFile", "UploadRejected", "UploadResult", "check", "ingest_uploads", "safe_name", "stage", "upload_dir",
]


def check(original_name: str, size: int, settings: Settings) -> str:
    """The stored name of a file of `size` bytes uploaded as `original_name`; UploadRejected
    says why it is refused. Also what a file the browser was given is judged by before it is
    sent (`Handlers.picked`): Gradio refuses it there by the same type and size limits."""
    name = readable_name(original_name)
    limit = settings.max_upload_bytes
    if size > limit:  # in bytes: a file just over the limit would round to it in MB
        raise UploadRejected(
            f"{original_name}: {size:,} bytes is over the upload limit of {settings.max_upload_mb:g} MB "
            f"({limit:,} bytes; set GEMRAG_MAX_UPLOAD_MB to change it, or ingest large files with python -m ingest)."
        )
    return name


def stage(uploaded: Path, original_name: str, settings: Settings, folder: Path) -> StagedFile:
    """Check one uploaded file and copy it into `folder`, its upload's (rag.uploads.incoming_dir)."""
    name = check(original_name, uploaded.stat().st_size, settings)
    staged = staged_file(folder, name, original_name)
    shutil.copyfile(uploaded, staged.path)
    return staged


@dataclass
class UploadResult:
    staged: list[StagedFile] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one readable line per refused file
    report: IngestReport | None = None


def ingest_uploads(
    files: Sequence[Path],
    settings: Settings,
    embedder: Embedder,
    collection: str,
    on_progress: ProgressCallback | None = None,
    generator: Generator | None = None,
    account: str | None = None,
    wait: LockWait | None = None,
) -> UploadResult:
    """Stage what passes the checks and ingest it with the CLI's pipeline; the stored names
    are the sanitised file names, so answers cite what the user uploaded. `generator`, the
    session's, describes images and transcribes scans when it is Gemini. A file whose
    browser copy is gone was ingested by an earlier call and is passed over. `account`: the
    logged-in key whose budgets the ingest's spending counts against (None: local). `wait`:
    how to wait for another ingest into the collection (default: refused at once)."""
    result = UploadResult()
    folder = incoming_dir(settings, collection)
    try:
        for file in files:
            if not file.exists():
                # Staged by an earlier upload event, which removed the browser's copy: the file box
                # still listed it when the next file was added beside it.
                continue
            try:
                result.staged.append(stage(file, file.name, settings, folder))
            except UploadRejected as exc:
                result.rejected.append(str(exc))
        browser_copies.discard(files, settings)  # staged copies are what gets ingested and cited
        if result.staged:
            result.report = ingest_staged(result.staged, settings, embedder, collection, on_progress=on_progress,
                                          generator=generator, session=ledger_session(collection, account),
                                          wait=wait)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # moved onto their names, refused, or the run was: none waits
    return result
