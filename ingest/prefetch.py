"""Reading and chunking the next files while the current batch is embedded and stored.

Embedding is the slow step: on the Gemini path it waits on the network, offline it runs in
onnxruntime, which releases the GIL. Either way the Python work of parsing PDFs and
chunking can run beside it in one background thread, a bounded number of items ahead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextvars import copy_context
from typing import TypeVar

T = TypeVar("T")
_POLL_S = 0.1


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yields what `items` yields, in order, produced by a background thread at most `depth`
    items ahead. An exception in the producer is raised here; when the consumer stops early
    (an error while embedding, a closed generator), the producer stops at its next item."""
    slots: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(kind: str, value: object) -> bool:
        while not stop.is_set():
            try:
                slots.put((kind, value), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer("item", item):
                    return
            offer("done", None)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer("error", exc)

    worker = threading.Thread(target=copy_context().run, args=(produce,), name="ingest-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value  # type: ignore[misc]  # a queue of items or errors
            elif kind == "done":
                return
            else:
                raise value  # type: ignore[misc]  # a queue of items or errors
    finally:
        stop.set()
        worker.join()
