"""Retries for model calls, and the translation of their final failure into a typed error.

We retry ourselves instead of using the SDK's HttpRetryOptions because the SDK ignores the
server's RetryInfo delay (it would hammer a 429 on its own schedule) and knows no total
deadline. Policy: exponential backoff with jitter on 408/429/500/502/503/504, network
errors and malformed JSON replies; when the server names a delay, wait that long; never
past `settings.deadline_s`.
A stream is retried only while it has yielded no text: once words are on the user's
screen a fresh attempt would repeat them, so a break then is a StreamInterrupted.

Every message a user or a log can see is built here from the status and the server's own
message, with the API key scrubbed from it.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import httpx2
from google.genai import errors as genai_errors

from rag.errors import GemragError, InvalidKey, ProviderError, StreamInterrupted, redact
from rag.ratelimit import quota_exhausted
from rag.settings import Settings
from rag.text import counted
from rag.types import Usage

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
KEY_STATUS = frozenset({401, 403})
_DURATION = re.compile(r"^\s*([0-9.]+)s\s*$")


@dataclass(frozen=True)
class Failure:
    """One failed attempt, classified: may it be retried, after how long, and why (key-free)."""

    reason: str
    retryable: bool
    status: int | None = None
    retry_after_s: float | None = None
    invalid_key: bool = False
    sent: bool = True  # False: the request never reached the API (no connection), so nothing was billed


@dataclass
class Unanswered:
    """The attempts of one call that got no HTTP status back: they timed out, their connection
    dropped, or their reply broke in transit. The API may have served and billed each of
    them, so the caller charges them (`charges`, as "stopped"), where an attempt refused with
    a status (429, 503, a rejected key) did no work and is not billed, nor one that never
    connected (`Failure.sent`): a refused connection sent nothing to bill."""

    attempts: int = 0

    def charges(self, prompt_tokens: int) -> tuple[Usage, ...]:
        """What each of those attempts may have billed: its prompt, counted locally (the output
        is unknown)."""
        return (Usage(prompt_tokens=prompt_tokens),) * self.attempts


def retry_delay(details: Any) -> float | None:
    """The RetryInfo delay ("7s") the API puts in a 429 body, in seconds."""
    try:
        entries = details["error"]["details"]
    except (KeyError, TypeError):
        return None
    for entry in entries if isinstance(entries, list) else []:
        match = _DURATION.match(str(entry.get("retryDelay", ""))) if isinstance(entry, dict) else None
        if match:
            return float(match.group(1))
    return None


def _rejects_key(exc: genai_errors.APIError) -> bool:
    return exc.code in KEY_STATUS or api_key_invalid(exc)


def api_key_invalid(exc: genai_errors.APIError) -> bool:
    """Gemini's 400 for a key it does not know (API_KEY_INVALID in its details)."""
    return exc.code == 400 and "API_KEY_INVALID" in json.dumps(exc.details, default=str)


def classify(exc: Exception) -> Failure | None:
    """None for exceptions that are not a failed API call (ours, or a bug): they pass through."""
    if isinstance(exc, genai_errors.APIError):
        message = str(exc.message or "no message").rstrip(". ")
        reason = f"{exc.code} {exc.status or ''}: {message}".replace(" :", ":")
        if _rejects_key(exc):
            return Failure(reason, retryable=False, status=exc.code, invalid_key=True)
        return Failure(reason, exc.code in RETRYABLE_STATUS, exc.code, retry_delay(exc.details))
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx2.ConnectError | httpx2.ConnectTimeout):
        return Failure(f"could not connect ({type(exc).__name__}: {exc})", retryable=True, sent=False)
    if isinstance(exc, httpx.TimeoutException | httpx2.TimeoutException):
        return Failure("no answer before the request timeout", retryable=True)
    if isinstance(exc, httpx.TransportError | httpx2.TransportError):
        return Failure(f"network error ({type(exc).__name__}: {exc})", retryable=True)
    if isinstance(exc, genai_errors.UnknownApiResponseError | json.JSONDecodeError):
        # A reply broken in transit or by an overloaded front end: as passing as a 5xx.
        return Failure("the API answered with malformed JSON", retryable=True)
    return None


@dataclass(frozen=True)
class Deadline:
    """When a call must be done by, and the allowance that set it, so that a message names the
    deadline that applied: a step with its own (the reranker's 5 s) is not told of the global one."""

    started: float
    seconds: float

    @property
    def at(self) -> float:
        return self.started + self.seconds

    def __str__(self) -> str:
        return f"the {self.seconds:g} s deadline"


class Retrier:
    """Runs attempts until one succeeds, the failure is final, or the deadline comes.

    An attempt is a callable receiving the seconds left before the deadline (to bound its
    own timeout and rate-limit wait). `sleep`, `clock` and `rng` are injectable for tests.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def call(
        self,
        model: str,
        attempt: Callable[[float], T],
        deadline_s: float | None = None,
        unanswered: Unanswered | None = None,
        max_wait_s: float | None = None,
    ) -> T:
        """`deadline_s`: a shorter deadline for this call (a step that has a fallback);
        `unanswered` counts the attempts that may have been billed though they failed;
        `max_wait_s`: the longest wait for a retry, past which the failure is final now."""
        started = self._clock()
        deadline = Deadline(started, self.settings.deadline_s if deadline_s is None else deadline_s)
        n = 0
        while True:
            n += 1
            try:
                result = attempt(self._remaining(model, deadline))
            except Exception as exc:
                self._pause_or_raise(model, n, exc, deadline, unanswered, max_wait_s)
            else:
                self._done(model, n, started)
                return result

    def stream(
        self,
        model: str,
        attempt: Callable[[float], Iterator[T]],
        has_text: Callable[[T], bool],
        unanswered: Unanswered | None = None,
        max_wait_s: float | None = None,
    ) -> Iterator[T]:
        started = self._clock()
        deadline = Deadline(started, self.settings.deadline_s)
        for n in itertools.count(1):
            shown = False
            try:
                for item in attempt(self._remaining(model, deadline)):
                    shown = shown or has_text(item)
                    yield item
                self._done(model, n, started)
                return
            except Exception as exc:
                failure = classify(exc)
                if shown and failure is not None:
                    raise StreamInterrupted(
                        f"The answer from {model} broke off mid-way ({self.scrub(failure.reason)}). "
                        "The text so far is incomplete; ask again to get a full answer.",
                        model=model,
                        status=failure.status,
                    ) from exc
                self._pause_or_raise(model, n, exc, deadline, unanswered, max_wait_s)

    def _done(self, model: str, attempts: int, started: float) -> None:
        """One line per model call (tagged with the request id by rag.logs), for tracing."""
        elapsed_ms = round((self._clock() - started) * 1000, 1)
        log.info("%s call done", model, extra={"model": model, "attempts": attempts, "duration_ms": elapsed_ms})

    def scrub(self, text: str) -> str:
        for key in self.settings.gemini_keys:
            text = redact(text, key)
        return text

    def _remaining(self, model: str, deadline: Deadline) -> float:
        left = deadline.at - self._clock()
        if left <= 0:
            raise ProviderError(f"Gemini call to {model} ran out of {deadline}.", model=model)
        return left

    def _pause_or_raise(
        self, model: str, n: int, exc: Exception, deadline: Deadline, unanswered: Unanswered | None,
        max_wait_s: float | None = None,
    ) -> None:
        failure = classify(exc)
        if failure is None:
            raise exc
        if unanswered is not None and failure.status is None and failure.sent:
            unanswered.attempts += 1
        if not failure.retryable or n >= self.settings.max_attempts:
            raise self._final_error(model, failure, f"after {counted(n, 'attempt')}") from exc
        delay = self._delay(n, failure)
        if max_wait_s is not None and delay > max_wait_s:
            raise self._final_error(model, failure, f"the next retry in {delay:.1f} s is longer than this call "
                                                    f"waits ({max_wait_s:g} s)") from exc
        if self._clock() + delay > deadline.at:
            why = f"the next retry in {delay:.1f} s would pass {deadline}"
            raise self._final_error(model, failure, why) from exc
        log.warning(
            "%s: %s; retry %d/%d in %.2f s", model, self.scrub(failure.reason), n, self.settings.max_attempts - 1, delay
        )
        self._sleep(delay)

    def _delay(self, n: int, failure: Failure) -> float:
        if failure.retry_after_s is not None:
            # The server knows when capacity frees up; a little jitter keeps workers apart.
            return failure.retry_after_s * (1.0 + 0.1 * self._rng.random())
        base = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2.0 ** (n - 1))
        return base / 2 + self._rng.uniform(0, base / 2)

    def _final_error(self, model: str, failure: Failure, when: str) -> GemragError:
        reason = self.scrub(failure.reason)
        error: ProviderError
        if failure.invalid_key:
            error = InvalidKey(
                f"Gemini rejected the API key calling {model} ({reason}). "
                "Set GEMINI_API_KEY to a valid key (https://aistudio.google.com/apikey).",
                model=model,
                status=failure.status,
            )
        elif failure.status == 429:
            # Gemini's retry delay goes on to the caller: the API's Retry-After says when to come back.
            error = quota_exhausted(model, self.settings.tier, f"{reason}; {when}", failure.retry_after_s)
        else:
            error = ProviderError(f"Gemini call to {model} failed: {reason}; {when}.", model=model,
                                  status=failure.status)
        error.reason = reason
        return error
