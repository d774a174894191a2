"""Where uploaded files go, under names that cannot escape it: shared by the UI's uploads and
the API's (POST /v1/collections/{name}/documents), which must not import each other.

An upload's name comes from the client and cannot be trusted: it is reduced to a plain file
name (no directories, no leading dots, a small character set) and the destination is
checked to lie inside the data dir's uploads folder, so no name can write anywhere else.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from rag.errors import GemragError
from rag.settings import Settings

_UNSAFE = re.compile(r"[^\w. -]+")  # \w keeps letters of every script
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
    uploads.mkdir(exist_ok=True)
    folder = (uploads / collection).resolve()
    if folder.parent != uploads:
        raise UploadRejected(f"Collection {collection!r} is not a usable folder name.")
    folder.mkdir(exist_ok=True)
    return folder
