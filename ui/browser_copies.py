"""Gradio's own copies of uploaded files, kept inside the data dir and removed when done.

Gradio writes every upload to its temp folder (GRADIO_TEMP_DIR) before a handler sees it,
and never deletes it. We point that folder into the data dir, so uploads never land
elsewhere on the machine, and remove each copy once it is staged in the uploads folder;
copies left behind by a process that was killed mid-upload are swept at the next start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from rag.settings import Settings

FOLDER = "gradio"
LEFTOVER_AGE_S = 3600.0  # older than any upload still in flight


def prepare(settings: Settings) -> Path:
    """The folder for GRADIO_TEMP_DIR, with copies older than LEFTOVER_AGE_S swept out."""
    root = settings.path(FOLDER).resolve()
    root.mkdir(exist_ok=True)
    cutoff = time.time() - LEFTOVER_AGE_S
    for path in sorted(root.rglob("*"), reverse=True):  # files before their folders
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return root


def use_for_gradio(settings: Settings) -> None:
    """Gradio reads the variable when each component is created (its cache) and when its server
    app is created (its upload folder): call before building the page."""
    os.environ["GRADIO_TEMP_DIR"] = str(prepare(settings))


def discard(files: Iterable[Path], settings: Settings) -> None:
    """Removes the copies among `files` (and the folder Gradio made for each); a path outside
    the folder is never touched."""
    root = settings.path(FOLDER).resolve()
    for file in files:
        path = file.resolve()
        if root not in path.parents:
            continue
        path.unlink(missing_ok=True)
        folder = path.parent
        while folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
