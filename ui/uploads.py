"""Files uploaded from the browser: checked, copied into the data dir, then ingested.

Names are made safe and kept inside the uploads folder by rag.uploads. Size and type are
checked here even though Gradio also limits them, because the limits
must hold for any client that talks to the server directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.discover import SUPPORTED
from ingest.pipeline import ingest_paths
from ingest.report import IngestReport, ProgressCallback
from rag.providers.base import Embedder, Generator
from rag.settings import Settings
from rag.uploads import StagedFile, UploadRejected, safe_name, upload_dir
from ui import browser_copies

__all__ = ["StagedFile", "UploadRejected", "UploadResult", "ingest_uploads", "safe_name", "stage", "upload_dir"]


def stage(uploaded: Path, original_name: str, settings: Settings, collection: str) -> StagedFile:
    """Check one uploaded file and copy it into the collection's uploads folder."""
    name = safe_name(original_name)
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        allowed = ", ".join(sorted(SUPPORTED))
        raise UploadRejected(f"{original_name}: file type {suffix or '(none)'} is not supported (use {allowed}).")
    size_mb = uploaded.stat().st_size / 1_000_000
    if size_mb > settings.max_upload_mb:
        raise UploadRejected(
            f"{original_name}: {size_mb:.1f} MB is over the upload limit of {settings.max_upload_mb:g} MB "
            "(set GEMRAG_MAX_UPLOAD_MB to change it, or ingest large files with python -m ingest)."
        )
    root = upload_dir(settings, collection)
    target = (root / name).resolve()
    if not name or target.parent != root:
        raise UploadRejected(f"{original_name}: not a usable file name.")
    shutil.copyfile(uploaded, target)
    return StagedFile(name, target)


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
) -> UploadResult:
    """Stage what passes the checks and ingest it with the CLI's pipeline; the stored names
    are the sanitised file names, so answers cite what the user uploaded. `generator`, the
    session's, describes images and transcribes scans when it is Gemini. A file whose
    browser copy is gone was ingested by an earlier call and is passed over."""
    result = UploadResult()
    for file in files:
        if not file.exists():
            # Staged by an earlier upload event, which removed the browser's copy: the file box
            # still listed it when the next file was added beside it.
            continue
        try:
            result.staged.append(stage(file, file.name, settings, collection))
        except UploadRejected as exc:
            result.rejected.append(str(exc))
    browser_copies.discard(files, settings)  # staged copies are what gets ingested and cited
    if result.staged:
        result.report = ingest_paths(
            [s.path for s in result.staged], settings, embedder, collection=collection, on_progress=on_progress,
            generator=generator,
        )
    return result
