"""Where the answer cache, the embedding cache and the cost ledger keep their data.

Two backends with the same behaviour: a local SQLite file under the data dir (the embedded
default) and Redis when `REDIS_URL` is set, so several server replicas share one cache and
one ledger. Both offer the only two shapes those stores need:

- bounded tables of bytes with a time-to-live and a size bound (the oldest entries go first),
  whose entries may also be read, changed and written back as one atomic step (`update`);
- integer counters grouped in buckets, incremented atomically, several buckets at once.

Counters are integers on purpose: the ledger keeps money in nano-dollars, so totals add up
exactly however many threads, processes or replicas write to them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, cast
from urllib.parse import urlparse

from rag.errors import GemragError
from rag.settings import Settings

if TYPE_CHECKING:
    import redis

Clock = Callable[[], float]
_T = TypeVar("_T")
log = logging.getLogger(__name__)
_NEVER = float("inf")
_SEP = "\x1f"  # joins the parts of a bucket name; cannot occur in session ids or model names


class StoreUnavailable(GemragError):
    """The cache or ledger store cannot be read or written (SQLite file, Redis server), or,
    with `documents`, the store of the documents themselves (a Chroma server): no setting
    answers a question without that one."""

    def __init__(self, message: str, *, documents: bool = False) -> None:
        super().__init__(message)
        self.documents = documents


@dataclass(frozen=True)
class Table:
    """A bounded map: entries older than `ttl_s` are never returned, and beyond `max_entries`
    the oldest are evicted."""

    name: str
    ttl_s: float | None
    max_entries: int


def collection_table(kind: str, collection: str, settings: Settings) -> Table:
    """A cache table of one collection ("answers/handbook"), each bounded by
    `cache_max_entries` on its own: in one shared table, a key asking thousands of new
    questions of its own collection evicted the answers every other key's users had paid
    for. Callers of one collection, who may read each other's answers, share its table."""
    return Table(f"{kind}/{collection}" if collection else kind, settings.cache_ttl_s, settings.cache_max_entries)


@dataclass(frozen=True)
class Cap:
    """For `add_capped`: counter `field` of `bucket` may be at most `most` after the add."""

    bucket: str
    field: str
    most: int


def bucket(*parts: str) -> str:
    return _SEP.join(parts)


def bucket_parts(name: str) -> tuple[str, ...]:
    return tuple(name.split(_SEP))


class KV(Protocol):
    def get(self, table: Table, key: str) -> bytes | None: ...

    def put(self, table: Table, key: str, value: bytes) -> None: ...

    def update(self, table: Table, key: str, change: Callable[[bytes | None], bytes]) -> None:
        """Puts `change(the live value or None)` with no other write to `key` in between, so
        concurrent read-modify-writes (two asks appending to one conversation) lose nothing.
        `change` may be called more than once and must not have side effects."""
        ...

    def scan(self, table: Table, prefix: str) -> list[tuple[str, bytes]]: ...

    def add(self, increments: Mapping[str, Mapping[str, int]]) -> None: ...

    def add_capped(
        self, increments: Mapping[str, Mapping[str, int]], caps: Sequence[Cap]
    ) -> tuple[bool, list[int]]:
        """Adds `increments` only if every cap still holds after the add, in one atomic step
        (what makes a budget check and its reservation one act across threads, processes and
        replicas). Returns whether it added, and each capped counter's value before."""
        ...

    def counters(self, name: str) -> dict[str, int]: ...

    def buckets(self, prefix: str) -> list[str]: ...

    def ping(self) -> None:
        """Raises StoreUnavailable unless the store answers now."""
        ...

    def volatility(self) -> str | None:
        """Why data written now could be lost by a restart of the store, or None."""
        ...


def open_kv(settings: Settings, name: str, clock: Clock = time.time) -> KV:
    """`name` separates stores ("cache", "ledger"): one SQLite file each, or one key prefix in
    Redis. With `answer_without_stores` a store that fails is skipped instead (see Tolerant)."""
    kv = _open(settings, name, clock)
    return Tolerant(kv, name) if settings.answer_without_stores else kv


def _open(settings: Settings, name: str, clock: Clock) -> KV:
    if settings.redis_url:
        return RedisKV(settings.redis_url, prefix=f"gemrag:{name}:", clock=clock)
    return SqliteKV(settings.path(f"{name}.sqlite3"), clock=clock)  # a data dir it cannot make: ConfigError


class Tolerant:
    """A store that may fail: a failed read finds nothing and a failed write is dropped, with a
    warning in the log. After a failure the store is left alone for `pause_s`, so an
    unreachable server costs one connection timeout per pause, not one per call."""

    def __init__(self, kv: KV, name: str, pause_s: float = 10.0, clock: Clock = time.monotonic) -> None:
        self.kv = kv
        self.name = name
        self.pause_s = pause_s
        self.clock = clock
        self._down_until = 0.0

    def get(self, table: Table, key: str) -> bytes | None:
        return self._try(lambda: self.kv.get(table, key), None)

    def put(self, table: Table, key: str, value: bytes) -> None:
        self._try(lambda: self.kv.put(table, key, value), None)

    def update(self, table: Table, key: str, change: Callable[[bytes | None], bytes]) -> None:
        self._try(lambda: self.kv.update(table, key, change), None)

    def scan(self, table: Table, prefix: str) -> list[tuple[str, bytes]]:
        return self._try(lambda: self.kv.scan(table, prefix), [])

    def add(self, increments: Mapping[str, Mapping[str, int]]) -> None:
        self._try(lambda: self.kv.add(increments), None)

    def add_capped(
        self, increments: Mapping[str, Mapping[str, int]], caps: Sequence[Cap]
    ) -> tuple[bool, list[int]]:
        return self._try(lambda: self.kv.add_capped(increments, caps), (True, [0] * len(caps)))

    def counters(self, name: str) -> dict[str, int]:
        return self._try(lambda: self.kv.counters(name), {})

    def buckets(self, prefix: str) -> list[str]:
        return self._try(lambda: self.kv.buckets(prefix), [])

    def ping(self) -> None:
        """Not tolerated: whoever asks wants to know (the UI says the costs are unavailable)."""
        self.kv.ping()

    def volatility(self) -> str | None:
        return self.kv.volatility()

    def _try(self, operation: Callable[[], _T], fallback: _T) -> _T:
        if self.clock() < self._down_until:
            return fallback
        try:
            return operation()
        except StoreUnavailable as exc:
            self._down_until = self.clock() + self.pause_s
            log.warning("%s store skipped for %.0f s (answer_without_stores): %s", self.name, self.pause_s, exc)
            return fallback


def _expiry(table: Table, now: float) -> float:
    return now + table.ttl_s if table.ttl_s is not None else _NEVER


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    tbl TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL,
    UNIQUE (tbl, key)
);
CREATE INDEX IF NOT EXISTS entries_age ON entries (tbl, created);
DROP INDEX IF EXISTS entries_expiry;
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
CREATE TABLE IF NOT EXISTS counters (
    bucket TEXT NOT NULL, field TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (bucket, field)
) WITHOUT ROWID;
"""


class SqliteKV:
    """One connection per thread (sqlite3 connections must not be shared), WAL so readers
    never wait for a writer, and `BEGIN IMMEDIATE` so concurrent writers queue instead of
    deadlocking. A connection opened before a fork is never reused in the child."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        self.path = path
        self.clock = clock
        self._local = threading.local()
        with self._errors():
            self._connection().executescript(_SCHEMA)

    def get(self, table: Table, key: str) -> bytes | None:
        with self._errors():
            row = self._connection().execute(
                "SELECT value FROM entries WHERE tbl = ? AND key = ? AND expires > ?",
                (table.name, key, self.clock()),
            ).fetchone()
        return bytes(row[0]) if row else None

    def put(self, table: Table, key: str, value: bytes) -> None:
        now = self.clock()
        with self._transaction() as db:
            _write(db, table, key, value, now)

    def update(self, table: Table, key: str, change: Callable[[bytes | None], bytes]) -> None:
        now = self.clock()
        with self._transaction() as db:  # BEGIN IMMEDIATE: no other writer between read and write
            row = db.execute(
                "SELECT value FROM entries WHERE tbl = ? AND key = ? AND expires > ?", (table.name, key, now)
            ).fetchone()
            _write(db, table, key, change(bytes(row[0]) if row else None), now)

    def scan(self, table: Table, prefix: str) -> list[tuple[str, bytes]]:
        with self._errors():
            rows = self._connection().execute(
                "SELECT key, value FROM entries WHERE tbl = ? AND key >= ? AND key < ? AND expires > ?",
                (table.name, prefix, prefix + "\U0010ffff", self.clock()),
            ).fetchall()
        return [(key, bytes(value)) for key, value in rows]

    def add(self, increments: Mapping[str, Mapping[str, int]]) -> None:
        with self._transaction() as db:
            _increment(db, increments)

    def add_capped(
        self, increments: Mapping[str, Mapping[str, int]], caps: Sequence[Cap]
    ) -> tuple[bool, list[int]]:
        read = "SELECT value FROM counters WHERE bucket = ? AND field = ?"
        with self._transaction() as db:  # BEGIN IMMEDIATE: no other writer between read and add
            now = [(db.execute(read, (c.bucket, c.field)).fetchone() or (0,))[0] for c in caps]
            fits = all(v + _delta(increments, c) <= c.most for v, c in zip(now, caps, strict=True))
            if fits:
                _increment(db, increments)
        return fits, now

    def counters(self, name: str) -> dict[str, int]:
        with self._errors():
            rows = self._connection().execute(
                "SELECT field, value FROM counters WHERE bucket = ?", (name,)
            ).fetchall()
        return dict(rows)

    def buckets(self, prefix: str) -> list[str]:
        with self._errors():
            rows = self._connection().execute(
                "SELECT DISTINCT bucket FROM counters WHERE bucket >= ? AND bucket < ? ORDER BY bucket",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return [name for (name,) in rows]

    def ping(self) -> None:
        with self._errors():
            self._connection().execute("SELECT 1").fetchone()

    def volatility(self) -> str | None:
        return None  # every transaction is in the WAL file before it returns

    def _connection(self) -> sqlite3.Connection:
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "held", None)
        if held is None or held[0] != os.getpid():
            db = sqlite3.connect(self.path, timeout=_BUSY_S, isolation_level=None, check_same_thread=False)
            _enter_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            held = (os.getpid(), db)
            self._local.held = held
        return held[1]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"Cannot use {self.path}: {exc}. Check that the data dir is writable and the file "
                "is not damaged (deleting it clears the cache or ledger it holds)."
            ) from exc


_BUSY_S = 30.0


def _enter_wal(db: sqlite3.Connection) -> None:
    """Switch a connection's file to WAL, waiting out another process doing the same.

    Changing the journal mode takes an exclusive lock for which SQLite does not call the busy
    handler, so two processes opening a new file at once (two API workers starting on a fresh
    data dir) would see "database is locked" at once, not after the connection's timeout."""
    deadline = time.monotonic() + _BUSY_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _write(db: sqlite3.Connection, table: Table, key: str, value: bytes, now: float) -> None:
    """Put, expire and trim, inside the caller's transaction. Expired entries go from every
    table, not only this one: a table nobody writes any more (a conversation's account that
    left, a cache table from before answers were split per collection) would otherwise keep
    its rows in the file for ever, since only a write trims."""
    db.execute(
        "INSERT OR REPLACE INTO entries (tbl, key, value, created, expires) VALUES (?, ?, ?, ?, ?)",
        (table.name, key, value, now, _expiry(table, now)),
    )
    db.execute("DELETE FROM entries WHERE expires <= ?", (now,))
    (count,) = db.execute("SELECT COUNT(*) FROM entries WHERE tbl = ?", (table.name,)).fetchone()
    if count > table.max_entries:
        db.execute(
            "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE tbl = ? ORDER BY created LIMIT ?)",
            (table.name, count - table.max_entries),
        )


# Put, expire and trim in one atomic step: KEYS = values hash, age zset;
# ARGV = key, expires+value, now, ttl (-1: none), max_entries, and for `update` the stored
# expires+value it read ("" for none): if the entry changed since, nothing is written and the
# script returns -1, so the caller reads again (a compare-and-set on this one key only).
# A table with a ttl expires whole a ttl after its last write, when all its entries have:
# one nobody writes any more (a conversation's account that left) would otherwise stay.
_PUT = """
if ARGV[6] and (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[6] then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local gone = {}
if tonumber(ARGV[4]) >= 0 then
  gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
  local ms = math.ceil(tonumber(ARGV[4]) * 1000)
  redis.call('PEXPIRE', KEYS[1], ms)
  redis.call('PEXPIRE', KEYS[2], ms)
end
local excess = redis.call('ZCARD', KEYS[2]) - #gone - tonumber(ARGV[5])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], #gone, #gone + excess - 1)
  for _, k in ipairs(oldest) do table.insert(gone, k) end
end
for _, k in ipairs(gone) do
  redis.call('HDEL', KEYS[1], k)
  redis.call('ZREM', KEYS[2], k)
end
return #gone
"""

# Capped add in one atomic step: ARGV = caps [[key, field, most, delta]], increments
# [[key, field, n]] (numbers as strings: HINCRBY needs integers, Lua would print 1e+15),
# the bucket index key and the bucket names to list in it. Returns {added, value...}.
_ADD_CAPPED = """
local caps = cjson.decode(ARGV[1])
local increments = cjson.decode(ARGV[2])
local result = {1}
for i, cap in ipairs(caps) do
  local value = tonumber(redis.call('HGET', cap[1], cap[2]) or '0')
  result[i + 1] = value
  if value + tonumber(cap[4]) > tonumber(cap[3]) then result[1] = 0 end
end
if result[1] == 1 then
  for _, inc in ipairs(increments) do redis.call('HINCRBY', inc[1], inc[2], inc[3]) end
  redis.call('SADD', ARGV[3], unpack(cjson.decode(ARGV[4])))
end
return result
"""

_EXPIRES = struct.Struct("<d")  # each stored value starts with its expiry time


REDIS_CONNECTIONS = 128  # per client; more threads than this wait their turn for a connection


def redis_client(url: str, **options: float) -> redis.Redis:
    """A Redis client whose callers wait for a free connection when all are busy. redis-py's
    default pool has 100 and fails the 101st caller with "Too many connections", which a
    server holding hundreds of open answer streams (one thread each) reaches at once."""
    import redis

    pool = redis.BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS, timeout=30, **options)
    return redis.Redis(connection_pool=pool)


class RedisKV:
    """A table is a hash of values (each prefixed with its expiry time) plus a sorted set of
    creation times for eviction; a counter bucket is a hash of integers, and a set lists the
    buckets so reports can enumerate sessions and models."""

    def __init__(self, url: str, prefix: str = "gemrag:", clock: Clock = time.time) -> None:

        self.prefix = prefix
        self.clock = clock
        self.where = redacted_url(url)
        with self._errors():
            self.client = redis_client(url, socket_timeout=10.0, socket_connect_timeout=5.0)
            self._put = self.client.register_script(_PUT)
            self._add_capped = self.client.register_script(_ADD_CAPPED)

    def get(self, table: Table, key: str) -> bytes | None:
        with self._errors():
            raw = self.client.hget(self._values(table), key)
        # The client is made without decode_responses: replies are bytes, whatever its stubs say.
        return _unpack_live(cast(bytes, raw), self.clock()) if raw is not None else None

    def put(self, table: Table, key: str, value: bytes) -> None:
        self._write(table, key, value, self.clock())

    def update(self, table: Table, key: str, change: Callable[[bytes | None], bytes]) -> None:
        """Read, change, then write only if the entry is still what was read, else again: a
        retry means another writer's update to this key went through, so all of them finish
        (a Lua script cannot run `change`, and WATCH would retry on any write to the table)."""
        written = False
        while not written:
            now = self.clock()
            with self._errors():
                raw = cast(bytes | None, self.client.hget(self._values(table), key))
            value = change(_unpack_live(raw, now) if raw is not None else None)
            written = self._write(table, key, value, now, expected=raw or b"")

    def _write(self, table: Table, key: str, value: bytes, now: float, expected: bytes | None = None) -> bool:
        """`expected`: write only if the stored entry (expiry and value) is exactly this, b""
        for none; returns whether it wrote."""
        ttl = table.ttl_s if table.ttl_s is not None else -1
        packed = _EXPIRES.pack(_expiry(table, now)) + value
        check = [] if expected is None else [expected]
        with self._errors():
            gone = self._put(
                keys=[self._values(table), self._ages(table)],
                args=[key, packed, repr(now), repr(ttl), table.max_entries, *check],
            )
        return int(gone) >= 0

    def scan(self, table: Table, prefix: str) -> list[tuple[str, bytes]]:
        now = self.clock()
        with self._errors():
            pairs = self.client.hscan_iter(self._values(table), match=_glob_escape(prefix) + "*", count=1000)
            live = [(key.decode(), _unpack_live(raw, now)) for key, raw in pairs]
        return sorted((key, value) for key, value in live if value is not None)

    def add(self, increments: Mapping[str, Mapping[str, int]]) -> None:
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            for name, field, n in _flat(increments):
                pipe.hincrby(self._counter(name), field, n)
            pipe.sadd(self._index(), *increments.keys())
            pipe.execute()

    def add_capped(
        self, increments: Mapping[str, Mapping[str, int]], caps: Sequence[Cap]
    ) -> tuple[bool, list[int]]:
        capped = [[self._counter(c.bucket), c.field, str(c.most), str(_delta(increments, c))] for c in caps]
        adds = [[self._counter(name), field, str(n)] for name, field, n in _flat(increments)]
        with self._errors():
            added, *now = self._add_capped(
                args=[json.dumps(capped), json.dumps(adds), self._index(), json.dumps(list(increments))]
            )
        return bool(added), [int(v) for v in now]

    def counters(self, name: str) -> dict[str, int]:
        with self._errors():
            raw = self.client.hgetall(self._counter(name))
        return {cast(bytes, field).decode(): int(n) for field, n in raw.items()}

    def buckets(self, prefix: str) -> list[str]:
        with self._errors():
            names = (cast(bytes, name).decode() for name in self.client.smembers(self._index()))
            return sorted(name for name in names if name.startswith(prefix))

    def ping(self) -> None:
        with self._errors():
            self.client.ping()

    def volatility(self) -> str | None:
        """From CONFIG GET: no append-only file means a restart loses what came after the
        last snapshot (`save`), or everything when snapshots are off too."""
        import redis

        try:
            config = {**self.client.config_get("appendonly"), **self.client.config_get("save")}
        except redis.ResponseError:
            return f"Redis at {self.where} does not allow CONFIG GET, so whether it persists is unknown"
        except redis.RedisError as exc:
            return f"Redis at {self.where} cannot be reached to check its persistence ({type(exc).__name__})"
        if config.get("appendonly") == "yes":
            return None
        if not config.get("save"):
            return f"Redis at {self.where} keeps nothing on disk (appendonly no, save \"\"): a restart empties it"
        return f"Redis at {self.where} has no append-only file: a restart loses what came after its last snapshot"

    def _values(self, table: Table) -> str:
        return f"{self.prefix}t:{table.name}"

    def _ages(self, table: Table) -> str:
        return f"{self.prefix}t:{table.name}:age"

    def _counter(self, name: str) -> str:
        return f"{self.prefix}c:{name}"

    def _index(self) -> str:
        return f"{self.prefix}buckets"

    def _errors(self) -> AbstractContextManager[None]:
        return redis_errors(self.where)


@contextmanager
def redis_errors(where: str) -> Iterator[None]:
    """A Redis failure as StoreUnavailable (503 `store_unavailable` on the API), naming the
    server (`where`, no password) and REDIS_URL."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(
            f"Cannot use Redis at {where} (REDIS_URL): {type(exc).__name__}: {exc}. "
            "Start the server, fix REDIS_URL, or unset it to use the local SQLite store."
        ) from exc


def redacted_url(url: str) -> str:
    """host:port/db only: a Redis URL may carry a password, which must never reach a message."""
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        return parsed.path  # a socket: its path
    return f"{parsed.hostname or '?'}:{parsed.port or 6379}{parsed.path or ''}"


def _flat(increments: Mapping[str, Mapping[str, int]]) -> list[tuple[str, str, int]]:
    return [(name, field, n) for name, fields in increments.items() for field, n in fields.items()]


def _delta(increments: Mapping[str, Mapping[str, int]], cap: Cap) -> int:
    return increments.get(cap.bucket, {}).get(cap.field, 0)


def _increment(db: sqlite3.Connection, increments: Mapping[str, Mapping[str, int]]) -> None:
    db.executemany(
        "INSERT INTO counters VALUES (?, ?, ?) "
        "ON CONFLICT (bucket, field) DO UPDATE SET value = value + excluded.value",
        _flat(increments),
    )


def _unpack_live(raw: bytes, now: float) -> bytes | None:
    (expires,) = _EXPIRES.unpack_from(raw)
    return raw[_EXPIRES.size :] if expires > now else None


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


