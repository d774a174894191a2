"""Where uploaded files go, under names that cannot escape it: shared by the UI's uploads and
the API's (POST /v1/collections/{name}/documents), which must not import each other.

An upload's name comes from the client and cannot be trusted: it is reduced to a plain file
name (no directories, no leading dots, a small character set) and the destination is
checked to lie inside the data dir's uploads folder, so no name can write anywhere else.

An upload is kept at `uploads/<collection>/<name>`: what the ingest manifest records, and so
what the source preview, File Search sync and removal read. It is not written there, though:
it is staged in a folder of its own upload, `uploads/<collection>/.incoming/<id>/<name>`,
and moved onto its name by the ingest that reads it, under the collection's ingest lock
(ingest.uploads). So two uploads of one name, at once, cannot overwrite each other's bytes
before each is ingested: each ingest reads its own, and the later one is what stays. A
stored name never starts with a dot (`safe_name`), nor does a collection name, so
`.incoming` is neither; ingest does not walk into it (ingest.discover).
"""

from __future__ import annotations

import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from rag.errors import GemragError
from rag.filetypes import SUPPORTED
from rag.settings import Settings

# What a stored name may not hold: \w keeps letters of every script, and the punctuation of
# everyday file names stays ("budget (2025).md", "notes [draft], v2+.md", "Q&A.md"): each
# run of anything else is one "_", and with parentheses and brackets made "_" as well,
# "budget (2025).md" and "budget [2025].md" were one stored name, the second upload
# replacing the first (API walkthrough). Path separators, controls, quotes, and what a URL
# or a shell reads specially ("#", "?", "%", "*", "|", "<", ">", ":") stay out. A name is
# shown escaped (ui.safe), as a file ingested from a folder, whatever its name, always was.
_UNSAFE = re.compile(r"[^\w. ()\[\]{}+,=@&!~-]+")
MAX_NAME = 120
UPLOADS = "uploads"  # under the data dir: a folder per collection
INCOMING = ".incoming"  # under a collection's folder: a folder per upload, until its ingest
# Why two files under one stored name are refused, not taken one after the other: an upload
# under a name already stored replaces what is stored under it (that is how a file is updated).
SAME_NAME = "uploaded apart, the later would replace the other"
STALE_S = 7 * 24 * 3600  # an upload folder this old belongs to no job that can still run


class UploadRejected(GemragError):
    """An uploaded file that will not be stored; the message names it and says why."""


@dataclass(frozen=True)
class StagedFile:
    name: str  # the sanitised file name, as it will be cited
    path: Path  # where it waits for its ingest, in its upload's own folder under `.incoming`
    stored: Path  # where its ingest moves it: the collection's uploads folder, under `name`

    @classmethod
    def at(cls, path: Path) -> StagedFile:
        """The staged file at `path` (as a job records it). A path outside `.incoming` (a job
        queued before uploads were staged) is already where it is stored."""
        if path.parent.parent.name != INCOMING:
            return cls(path.name, path, path)
        return cls(path.name, path, path.parent.parent.parent / path.name)


def safe_name(original: str) -> str:
    """A plain file name made from whatever the browser sent ("../../x.md" → "x.md")."""
    name = PureWindowsPath(PurePosixPath(original).name).name
    name = unicodedata.normalize("NFKC", name)
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if dot and len(name) > MAX_NAME:
        name = f"{stem[: MAX_NAME - len(ext) - 1]}.{ext}"
    return name[:MAX_NAME]


def readable_name(original: str) -> str:
    """The stored name (`safe_name`) of an upload of a type ingest reads; else UploadRejected
    names the file and the types it takes, before anything is written or queued."""
    return stored_names([original])[0]


def _unreadable(original: str) -> str | None:
    """Why an upload sent as `original` would not be read, naming it; None if it would."""
    suffix = Path(safe_name(original)).suffix.lower()
    if suffix in SUPPORTED:
        return None
    if Path(original).suffix.lower() in SUPPORTED:  # "..md": nothing is left of the name but its type
        return f"{original}: not a usable file name; give the file a name before its type"
    return f"{original or '(a file sent without a name)'}: file type {suffix or '(none)'} is not supported"


def _refused(reasons: Sequence[str]) -> str:
    return f"{'; '.join(reasons)} (use {', '.join(sorted(SUPPORTED))})."


def stored_names(originals: Sequence[str]) -> list[str]:
    """The stored names of one upload's files (`readable_name`), refusing every file ingest
    would not read, each named (the first alone was: a client found the next one by sending
    again), and two stored under one name ("a/x.md" and "b/x.md" are both "x.md"): the
    second overwrote the first while the upload reported both."""
    unreadable = [reason for reason in map(_unreadable, originals) if reason is not None]
    if unreadable:
        raise UploadRejected(_refused(unreadable))
    names = [safe_name(original) for original in originals]
    first: dict[str, str] = {}
    for original, name in zip(originals, names, strict=True):
        if name in first:
            raise UploadRejected(f"{first[name]} and {original} would both be stored as {name}; rename one "
                                 f"({SAME_NAME}).")
        first[name] = original
    return names


def upload_dir(settings: Settings, collection: str) -> Path:
    uploads = settings.path(UPLOADS).resolve()
    uploads.mkdir(exist_ok=True)
    folder = (uploads / collection).resolve()
    if folder.parent != uploads:
        raise UploadRejected(f"Collection {collection!r} is not a usable folder name.")
    folder.mkdir(exist_ok=True)
    return folder


def incoming_dir(settings: Settings, collection: str) -> Path:
    """A new folder, private to one upload, for its files until their ingest moves them."""
    folder = upload_dir(settings, collection) / INCOMING / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def staged_file(folder: Path, name: str, original: str = "") -> StagedFile:
    """Where the file stored as `name` (a `safe_name`) waits in an upload's `folder`; a
    refusal names it as uploaded (`original`), when given."""
    target = (folder / name).resolve()
    if not name or target.parent != folder:
        raise UploadRejected(f"{original or name or '(no name)'}: not a usable file name.")
    if target.exists():  # the folder is this upload's own: another of its files has the name
        raise UploadRejected(f"{original or name}: another file of this upload has the same name; rename one "
                             f"({SAME_NAME}).")
    return StagedFile(name, target, folder.parent.parent / name)


def discard(staged: Iterable[StagedFile]) -> None:
    """Remove what is left of these uploads' folders: their files that were not moved onto
    their stored names (a refused or failed ingest) and the folders themselves."""
    for folder in {s.path.parent for s in staged if s.path != s.stored}:
        shutil.rmtree(folder, ignore_errors=True)


def sweep(settings: Settings, collection: str) -> None:
    """Remove upload folders older than `STALE_S`: left by a job that never ran (its record
    expired) or a process killed while it received the files."""
    incoming = settings.path(UPLOADS) / collection / INCOMING
    if not incoming.is_dir():
        return
    for folder in incoming.iterdir():
        try:
            stale = time.time() - folder.stat().st_mtime > STALE_S
        except OSError:  # removed meanwhile: its upload failed, or its run is over
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
