"""Logging for the processes that run unattended (the API server, the ingest worker): one
line per event, JSON when `log_format = "json"` so a log pipeline can index it, and every
line tagged with the id of the request (or job) it belongs to, so one question can be
followed from the HTTP request through the model calls it made, and an upload through the
worker's job.

The id lives in a context variable: set once where a request or job starts, it follows the
work into threads that copy the context (Starlette's thread pool does) without being passed
down through every call. No line may carry a Gemini key: every message is redacted.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import ParamSpec, TypeVar

from rag.errors import redact
from rag.settings import Settings

request_id: ContextVar[str] = ContextVar("gemrag_request_id", default="-")

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


@contextmanager
def bound(rid: str) -> Iterator[str]:
    """Tags every line logged inside the block with `rid`."""
    token = request_id.set(rid)
    try:
        yield rid
    finally:
        request_id.reset(token)


P = ParamSpec("P")
T = TypeVar("T")


class TaggedPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context, so their lines carry its
    request or job id: an ingest job's embedding calls and store writes (its own threads)
    were logged under "-" where the README promises job-<id>."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = copy_context()  # the submitter's, taken now: each task runs in its own copy
        return super().submit(lambda: context.run(fn, *args, **kwargs))


class _Tagged(logging.Filter):
    """Adds the current request id to each record and removes the key from its message."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        message = record.getMessage()
        for key in self.settings.gemini_keys:
            message = redact(message, key)
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        line |= {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


CHATTY = ("httpx", "httpx2", "httpcore", "httpcore2", "chromadb", "urllib3")  # libraries that log each request at info


def configure(settings: Settings) -> None:
    """The one logging setup of the server and the worker (level from `log_level`)."""
    handler = logging.StreamHandler()
    handler.addFilter(_Tagged(settings))
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.getLevelName(settings.log_level.upper())
    root.setLevel(level)
    # At info, the HTTP clients' own lines (4 for each /readyz, about 8 for each answer: every
    # Chroma call) buried the server's; they come back at debug.
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
