"""Several Gemini API keys: spread requests across them, and move off a key whose quota ran out.

Each key of a Google project has its own quota. With more than one configured, every call
takes the key that is not cooling down and has served the fewest requests today; a 429
RESOURCE_EXHAUSTED on a key puts that key to rest for the delay the server asks for (or
`key_cooldown_s`) and the call is tried at once on the next key. Only when every key is
resting does the error reach the retrier, which then waits as it would with one key.

The keys' state (resting until when, requests today) lives in the ledger's store, so all
replicas see it (Redis) and a restart does not forget it. A key is never stored, logged or
shown: state is keyed by a short hash, and messages name a key by its position ("key 2 of 3").
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from google.genai import errors as genai_errors

from rag.kv import KV, Table, bucket
from rag.retry import retry_delay

T = TypeVar("T")  # an SDK client
R = TypeVar("R")
Clock = Callable[[], float]


@dataclass(frozen=True)
class Key:
    """A key as the pool knows it: its position and a fingerprint, never the secret."""

    position: int  # 1-based, for messages
    fingerprint: str

    def __str__(self) -> str:
        return f"key {self.position}"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _exhausted(exc: BaseException) -> bool:
    return isinstance(exc, genai_errors.ClientError) and exc.code == 429


class KeyPool(Generic[T]):
    """Chooses a key per call; `clients` are the per-key SDK clients, in configured order."""

    def __init__(
        self,
        clients: Sequence[T],
        secrets: Sequence[str],
        kv: KV | None,
        *,
        cooldown_s: float,
        clock: Clock = time.time,
    ) -> None:
        """`kv` holds the keys' shared state; with a single key there is none to keep (None)."""
        if len(clients) != len(secrets) or not clients:
            raise ValueError("one client per key, at least one key")
        if kv is None and len(clients) > 1:
            raise ValueError("several keys need a store for their state")
        self.clients = list(clients)
        self.keys = [Key(i, fingerprint(s)) for i, s in enumerate(secrets, start=1)]
        self.kv = kv
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._resting = Table("gemini-key-rest", ttl_s=None, max_entries=1_000)

    def __len__(self) -> int:
        return len(self.keys)

    def order(self) -> list[int]:
        """Indexes of the keys to try, best first: awake keys by fewest requests today, then
        resting keys by who wakes first (used only when every key rests)."""
        if self.kv is None:
            return [0]
        now = self.clock()
        used = self.kv.counters(self._today())
        awake, resting = [], []
        for i, key in enumerate(self.keys):
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

    def requests_today(self) -> dict[str, int]:
        """Requests per key today, by position (for /metrics and `rag costs`)."""
        used = self.kv.counters(self._today()) if self.kv else {}
        return {str(key): used.get(key.fingerprint, 0) for key in self.keys}

    def call(self, send: Callable[[T], R]) -> R:
        """`send(client)` on the best key; on a spent quota, the next key at once."""
        last: BaseException | None = None
        for i in self.order():
            self._count(self.keys[i])
            try:
                return send(self.clients[i])
            except genai_errors.ClientError as exc:
                if not _exhausted(exc):
                    raise
                self.rest(self.keys[i], retry_delay(exc.details))
                last = exc
        assert last is not None
        raise last

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
