"""ThreadedIterator's close: in a thread of its own, in the request's context, its error
raised to the one waiting or logged when no one waits (a review's repros)."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator

import anyio
import pytest

from rag.server.streaming import Drain, ServerDraining, ThreadedIterator

REQUEST = contextvars.ContextVar("request", default="-")


def answer(seen: dict[str, str], fail: bool = False) -> Iterator[str]:
    """A chain's stream as the server steps it: its `finally` settles, and logs, in the
    context the close runs in."""
    try:
        yield "one"
        yield "two"
    finally:
        seen["closed in"] = REQUEST.get()
        if fail:
            raise ConnectionError("the ledger did not take the charge")


def test_the_close_runs_in_the_requests_context():
    """A bare thread gets an empty context: the chain's log lines while it closed carried
    request id "-" (and no session for the rate limiter)."""
    seen: dict[str, str] = {}

    async def main() -> None:
        REQUEST.set("req-123")
        steps = ThreadedIterator(answer(seen))
        assert await steps.next() == "one"
        await steps.close()

    anyio.run(main)
    assert seen == {"closed in": "req-123"}


def test_what_closing_raises_reaches_the_one_waiting():
    """It went to threading.excepthook, a raw traceback on stderr, and close() returned."""
    async def main() -> None:
        steps = ThreadedIterator(answer({}, fail=True))
        await steps.next()
        with pytest.raises(ConnectionError, match="did not take the charge"):
            await steps.close()

    anyio.run(main)


def test_a_close_no_one_waits_for_logs_what_it_raises_with_the_request(caplog):
    seen: dict[str, str] = {}

    async def main() -> None:
        REQUEST.set("req-9")
        steps = ThreadedIterator(answer(seen, fail=True))
        await steps.next()
        drain = Drain()
        drain.deadline = time.monotonic() - 1  # the shutdown ended it: closed without anyone waiting
        with pytest.raises(ServerDraining):
            await steps.next(drain)
        await steps.close()  # returns at once: it is closing already

    with caplog.at_level(logging.ERROR, logger="rag.server"):
        anyio.run(main)
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.02)
    assert seen == {"closed in": "req-9"}
    [record] = caplog.records
    assert record.getMessage() == "closing an answer's stream failed" and record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)
