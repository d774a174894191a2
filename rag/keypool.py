"""Several Gemini API keys: spread requests across them, and move off a key whose quota ran out.

Each key of a Google project has its own quota. With more than one configured, every call
takes the key that is not cooling down and has served the fewest requests today; a 429
RESOURCE_EXHAUSTED on a key puts that key to rest for the delay the server asks for (or
`key_cooldown_s`) and the call is tried at once on the next key. Only when every key is
resting does the error reach the retrier, which then waits as it would with one key.

A key Gemini rejects (API_KEY_INVALID, 401) will not work on a retry or later today: one
mistyped key among several must not break every answer, so it leaves the pool for the rest
of the process, with one warning naming it by position, and the call goes on with the next
key. Only when every key is rejected does the call fail, naming the keys and their settings.
With a single key there is nothing to move to: its rejection goes to the retrier as it is.

The keys' state (resting until when, requests today) lives in the ledger's store, so all
replicas see it (Redis) and a restart does not forget it. A key is never stored, logged or
shown: state is keyed by a short hash, and messages name a key by its position ("key 2 of 3").
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from google.genai import errors as genai_errors

from rag.errors import InvalidKey
from rag.kv import KV, Table, bucket
from rag.retry import api_key_invalid, retry_delay

log = logging.getLogger(__name__)

T = TypeVar("T")  # an SDK client
R = TypeVar("R")
Clock = Callable[[], float]

# Keys rejected in this process, by endpoint and fingerprint: every pool of the process (the
# startup check's, the embedder's, the generator's) skips them, and the warning is said once.
_rejected: set[tuple[str, str]] = set()
_rejected_lock = threading.Lock()


@dataclass(frozen=True)
class Key:
    """A key as the pool knows it: its position and a fingerprint, never the secret."""

    position: int  # 1-based, for messages
    fingerprint: str

    def __str__(self) -> str:
        return f"key {self.position}"

    @property
    def setting(self) -> str:
        """Where the user set it: the main key first, then GEMINI_API_KEYS in order."""
        return "GEMINI_API_KEY" if self.position == 1 else f"entry {self.position - 1} of GEMINI_API_KEYS"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _exhausted(exc: BaseException) -> bool:
    return isinstance(exc, genai_errors.ClientError) and exc.code == 429


def _rejected_key(exc: genai_errors.ClientError) -> bool:
    """The API refused the key itself. A 403 is not counted: it may refuse one method or
    resource to a key that serves the rest (a key restricted to some methods cannot list
    models), so taking the key out for it would lose a working key."""
    return exc.code == 401 or api_key_invalid(exc)


class KeyPool(Generic[T]):
    """Chooses a key per call; `clients` are the per-key SDK clients, in configured order."""

    def __init__(
        self,
        clients: Sequence[T],
        secrets: Sequence[str],
        kv: KV | None,
        *,
        cooldown_s: float,
        endpoint: str = "",
        clock: Clock = time.time,
    ) -> None:
        """`kv` holds the keys' shared state; with a single key there is none to keep (None).
        `endpoint`: the API's base URL, since a key rejected by one endpoint (a proxy) may be
        accepted by another."""
        if len(clients) != len(secrets) or not clients:
            raise ValueError("one client per key, at least one key")
        if kv is None and len(clients) > 1:
            raise ValueError("several keys need a store for their state")
        self.clients = list(clients)
        self.keys = [Key(i, fingerprint(s)) for i, s in enumerate(secrets, start=1)]
        self.kv = kv
        self.cooldown_s = cooldown_s
        self.endpoint = endpoint
        self.clock = clock
        self._resting = Table("gemini-key-rest", ttl_s=None, max_entries=1_000)

    def __len__(self) -> int:
        return len(self.keys)

    def order(self) -> list[int]:
        """Indexes of the keys to try, best first: awake keys by fewest requests today, then
        resting keys by who wakes first (used only when every key rests). Rejected keys are
        left out."""
        if self.kv is None:
            return [0]
        now = self.clock()
        used = self.kv.counters(self._today())
        awake, resting = [], []
        for i, key in enumerate(self.keys):
            if self.is_rejected(key):
                continue
            until = self.resting_until(key)
            if until > now:
                resting.append((until, i))
            else:
                awake.append((used.get(key.fingerprint, 0), i))
        return [i for _, i in sorted(awake)] + [i for _, i in sorted(resting)]

    def resting_until(self, key: Key) -> float:
        if self.kv is None:
            return 0.0
        raw = self.kv.get(self._resting, key.fingerprint)
        return struct.unpack("<d", raw)[0] if raw else 0.0

    def rest(self, key: Key, seconds: float | None) -> None:
        if self.kv is None:
            return  # one key: the retrier waits the server's delay
        until = self.clock() + (seconds if seconds is not None else self.cooldown_s)
        self.kv.put(self._resting, key.fingerprint, struct.pack("<d", until))

    def is_rejected(self, key: Key) -> bool:
        return (self.endpoint, key.fingerprint) in _rejected

    def reject(self, key: Key, exc: genai_errors.ClientError) -> None:
        """Out of the pool for the rest of the process, said once per process and key."""
        with _rejected_lock:
            if self.is_rejected(key):
                return
            _rejected.add((self.endpoint, key.fingerprint))
        log.warning(
            "Gemini rejected %s of %d (set as %s): %s %s. This process goes on with the other keys; "
            "set a valid key there (https://aistudio.google.com/apikey).",
            key, len(self.keys), key.setting, exc.code, exc.status or "",
        )

    def requests_today(self) -> dict[str, int]:
        """Requests per key today, by position (for /metrics and `rag costs`)."""
        used = self.kv.counters(self._today()) if self.kv else {}
        return {str(key): used.get(key.fingerprint, 0) for key in self.keys}

    def call(self, send: Callable[[T], R]) -> R:
        """`send(client)` on the best key; on a spent quota or a rejected key, the next key at once."""
        spent: genai_errors.ClientError | None = None
        for i in self.order():
            self._count(self.keys[i])
            try:
                return send(self.clients[i])
            except genai_errors.ClientError as exc:
                if self.kv is not None and _rejected_key(exc):
                    self.reject(self.keys[i], exc)
                    continue
                if not _exhausted(exc):
                    raise
                self.rest(self.keys[i], retry_delay(exc.details))
                spent = exc
        if spent is not None:
            raise spent  # the retrier waits for the first key to wake
        raise self._all_rejected()

    def _all_rejected(self) -> InvalidKey:
        """Every key tried was rejected. Our own error, so the retrier does not retry it."""
        keys = ", ".join(f"{key} ({key.setting})" for key in self.keys)
        return InvalidKey(
            f"Gemini rejected every configured API key: {keys}. Set GEMINI_API_KEY and GEMINI_API_KEYS "
            "to valid keys (https://aistudio.google.com/apikey)."
        )

    def stream(self, open_stream: Callable[[T], Iterator[R]]) -> Iterator[R]:
        """Like `call` for a stream: a 429 arrives with its first piece, so a key is given up
        only before anything was read from it."""
        yield from self.call(lambda client: _started(open_stream(client)))

    def _count(self, key: Key) -> None:
        if self.kv is not None:
            self.kv.add({self._today(): {key.fingerprint: 1}})

    def _today(self) -> str:
        return bucket("gemini-keys", datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d"))


def _started(stream: Iterator[R]) -> Iterator[R]:
    """The stream with its first piece already read (where the API's refusal shows)."""
    for first in stream:
        return itertools.chain([first], stream)
    return iter(())
