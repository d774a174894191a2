"""Limits every request meets before a route runs: body size and per-key request rate.

The body limit is enforced on the bytes actually received, not only the declared
Content-Length, so a chunked upload cannot slip past it. Per-key rates use the `limits`
library (moving window) in Redis when `REDIS_URL` is set, so N replicas enforce one limit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import GemragError
from rag.settings import Settings


class RateLimited(GemragError):
    """Too many requests for this key (429 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KeyRateLimit:
    def __init__(self, settings: Settings) -> None:
        self.rate = parse(settings.key_rate_limit)
        url = settings.redis_url or "memory://"
        self.limiter = MovingWindowRateLimiter(storage_from_string(url, key_prefix="gemrag-keys"))

    def hit(self, caller: str) -> None:
        if not self.limiter.hit(self.rate, caller):
            reset, _ = self.limiter.get_window_stats(self.rate, caller)
            wait = max(1.0, reset - time.time())
            raise RateLimited(f"Too many requests for key {caller!r}: the limit is {self.rate}.", retry_after_s=wait)


class BodyLimit:
    """ASGI middleware: 413 once a request body passes its limit (uploads get their own)."""

    def __init__(
        self, app: ASGIApp, *, default_bytes: int, upload_bytes: int, on_refused: Callable[[], None] = lambda: None
    ) -> None:
        """`on_refused`: called once per 413 (the error metric)."""
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"].endswith("/documents") and scope["method"] == "POST"
        limit = self.upload_bytes if upload else self.default_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.on_refused()
            await _too_large(send, limit)
            return
        received = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise BodyTooLarge
            return message

        async def sending(message: Message) -> None:
            # FastAPI catches the refusal while it parses a body (JSON or a form) and answers
            # 400 "There was an error parsing the body": that reply is replaced by the 413.
            nonlocal started
            if refused and not started:
                self.on_refused()
                await _too_large(send, limit)
            if not refused:
                await send(message)
            started = True

        try:
            await self.app(scope, counted, sending)
        except BodyTooLarge:  # a route that reads the stream itself lets the refusal through
            if not started:
                self.on_refused()
                await _too_large(send, limit)


class BodyTooLarge(Exception):
    """A body past its limit, raised while the app reads it; FastAPI wraps it in its 400."""


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({
        "error": "body_too_large",
        "message": f"The request body is over the limit of {_size(limit)} (max_request_kb, max_upload_mb).",
    }).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _size(n: int) -> str:
    return f"{n / 1_000_000:g} MB" if n >= 1_000_000 else f"{math.ceil(n / 1000)} kB"
