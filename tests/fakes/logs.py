"""The app's own log setup (rag.logs.configure), with its output kept in memory for a test."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from rag.logs import configure
from rag.settings import Settings


@contextmanager
def captured_logs(settings: Settings) -> Iterator[io.StringIO]:
    """Lines the app logs inside the block; the root logger is reset after it (a level left at
    INFO would slow every later test that logs from many threads)."""
    configure(settings)
    out = io.StringIO()
    root = logging.getLogger()
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    try:
        yield out
    finally:
        root.handlers.clear()
        root.setLevel(logging.WARNING)
