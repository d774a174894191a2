"""The chain's answer stream, served as Server-Sent Events without blocking the event loop.

The chain is synchronous, so each step of its generator runs in a worker thread. Whatever
ends the response (the last event, an error, or the client going away) closes the
generator: the chain then charges the text already produced ("stopped") and the provider's
stream, and with it the model call, is closed. A step already waiting for the model finishes
first; no thread is ever abandoned mid-call. A replica shutting down (`Drain`) does not wait
for it to send the client its last event, only to close the generator.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from types import FrameType
from typing import Any, Generic, TypeVar

import anyio
import uvicorn
from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rag.errors import GemragError

T = TypeVar("T")
log = logging.getLogger("rag.server")
_END = object()
DRAIN_MARGIN_S = 5.0  # answers still streaming this long before the shutdown deadline are ended
DRAIN_LOOK_S = 0.25  # how often a step waiting for the model looks whether the answers' deadline passed
DRAINED = ("This server is shutting down and stopped the answer; what it wrote was charged. Ask again: another "
           "replica answers.")


class ServerDraining(GemragError):
    """An answer ended by the replica's shutdown (`Drain`): a last `error` event, or a 503."""


class Drain:
    """A replica's shutdown, as the answers it streams see it. uvicorn cancels the streams
    still open at its deadline (`drain_s`), and a cancelled stream never settled: its hold
    stayed counted against the session, daily and monthly budgets for good, and its client got
    no last event. `DRAIN_MARGIN_S` before that, each open answer ends itself instead, with
    an `error` event and what it produced charged, as a client leaving is."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self._closing: list[threading.Thread] = []  # the answers it ended, still closing (`_drain_ended`)
        self._lock = threading.Lock()

    def closing(self, thread: threading.Thread | None) -> None:
        """An answer this shutdown ended is being closed in `thread`: the replica waits for it
        (`wait_closed`) before it exits, which uvicorn does by raising the signal that stopped
        it again, with the default handler: a close still waiting for the model was killed
        with the process, and the answer's hold never settled."""
        if thread is not None:
            with self._lock:
                self._closing.append(thread)

    def wait_closed(self, timeout_s: float) -> None:
        """Waits, up to `timeout_s` in all, for the answers this shutdown ended to be closed
        (and charged): each waits at most for its model's next piece."""
        until = time.monotonic() + timeout_s
        with self._lock:
            closing = list(self._closing)
        for thread in closing:
            thread.join(max(0.0, until - time.monotonic()))

    def begin(self, drain_s: float) -> None:
        self.deadline = time.monotonic() + max(0.0, drain_s - DRAIN_MARGIN_S)

    @property
    def begun(self) -> bool:
        return self.deadline is not None

    @property
    def due(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class ThreadedIterator(Generic[T]):
    """One synchronous iterator, stepped in worker threads (contextvars go along)."""

    def __init__(self, iterator: Iterator[T]) -> None:
        self._iterator = iterator
        self._stepping = threading.Lock()  # held by a step: `close` waits for one left running
        self._drained = False  # ended by the shutdown, and closing already (`_drain_ended`)

    def _step(self) -> object:
        with self._stepping:
            return next(self._iterator, _END)

    async def next(self, drain: Drain | None = None) -> T | None:
        """The next item, None at the end. With `drain`, raises ServerDraining if the answers'
        deadline has passed, without a step, or once it passes while the step still waits (a
        model that sends nothing for a minute): the answer ended itself only at its next
        delta, and a stalled one was cut by uvicorn with no last event. The step goes on in
        its thread, and the iterator is closed once it ends (`_drain_ended`)."""
        if drain is not None and drain.due:
            raise self._drain_ended(drain)
        if drain is None:
            item = await anyio.to_thread.run_sync(self._step)
        else:
            outcome: list[tuple[object, BaseException | None]] = []
            async with anyio.create_task_group() as group:
                group.start_soon(self._step_into, outcome, group.cancel_scope)
                group.start_soon(_until_due, drain, group.cancel_scope)
            if not outcome:
                raise self._drain_ended(drain)
            item, error = outcome[0]
            if error is not None:
                raise error
        return None if item is _END else item  # type: ignore[return-value]  # the sentinel is not an item

    def _drain_ended(self, drain: Drain) -> ServerDraining:
        """The answer the shutdown ended: its client is told at once, and the iterator closed
        (charged) without waiting, once the step under way ends, with the shutdown waiting for
        that before the process exits (`Drain.closing`); a later `close` does not wait for it."""
        if not self._drained:
            self._drained = True
            drain.closing(self._closing(waited=False))
        return ServerDraining(DRAINED)

    async def _step_into(self, outcome: list[tuple[object, BaseException | None]], scope: anyio.CancelScope) -> None:
        """One step, its item or its error put in `outcome` (a task group would wrap the error
        in an ExceptionGroup); then the watch is over."""
        try:
            outcome.append((await anyio.to_thread.run_sync(self._step, abandon_on_cancel=True), None))
        except Exception as exc:
            outcome.append((None, exc))
        scope.cancel()

    async def close(self) -> None:
        """Closes the iterator once a step still running ends, and raises what closing raised.
        The close runs in a thread of its own (`_Closing`): a shield keeps anyio's
        cancellation out of the wait, but not uvicorn's, which cancels the tasks still open at
        its shutdown deadline; the close then goes on without the wait, and logs its error.
        After the shutdown ended the answer, it is closing already: nothing to wait for."""
        if self._drained:
            return
        closing = self._closing(waited=True)
        if closing is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(closing.join, abandon_on_cancel=True)
        except BaseException:
            closing.unwaited()
            raise
        if closing.error is not None:
            raise closing.error

    def _closing(self, waited: bool) -> _Closing | None:
        close = getattr(self._iterator, "close", None)
        if close is None:
            return None
        closing = _Closing(self._stepping, close, waited)
        closing.start()
        return closing


class _Closing(threading.Thread):
    """Closes an iterator once its step lock is free. It carries the context it was started
    from (the chain's log lines keep their request id, the rate limiter its session) and is
    not a daemon, though a signal uvicorn raises again as it exits still ends the process
    under it (the shutdown waits for those it ended: `Drain.closing`). An error is kept for
    the one waiting (`ThreadedIterator.close`), or logged when no one does."""

    def __init__(self, stepping: threading.Lock, close: Callable[[], object], waited: bool) -> None:
        super().__init__(name="gemrag-close")
        self._stepping, self._close = stepping, close
        self._context = contextvars.copy_context()
        self._state = threading.Lock()
        self._waited, self._done = waited, False
        self.error: BaseException | None = None

    def run(self) -> None:
        self._context.run(self._closing)

    def _closing(self) -> None:
        error: BaseException | None = None
        try:
            with self._stepping:  # a generator cannot be closed while a step runs it
                self._close()
        except BaseException as exc:
            error = exc
        with self._state:
            self.error, self._done, report = error, True, error is not None and not self._waited
        if report:
            log.error("closing an answer's stream failed", exc_info=error)

    def unwaited(self) -> None:
        """The wait was cut (uvicorn cancelled it): an error is logged, now or once it comes."""
        with self._state:
            self._waited = False
            report = self._done and self.error is not None
        if report:
            self._context.run(log.error, "closing an answer's stream failed", exc_info=self.error)


async def _until_due(drain: Drain, scope: anyio.CancelScope) -> None:
    """Returns once the answers' deadline passed (`Drain.due`), cancelling `scope`; looked at
    every `DRAIN_LOOK_S`, since the shutdown may begin in another thread at any time."""
    while not drain.due:
        await anyio.sleep(DRAIN_LOOK_S)
    scope.cancel()


class Draining(uvicorn.Server):
    """uvicorn's server, telling the app's open answers when its shutdown began (`Drain`)."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_s: float) -> None:
        super().__init__(config)
        self.drain, self.drain_s = drain, drain_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.drain.begun:
            self.drain.begin(self.drain_s)
        super().handle_exit(sig, frame)


def sse(event: str, body: BaseModel | dict[str, Any]) -> bytes:
    data = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
    return f"event: {event}\ndata: {data}\n\n".encode()


class EventStream(StreamingResponse):
    """A stream that notices a client leaving while it waits for the next event (it listens
    for `http.disconnect` on every ASGI version) and always closes its body iterator."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[bytes, None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._content = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):  # the client went away mid-write
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._content.aclose()
