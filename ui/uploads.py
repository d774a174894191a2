"""Files uploaded from the browser: checked, copied into the data dir, then ingested.

An upload's name comes from the browser and cannot be trusted: it is reduced to a plain
file name (no directories, no leading dots, a small character set) and the destination is
checked to lie inside the data dir's uploads folder, so no name can write anywhere else.
Size and type are checked here even though Gradio also limits them, because the limits
must hold for any client that talks to the server directly.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ingest.discover import SUPPORTED
from rag.errors import GemragError
from rag.settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_NAME = 120


class UploadRejected(GemragError):
    """An uploaded file that will not be stored; the message names it and says why."""


@dataclass(frozen=True)
class StagedFile:
    name: str  # the sanitised file name, as it will be cited
    path: Path  # where it now lives, inside the data dir


def safe_name(original: str) -> str:
    """A plain file name made from whatever the browser sent ("../../x.md" → "x.md")."""
    name = PureWindowsPath(PurePosixPath(original).name).name
    name = unicodedata.normalize("NFKC", name)
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if dot and len(name) > MAX_NAME:
        name = f"{stem[: MAX_NAME - len(ext) - 1]}.{ext}"
    return name[:MAX_NAME]


def upload_dir(settings: Settings, collection: str) -> Path:
    uploads = settings.path("uploads").resolve()
    folder = (uploads / collection).resolve()
    if folder.parent != uploads:
        raise UploadRejected(f"Collection {collection!r} is not a usable folder name.")
    folder.mkdir(exist_ok=True)
    return folder


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
