"""Limits every request meets before a route runs: body size and per-key request rate.

The body limit is enforced on the bytes actually received, not only the declared
Content-Length, so a chunked upload cannot slip past it. Per-key rates use the `limits`
library (moving window) in Redis when `REDIS_URL` is set, so N replicas enforce one limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection
from contextlib import nullcontext
from typing import ClassVar

import anyio
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import GemragError
from rag.kv import redacted_url, redis_errors
from rag.settings import MB, Settings


class RateLimited(GemragError):
    """Too many requests for this key (429 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KeyRateLimit:
    def __init__(self, settings: Settings) -> None:
        self.rate = parse(settings.key_rate_limit)
        url = settings.redis_url or "memory://"
        self.where = redacted_url(url) if settings.redis_url else ""
        # limits names a Redis socket redis+unix:// where redis-py (and REDIS_URL) say unix://
        storage = "redis+" + url if url.startswith("unix://") else url
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage, key_prefix="gemrag-keys"))

    def hit(self, caller: str) -> None:
        """Counts a request of `caller`'s; RateLimited past the limit. With Redis down, every
        keyed request was a 500 internal_error: now StoreUnavailable (503), as for the ledger."""
        with redis_errors(self.where) if self.where else nullcontext():
            if self.limiter.hit(self.rate, caller):
                return
            reset, _ = self.limiter.get_window_stats(self.rate, caller)
        wait = max(1.0, reset - time.time())
        raise RateLimited(f"Too many requests for key {caller!r}: the limit is {self.rate}.", retry_after_s=wait)


class BodyLimit:
    """ASGI middleware: 413 once a request body passes its limit (uploads get their own), 408
    when its next part keeps the server waiting past `timeout_s`: a client trickling a body
    held its connection for as long as it liked (40 of them, 30 bytes each, were all still
    open after 15 s). Once the body is whole, the app waits on `receive` for a disconnect
    as long as an answer streams, untimed."""

    def __init__(
        self, app: ASGIApp, *, default_bytes: int, upload_bytes: int, timeout_s: float, min_rate: int = 500,
        upload_paths: Collection[str] = (),
        on_refused: Callable[[str, Scope], None] = lambda kind, scope: None,
        refuse_upload: Callable[[Scope], ASGIApp | None] = lambda scope: None,
    ) -> None:
        """`upload_paths`: where else a POST is an upload, besides the API's own
        `.../documents` (a mounted app's upload route, `MountContext.upload_paths`); read at
        each request, so a mount may add to it after the middleware is set up. `on_refused`:
        called once per refusal with its error kind and the request's scope (the error
        metric, by route). `min_rate`: bytes per second a body must keep up on average, past
        its first `timeout_s` (a part a little within each timeout held a connection open).
        `refuse_upload`: the reply to an API upload refused before its body is read (no valid
        key: a 100 MB body was read whole to answer 401), else None."""
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes
        self.upload_paths = upload_paths
        self.timeout_s = timeout_s
        self.min_rate = max(1, min_rate)
        self.on_refused = on_refused
        self.refuse_upload = refuse_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        upload = scope["method"] == "POST" and (path.endswith("/documents") or path in self.upload_paths)
        # In a worker thread: the key's rate is counted in Redis, a blocking call.
        refusal_reply = (await anyio.to_thread.run_sync(self.refuse_upload, scope)
                         if upload and path.endswith("/documents") else None)
        if refusal_reply is not None:
            await refusal_reply(scope, receive, send)
            return
        limit, setting = ((self.upload_bytes, "max_upload_files x max_upload_mb") if upload
                          else (self.default_bytes, "max_request_kb"))
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self.refuse(BodyTooLarge(limit, setting), scope, send)
            return
        received = 0
        whole = False  # the body has all come: `receive` now waits for a disconnect
        refusal: BodyRefused | None = None
        started = False
        begun = time.monotonic()

        async def counted() -> Message:
            nonlocal received, whole, refusal
            # The body's allowance: `timeout_s`, plus the time its bytes so far take at `min_rate`.
            left = begun + self.timeout_s + received / self.min_rate - time.monotonic()
            try:
                if not whole and left <= 0:
                    raise TimeoutError
                message = await (receive() if whole else asyncio.wait_for(receive(), min(self.timeout_s, left)))
            except TimeoutError:
                refusal = BodyTooSlow(self.timeout_s, self.min_rate)
                raise refusal from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if received > limit:
                    refusal = BodyTooLarge(limit, setting)
                    raise refusal
            return message

        async def sending(message: Message) -> None:
            # FastAPI catches the refusal while it parses a body (JSON or a form) and answers
            # 400 "There was an error parsing the body": that reply is replaced by ours.
            nonlocal started
            if refusal is not None and not started:
                await self.refuse(refusal, scope, send)
            if refusal is None:
                await send(message)
            started = True

        try:
            await self.app(scope, counted, sending)
        except BodyRefused as refused:  # a route that reads the stream itself lets the refusal through
            if not started:
                await self.refuse(refused, scope, send)

    async def refuse(self, refusal: BodyRefused, scope: Scope, send: Send) -> None:
        self.on_refused(refusal.kind, scope)
        reply = JSONResponse({"error": refusal.kind, "message": str(refusal)}, status_code=refusal.status)  # as all
        await send({"type": "http.response.start", "status": reply.status_code, "headers": reply.raw_headers})
        await send({"type": "http.response.body", "body": reply.body})


class BodyRefused(Exception):
    """A body refused while the app reads it; FastAPI wraps it in its 400, which BodyLimit
    replaces with this refusal's own status."""

    status: ClassVar[int]  # the reply's status
    kind: ClassVar[str]  # its error kind, in the body and the error metric


class BodyTooLarge(BodyRefused):
    status = 413
    kind = "body_too_large"

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(f"The request body is over the limit of {_size(limit)} ({setting}).")


class BodyTooSlow(BodyRefused):
    status = 408
    kind = "body_timeout"

    def __init__(self, timeout_s: float, min_rate: int) -> None:
        super().__init__(f"The request body stalled: it came slower than {min_rate:,} bytes/s after its first "
                         f"{timeout_s:g} s, or no part of it came for {timeout_s:g} s "
                         "(body_min_rate_bytes_s, body_timeout_s).")


def _size(n: int) -> str:
    """In the MB that `max_upload_mb` counts in (1,048,576 bytes), so an upload's limit reads
    as the UI states it (plus the form's envelope); JSON bodies in kB, as `max_request_kb`."""
    return f"{n / MB:.4g} MB" if n >= MB else f"{math.ceil(n / 1000)} kB"
