"""The storage contract both backends honour: the SQLite default and Redis behave alike."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.kv import KV, Cap, StoreUnavailable, Table, Tolerant, bucket, open_kv
from rag.settings import Settings
from tests.fakes.clock import ManualClock

TABLE = Table("t", ttl_s=100, max_entries=3)


@pytest.fixture
def kv(store_settings: Settings, clock: ManualClock) -> KV:
    return open_kv(store_settings, "test", clock)


def test_a_put_replaces_the_value_and_renews_its_age(kv: KV, clock: ManualClock) -> None:
    for key in ("a", "b", "c"):
        clock.advance(1)
        kv.put(TABLE, key, key.encode())
    clock.advance(1)
    kv.put(TABLE, "a", b"a2")  # "a" is now the newest
    kv.put(TABLE, "d", b"d")
    assert [kv.get(TABLE, k) for k in "abcd"] == [b"a2", None, b"c", b"d"]


def test_scan_returns_live_entries_under_a_prefix(kv: KV, clock: ManualClock) -> None:
    kv.put(TABLE, "x:old", b"1")
    clock.advance(60)
    kv.put(TABLE, "x:new", b"2")
    kv.put(TABLE, "y:other", b"3")
    assert kv.scan(TABLE, "x:") == [("x:new", b"2"), ("x:old", b"1")]
    clock.advance(50)  # x:old is 110 s old now
    assert kv.scan(TABLE, "x:") == [("x:new", b"2")]
    assert kv.scan(TABLE, "x*") == []  # glob characters are literal


def test_tables_are_independent_and_may_live_forever(kv: KV, clock: ManualClock) -> None:
    forever = Table("forever", ttl_s=None, max_entries=10)
    kv.put(forever, "k", b"kept")
    kv.put(TABLE, "k", b"short")
    clock.advance(10**9)
    assert kv.get(forever, "k") == b"kept"
    assert kv.get(TABLE, "k") is None


def test_a_write_clears_expired_entries_of_every_sqlite_table(settings: Settings, clock: ManualClock) -> None:
    """A table nobody writes any more (an account's conversations, a cache table from before
    the split per collection) loses its expired rows when any table is written."""
    kv = open_kv(settings, "test", clock)
    left = Table("conversations/gone", ttl_s=100, max_entries=10)
    kv.put(left, "k", b"old")
    kv.put(Table("forever", ttl_s=None, max_entries=10), "k", b"kept")
    clock.advance(101)
    kv.put(TABLE, "k", b"new")
    with sqlite3.connect(settings.path("test.sqlite3")) as db:
        rows = db.execute("SELECT tbl FROM entries ORDER BY tbl").fetchall()
    assert rows == [("forever",), ("t",)]


def test_counters_add_across_buckets_and_list_by_prefix(kv: KV) -> None:
    kv.add({bucket("session", "s1"): {"calls": 1, "cost": 5}, bucket("total"): {"calls": 1}})
    kv.add({bucket("session", "s1"): {"calls": 2}, bucket("session", "s2"): {"calls": 7}})
    assert kv.counters(bucket("session", "s1")) == {"calls": 3, "cost": 5}
    assert kv.counters(bucket("nothing")) == {}
    assert kv.buckets(bucket("session", "")) == [bucket("session", "s1"), bucket("session", "s2")]


def test_a_damaged_sqlite_file_is_named_in_a_clear_error(settings: Settings) -> None:
    settings.path("test.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match=r"test\.sqlite3.*not damaged"):
        open_kv(settings, "test")


def test_a_data_dir_that_cannot_be_created_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    blocked = settings.model_copy(update={"data_dir": tmp_path / "a-file" / "data"})
    with pytest.raises(ConfigError, match=r"data dir .*a-file/data cannot be created: .*a-file is a file"):
        open_kv(blocked, "ledger")


def test_a_tolerant_store_reads_empty_drops_writes_and_rests_after_a_failure(
    settings: Settings, clock: ManualClock
) -> None:
    """answer_without_stores: one connection attempt per pause, not one per call."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    kv = open_kv(settings.model_copy(update={"redis_url": dead, "answer_without_stores": True}), "test")
    assert isinstance(kv, Tolerant)
    kv.clock = clock
    attempts = []
    inner_get = kv.kv.get
    kv.kv.get = lambda *a: attempts.append(a) or inner_get(*a)  # type: ignore[method-assign]
    kv.put(TABLE, "a", b"a")
    assert kv.get(TABLE, "a") is None and kv.counters("c") == {} and kv.buckets("") == []
    assert attempts == []  # resting after the failed put
    clock.advance(kv.pause_s + 1)
    assert kv.get(TABLE, "a") is None and len(attempts) == 1
    with pytest.raises(StoreUnavailable):
        kv.ping()  # a health check is never tolerated


def test_a_capped_add_adds_only_within_every_cap(kv: KV) -> None:
    caps = [Cap(bucket("s"), "cost", 10), Cap(bucket("d"), "cost", 15)]
    assert kv.add_capped({bucket("s"): {"cost": 6}, bucket("d"): {"cost": 6}}, caps) == (True, [0, 0])
    assert kv.add_capped({bucket("s"): {"cost": 6}, bucket("d"): {"cost": 6}}, caps) == (False, [6, 6])
    assert kv.add_capped({bucket("s"): {"cost": 4}, bucket("d"): {"cost": 4}, bucket("x"): {"n": 1}}, caps)[0]
    assert kv.counters(bucket("s")) == {"cost": 10} and kv.counters(bucket("x")) == {"n": 1}
    assert not kv.add_capped({bucket("d"): {"cost": 6}}, caps)[0]  # the second cap binds alone
    assert kv.add_capped({bucket("s"): {"cost": -3}}, caps)[0]  # a refund always fits
    big = 2**53
    assert kv.add_capped({bucket("b"): {"n": big}}, [Cap(bucket("b"), "n", big)]) == (True, [0])
    assert kv.counters(bucket("b")) == {"n": big}


def test_concurrent_capped_adds_never_pass_the_cap_together(kv: KV) -> None:
    """Eight threads race to take 1 of 5 units: exactly 5 win (the reserve-then-settle rule)."""
    cap = [Cap(bucket("budget"), "used", 5)]
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: kv.add_capped({bucket("budget"): {"used": 1}}, cap)[0], range(8)))
    assert sum(wins) == 5 and kv.counters(bucket("budget")) == {"used": 5}


def _append_line(line: str) -> Callable[[bytes | None], bytes]:
    return lambda raw: (raw or b"") + line.encode() + b"\n"


def test_an_update_changes_the_live_value_and_keeps_the_bounds(kv: KV, clock: ManualClock) -> None:
    kv.update(TABLE, "log", _append_line("one"))
    kv.update(TABLE, "log", _append_line("two"))
    assert kv.get(TABLE, "log") == b"one\ntwo\n"
    clock.advance(101)  # expired: the next update starts from nothing, as a reader would see it
    kv.update(TABLE, "log", _append_line("three"))
    assert kv.get(TABLE, "log") == b"three\n"
    for key in "abc":
        clock.advance(1)
        kv.update(TABLE, key, _append_line(key))
    assert kv.get(TABLE, "log") is None  # the oldest of 4 entries went: max_entries is 3


def test_concurrent_updates_from_threads_lose_nothing(kv: KV) -> None:
    lines = [f"t{n}" for n in range(200)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda line: kv.update(TABLE, "log", _append_line(line)), lines))
    assert sorted((kv.get(TABLE, "log") or b"").decode().split()) == sorted(lines)


UPDATER = """
import sys
from rag.kv import Table, open_kv
from rag.settings import Settings
kv = open_kv(Settings(data_dir=sys.argv[1], redis_url=sys.argv[2] or None), "test")
for n in range(150):
    kv.update(Table("t", ttl_s=100, max_entries=3), "log", lambda raw: (raw or b"") + f"{sys.argv[3]}{n}\\n".encode())
"""


def test_concurrent_updates_from_processes_lose_nothing(store_settings: Settings) -> None:
    """What replicas sharing one Redis, or processes sharing one SQLite file, do."""
    args = [str(store_settings.data_dir), store_settings.redis_url or ""]
    writers = [subprocess.Popen([sys.executable, "-c", UPDATER, *args, name]) for name in ("p", "q")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    kv = open_kv(store_settings, "test")
    assert sorted((kv.get(TABLE, "log") or b"").decode().split()) == sorted(
        f"{name}{n}" for name in ("p", "q") for n in range(150)
    )


OPENER = """
import sys
from pathlib import Path
from rag.kv import SqliteKV
for n in range(200):
    SqliteKV(Path(sys.argv[1]) / f"{n}.sqlite3")
"""


def test_processes_opening_a_new_sqlite_file_at_once_all_get_it(tmp_path: Path) -> None:
    """Two API workers starting on a fresh data dir: switching a new file to WAL is a lock SQLite
    does not wait for, so without a retry one of them failed with "database is locked"."""
    openers = [subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path)]) for _ in range(3)]
    assert [o.wait(timeout=120) for o in openers] == [0, 0, 0]
