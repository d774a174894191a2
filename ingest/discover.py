"""Find the files an ingest run covers, and the name each one is stored under.

A file's stored name is its path relative to the PATH argument that found it, with forward
slashes, so the same folder ingested from anywhere gives the same names (and ids). Hidden
files and folders are not entered: they hold tool state (.git, the data dir itself), not
documents. Symlinks are followed only while they stay inside the root, so a link can
neither pull in files from elsewhere nor make the walk loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

SUPPORTED = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
}


@dataclass(frozen=True)
class SourceFile:
    """A file found under a root; `kind` is None for a type we cannot read."""

    path: Path
    source: str  # stored name: relative to the root, forward slashes
    root: Path  # the PATH argument, resolved

    @property
    def kind(self) -> str | None:
        return SUPPORTED.get(self.path.suffix.lower())


@dataclass(frozen=True)
class Filters:
    """Globs matched against the stored name (`*` also crosses `/`, so `*.md` finds
    `sub/a.md`); with no include globs every file is included."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()

    def admits(self, source: str) -> bool:
        if self.include and not any(fnmatch(source, g) for g in self.include):
            return False
        return not any(fnmatch(source, g) for g in self.exclude)


def discover(root: Path, filters: Filters) -> Iterator[SourceFile]:
    """Files under `root` (or `root` itself when it is a file), in a stable order."""
    real_root = root.resolve()
    if real_root.is_file():
        if filters.admits(real_root.name):
            yield SourceFile(real_root, real_root.name, real_root)
        return
    seen_dirs: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(real_root, followlinks=True):
        here = Path(dirpath)
        real_here = here.resolve()
        if real_here in seen_dirs or not real_here.is_relative_to(real_root):
            dirnames.clear()
            continue
        seen_dirs.add(real_here)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = here / name
            if name.startswith(".") or not path.resolve().is_relative_to(real_root) or not path.is_file():
                continue
            source = path.relative_to(real_root).as_posix()
            if filters.admits(source):
                yield SourceFile(path, source, real_root)
