"""The collection an evaluation asks: its corpus ingested into a collection of its own.

An evaluation must never write into the user's own collection, so the sample corpus goes to
`eval-<dir>` and a BEIR corpus to `beir-<name>`. Ingest is incremental (an unchanged file
costs one hash), so "ingest if missing or stale" is simply running it every time.
"""

from __future__ import annotations

from pathlib import Path

from ingest.pipeline import ingest_paths
from ingest.report import IngestReport, ProgressCallback, Status
from rag.errors import GemragError
from rag.providers.base import Embedder
from rag.settings import Settings
from rag.store import Store
from rag.stores import Stores


def ensure_ingested(
    settings: Settings,
    embedder: Embedder,
    root: Path,
    collection: str,
    on_progress: ProgressCallback | None = None,
) -> tuple[Store, list[str]]:
    """The collection in step with `root` (pruned of files gone from it), and one line per
    file that could not be ingested."""
    if not root.exists():
        raise GemragError(f"Corpus {root} does not exist: pass --corpus DIR, the folder the test set is about.")
    report = ingest_paths([root], settings, embedder, collection=collection, prune=True, on_progress=on_progress)
    if report.stopped:
        raise GemragError(f"Ingesting {root} into {collection!r} stopped: {report.stopped}")
    return open_collection(settings, collection), failures(report)


def open_collection(settings: Settings, collection: str) -> Store:
    """The collection as it was built, whichever embedder built it."""
    return Stores(settings).get(collection)


def failures(report: IngestReport) -> list[str]:
    return [f"corpus file {f.source}: not ingested: {f.reason}" for f in report.of(Status.FAILED)]
