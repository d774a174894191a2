"""Find the files an ingest run covers, the name each one is stored under, and every entry
left out with the reason.

A file's stored name is its path relative to the PATH argument that found it, with forward
slashes, so the same folder ingested from anywhere gives the same names (and ids). A name
that is not valid UTF-8 (an old archive's Latin-1 names) is stored with its undecodable
bytes written out (`caf\\xe9.md`): stable across runs, and printable in a report.

Hidden files and folders are not entered unless asked (`include_hidden`): they hold tool
state (.git, the data dir itself), not documents. An uploads folder's `.incoming` (uploads
waiting for their ingest, rag.uploads) is never entered. Symlinks are followed only while they
stay inside the root, so a link can neither pull in files from elsewhere nor make the walk
loop; a link to a file or folder the walk reads anyway is an alias, left out, so a file is
stored once, under its real name. Names are printable on one line: control characters are
written out like undecodable bytes. Nothing is left out silently: each hidden entry, link leaving the root, broken link,
FIFO or device, and folder that cannot be read comes out as a `Skipped` with its reason.

A folder's `.gemragignore` (one glob per line, `#` comments) adds its globs to `--exclude`
for that folder: what a folder holds beside its documents (test sets, build output) is left
out on every run without the user repeating it. It is read, not listed as a hidden file.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path

from rag.filetypes import SUPPORTED, printable
from rag.uploads import INCOMING, UPLOADS

HIDDEN_HINT = "add --include-hidden to take it"
IGNORE_FILE = ".gemragignore"


@dataclass(frozen=True)
class SourceFile:
    """A file found under a root; `kind` is None for a type we cannot read."""

    path: Path
    source: str  # stored name: relative to the root, forward slashes, printable
    root: Path  # the PATH argument, resolved

    @property
    def kind(self) -> str | None:
        return SUPPORTED.get(self.path.suffix.lower())


@dataclass(frozen=True)
class Skipped:
    """An entry under a root that is not ingested; `failed` when the user surely meant it to
    be read (a folder we may not open), so the run's exit status says so."""

    source: str  # relative to the root; folders end in '/'
    reason: str
    failed: bool = False
    alias: bool = False  # a link to what the walk reads under its real name


@dataclass(frozen=True)
class Filters:
    """Globs matched against the stored name (`*` also crosses `/`, so `*.md` finds
    `sub/a.md`); with no include globs every file is included."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    include_hidden: bool = False

    def admits(self, source: str) -> bool:
        if self.include and not any(fnmatch(source, g) for g in self.include):
            return False
        return not any(fnmatch(source, g) for g in self.exclude)


def discover(root: Path, filters: Filters, data_dir: Path | None = None) -> Iterator[SourceFile | Skipped]:
    """Files under `root` (or `root` itself when it is a file), in a stable order, and the
    entries left out. `data_dir` (gemrag's own) is never entered."""
    real_root = root.resolve()
    if real_root.is_file():
        if filters.admits(printable(real_root.name)):
            yield SourceFile(real_root, printable(real_root.name), real_root)
        return
    if real_root.exists() and not real_root.is_dir():  # a FIFO or a device named as PATH: not "./", no folder
        yield Skipped(printable(real_root.name), _not_regular(real_root.stat().st_mode), failed=True)
        return
    filters = replace(filters, exclude=(*filters.exclude, *ignored(real_root)))
    yield from _Walk(real_root, filters, data_dir.resolve() if data_dir else None).files()


def ignored(folder: Path) -> tuple[str, ...]:
    """The globs of `folder`'s IGNORE_FILE, if it has one: stored names, as `--exclude` takes."""
    try:
        lines = (folder / IGNORE_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:  # none, or unreadable: nothing more is left out
        return ()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


class _Walk:
    """The real folders first, then the symlinks inside the root: a link to a file or
    folder the walk reads anyway is an alias, skipped, so each file is stored once and under
    its real name, whichever sorts first; a link is followed only to what nothing else
    reaches (a hidden folder's file, say). Links met while following one wait their turn
    the same way; a folder is never walked twice, so links cannot make the walk loop."""

    def __init__(self, real_root: Path, filters: Filters, own: Path | None) -> None:
        self.real_root = real_root
        self.filters = filters
        self.own = own
        self.folders: dict[Path, str] = {}  # real folder -> the name it was read under
        self.read: dict[Path, str] = {}  # real file -> its stored name
        self.links: deque[Path] = deque()  # symlinks inside the root, in the order met

    def files(self) -> Iterator[SourceFile | Skipped]:
        yield from self.tree(self.real_root)
        while self.links:
            link = self.links.popleft()
            real = link.resolve()
            source = self.source(link)
            if real.is_dir():
                if real in self.folders:
                    yield Skipped(f"{source}/", f"the same folder as {self.folders[real]}, already read", alias=True)
                else:
                    yield from self.tree(link)
            elif real in self.read:
                yield Skipped(source, f"the same file as {self.read[real]}, already read", alias=True)
            else:
                yield from self.file(link, source, real)

    def source(self, path: Path) -> str:
        return printable(path.relative_to(self.real_root).as_posix())

    def tree(self, top: Path) -> Iterator[SourceFile | Skipped]:
        """Walk `top` without entering symlinked folders; links are queued for `files`."""
        errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(top, onerror=errors.append):
            yield from _unreadable(errors, self.real_root)
            here = Path(dirpath)
            real_here = here.resolve()
            if real_here in self.folders:  # reached again under another link, or a bind mount
                dirnames.clear()
                yield Skipped(f"{self.source(here)}/", f"the same folder as {self.folders[real_here]}, already read",
                              alias=True)
                continue
            self.folders[real_here] = f"{self.source(here)}/" if here != self.real_root else "./"
            kept = []
            for name in sorted(dirnames):
                verdict = _folder(here / name, self.real_root, self.filters, self.own)
                if verdict is not None:
                    yield verdict
                elif (here / name).is_symlink():
                    self.links.append(here / name)
                else:
                    kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                path = here / name
                if not path.is_symlink():
                    yield from self.file(path, self.source(path), real_here / name)
                elif (real := _resolved(path)) is None:
                    yield Skipped(self.source(path), f"symlink loop (to {printable(os.readlink(path))}, "
                                                     "which leads back to itself)")
                elif real.is_relative_to(self.real_root):
                    self.links.append(path)
                else:  # a link that leaves the root is skipped by `_file`
                    yield from self.file(path, self.source(path), real_here / name)
        yield from _unreadable(errors, self.real_root)

    def file(self, path: Path, source: str, real: Path) -> Iterator[SourceFile | Skipped]:
        """`real`: the file `path` is, resolved once by the caller (a resolve per file is a
        system call per folder of its path). The root's IGNORE_FILE is read, not listed."""
        if source != IGNORE_FILE and self.filters.admits(source):
            verdict = _file(path, source, self.real_root, self.filters)
            if isinstance(verdict, SourceFile):
                self.read.setdefault(real, source)
            yield verdict


def _resolved(link: Path) -> Path | None:
    """Where a symlink leads, or None for a loop ("a -> b", "b -> a", or a link to itself),
    which os.walk lists as a file: Path.resolve raised, and the whole run stopped on an
    "unexpected RuntimeError: Symlink loop"."""
    try:
        return link.resolve()
    except (RuntimeError, OSError):  # RuntimeError before Python 3.13, OSError (ELOOP) since
        return None


def _folder(path: Path, real_root: Path, filters: Filters, own: Path | None) -> Skipped | None:
    """None to enter the folder, or why not."""
    source = printable(path.relative_to(real_root).as_posix()) + "/"
    if path.name.startswith(".") and not filters.include_hidden:
        return Skipped(source, f"hidden folder ({HIDDEN_HINT})")
    real = path.resolve()
    if own is not None and real == own:
        return Skipped(source, "gemrag's own data folder")
    if own is not None and real.name == INCOMING and real.parent.parent == own / UPLOADS:
        return Skipped(source, "uploads waiting for their ingest, which moves them out")
    if path.is_symlink() and not real.is_relative_to(real_root):
        return Skipped(source, f"symlink to {printable(real)}, outside the folder")
    return None


def _file(path: Path, source: str, real_root: Path, filters: Filters) -> SourceFile | Skipped:
    if path.name.startswith(".") and not filters.include_hidden:
        return Skipped(source, f"hidden ({HIDDEN_HINT})")
    if path.is_symlink():
        real = path.resolve()
        if not real.exists():
            return Skipped(source, f"broken symlink (to {printable(os.readlink(path))})")
        if not real.is_relative_to(real_root):
            return Skipped(source, f"symlink to {printable(real)}, outside the folder")
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return Skipped(source, f"cannot read: {exc.strerror or exc}", failed=True)
    if not stat.S_ISREG(mode):
        return Skipped(source, _not_regular(mode))
    return SourceFile(path, source, real_root)


def _not_regular(mode: int) -> str:
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'special file')})"


_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device"}


def _unreadable(errors: list[OSError], real_root: Path) -> Iterator[Skipped]:
    """Folders os.walk could not list (it reports them through `onerror`)."""
    while errors:
        error = errors.pop(0)
        where = Path(error.filename) if error.filename else real_root
        source = printable(where.relative_to(real_root).as_posix()) + "/" if where != real_root else "./"
        yield Skipped(source, f"cannot read folder: {error.strerror or error}", failed=True)
