"""What has been ingested into each collection: file → content hash → chunk ids.

This SQLite file, not the vector store, is the record of truth. A file is committed here
only after all its chunks are in the store, in one transaction, so after a crash anything
in the store that no committed file owns is an orphan to remove, and a committed file whose
chunks are missing is simply ingested again. `dirty` is set before the store is written
and cleared after the corpus version is bumped, so a crash in between still bumps it on the
next run (caches key on that version and must never outlive a change). The highest
version is kept here too, so a dropped and recreated collection counts on from it.

`store_stamp` is the store's write stamp when a run last finished with the store in step
with this record. If the manifest is clean and the stamp still matches, nothing has written
to the collection since, and a run can trust this record without opening the store.

`batch_jobs` holds a `--batch` run's embedding jobs until their vectors are stored. A row is
written before its job is submitted (with the display name the job is sent under, and no
name yet), and gets the job's name once the API answered: a run killed in between finds the
job by its display name instead of submitting it again.

`refusals` holds the files refused for what they hold (more chunks than a file may have:
failed) or that nothing in the run could read (a photo offline: skipped), with the size and
mtime they had and the settings they were refused under (`terms`): read again unchanged,
under the same settings, each is refused again, after up to a minute of parsing and
chunking, or of OCR, on every run. A file that changes, or settings that do, read it again.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ingest.report import Status
from rag.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    collection TEXT NOT NULL,
    source TEXT NOT NULL,
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT -1,
    mtime_ns INTEGER NOT NULL DEFAULT -1,
    PRIMARY KEY (collection, source)
);
CREATE TABLE IF NOT EXISTS collections (
    collection TEXT PRIMARY KEY,
    embedder TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    store_stamp TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS refusals (
    collection TEXT NOT NULL,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    terms TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'failed',
    PRIMARY KEY (collection, source)
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    collection TEXT NOT NULL,
    display_name TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    text_keys TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    origin TEXT NOT NULL,
    charged INTEGER NOT NULL DEFAULT 0,
    hold TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (collection, display_name)
);
"""


@dataclass(frozen=True)
class FileRecord:
    source: str
    root: str  # the resolved PATH argument that found the file: --prune works per root
    path: str  # the resolved file path
    content_hash: str
    chunk_ids: tuple[str, ...]
    tokens: int
    size: int = -1  # the file's size and mtime when it was hashed: if both are unchanged,
    mtime_ns: int = -1  # the next run does not read the file again


@dataclass(frozen=True)
class Refusal:
    """A file refused for what it holds, as it was when read: the same size and mtime under
    the same `terms` (the settings that decided) would be refused again."""

    source: str
    size: int
    mtime_ns: int
    terms: str
    reason: str
    status: Status = Status.FAILED  # or SKIPPED: nothing here could read it


@dataclass(frozen=True)
class JobRecord:
    """A batch embedding job of this collection, from before its submission until its vectors
    are stored."""

    display_name: str  # sent with the job: finds it again when `name` was never recorded
    name: str  # "batches/..." once submitted; "" while only the intent is recorded
    model: str
    text_keys: tuple[str, ...]  # a key of each request's text (ingest.batchjobs.text_key), in request order
    tokens: int  # counted locally at submission: the price shown before the job reports its own
    origin: str  # JSON: the run's paths and options, so `--resume` needs neither
    charged: bool = False  # its cost is in the ledger: collecting it again charges nothing
    hold: str = ""  # JSON: the ledger hold of its estimate until it is charged (ingest.spending); "" for none


class Manifest:
    def __init__(self, path: Path, collection: str) -> None:
        self.collection = collection
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # survives a killed process; WAL keeps it atomic
            self.db.executescript(_SCHEMA)
            self._add_missing_columns()  # manifests written by earlier versions
        except sqlite3.DatabaseError as exc:  # overwritten or truncated by something else: say which file
            self.db.close()
            if "readonly" in str(exc):  # a healthy manifest this user may not write: no --rebuild advice
                raise ConfigError(
                    f"the ingest manifest {path} is not writable ({exc}); run as its owner, or set "
                    "GEMRAG_DATA_DIR (or --data-dir) to a folder you can write to"
                ) from exc
            raise ConfigError(
                f"cannot read the ingest manifest {path} ({exc}): it records what each collection holds. "
                "If it is damaged, move it aside and run `python -m ingest PATH --rebuild` for each collection "
                "to index its files again."
            ) from exc

    def _add_missing_columns(self) -> None:
        for table, column, kind in (
            ("collections", "version", "INTEGER NOT NULL DEFAULT 0"),
            ("collections", "store_stamp", "TEXT NOT NULL DEFAULT ''"),
            ("files", "size", "INTEGER NOT NULL DEFAULT -1"),
            ("files", "mtime_ns", "INTEGER NOT NULL DEFAULT -1"),
            ("batch_jobs", "hold", "TEXT NOT NULL DEFAULT ''"),
            ("refusals", "status", "TEXT NOT NULL DEFAULT 'failed'"),
        ):
            if column not in {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.db.close()

    def records(self) -> dict[str, FileRecord]:
        rows = self.db.execute(
            "SELECT source, root, path, content_hash, chunk_ids, tokens, size, mtime_ns FROM files "
            "WHERE collection = ?",
            (self.collection,),
        )
        return {
            source: FileRecord(source, _from_db(root), _from_db(path), digest, tuple(json.loads(ids)), tokens,
                               size, mtime_ns)
            for source, root, path, digest, ids, tokens, size, mtime_ns in rows
        }

    def holds_content(self, prefix: str) -> bool:
        """Whether the collection holds a file whose content hash starts with `prefix`: one
        indexed lookup, where reading every record decodes each file's chunk ids (about a
        second at 20,000 files, on every image the source viewer asks for)."""
        row = self.db.execute(
            "SELECT 1 FROM files WHERE collection = ? AND substr(content_hash, 1, ?) = ? LIMIT 1",
            (self.collection, len(prefix), prefix),
        ).fetchone()
        return row is not None

    def commit(self, records: Sequence[FileRecord]) -> None:
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO files (collection, source, root, path, content_hash, chunk_ids, tokens, "
                "size, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.collection, r.source, _to_db(r.root), _to_db(r.path), r.content_hash,
                     json.dumps(r.chunk_ids), r.tokens, r.size, r.mtime_ns)
                    for r in records
                ],
            )

    def forget(self, sources: Iterable[str]) -> None:
        with self._transaction():
            self.db.executemany(
                "DELETE FROM files WHERE collection = ? AND source = ?",
                [(self.collection, s) for s in sources],
            )

    # --- files refused for what they hold ---
    def refusals(self, terms: str) -> dict[str, Refusal]:
        """The files refused under `terms`; those refused under other settings may pass now."""
        rows = self.db.execute(
            "SELECT source, size, mtime_ns, reason, status FROM refusals WHERE collection = ? AND terms = ?",
            (self.collection, terms),
        )
        return {source: Refusal(source, size, mtime_ns, terms, reason, Status(status))
                for source, size, mtime_ns, reason, status in rows}

    def refuse(self, refusals: Sequence[Refusal], ingested: Iterable[str]) -> None:
        """Remember `refusals`, and forget those of the files since ingested."""
        with self._transaction():
            self.db.executemany(
                "DELETE FROM refusals WHERE collection = ? AND source = ?",
                [(self.collection, s) for s in ingested],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO refusals (collection, source, size, mtime_ns, terms, reason, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(self.collection, r.source, r.size, r.mtime_ns, r.terms, r.reason, r.status.value)
                 for r in refusals],
            )

    # --- batch embedding jobs (ingest.batchjobs) ---
    def jobs(self) -> list[JobRecord]:
        rows = self.db.execute(
            "SELECT display_name, name, model, text_keys, tokens, origin, charged, hold FROM batch_jobs "
            "WHERE collection = ? ORDER BY rowid",
            (self.collection,),
        )
        return [
            JobRecord(display, name, model, tuple(json.loads(keys)), tokens, origin, bool(charged), hold)
            for display, name, model, keys, tokens, origin, charged, hold in rows
        ]

    def add_jobs(self, jobs: Sequence[JobRecord]) -> None:
        """All of a run's jobs at once, before the first is submitted: a run killed while
        submitting leaves a row (and its hold) for each job it had not sent yet."""
        with self._transaction():
            self.db.executemany(
                "INSERT INTO batch_jobs (collection, display_name, name, model, text_keys, tokens, origin, charged, "
                "hold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(self.collection, job.display_name, job.name, job.model, json.dumps(job.text_keys), job.tokens,
                  job.origin, int(job.charged), job.hold) for job in jobs],
            )

    def update_job(self, job: JobRecord) -> None:
        """Record its name (once submitted) or that it was charged."""
        self.db.execute(
            "UPDATE batch_jobs SET name = ?, charged = ? WHERE collection = ? AND display_name = ?",
            (job.name, int(job.charged), self.collection, job.display_name),
        )

    def forget_jobs(self, jobs: Iterable[JobRecord]) -> None:
        with self._transaction():
            self.db.executemany(
                "DELETE FROM batch_jobs WHERE collection = ? AND display_name = ?",
                [(self.collection, j.display_name) for j in jobs],
            )

    def clear(self) -> None:
        """Forget every file, refusal, pending batch job and the embedder, but not the version: a
        rebuilt collection must count on from it."""
        with self._transaction():
            self.db.execute("DELETE FROM files WHERE collection = ?", (self.collection,))
            self.db.execute("DELETE FROM batch_jobs WHERE collection = ?", (self.collection,))
            self.db.execute("DELETE FROM refusals WHERE collection = ?", (self.collection,))
            self.db.execute(
                "UPDATE collections SET embedder = '', store_stamp = '' WHERE collection = ?", (self.collection,)
            )

    # --- the embedder that built the collection, the corpus version, the pending bump ---
    @property
    def embedder(self) -> str | None:
        return str(self._state("embedder") or "") or None

    def set_embedder(self, embedder: str) -> None:
        self.db.execute(
            "INSERT INTO collections (collection, embedder) VALUES (?, ?) "
            "ON CONFLICT (collection) DO UPDATE SET embedder = excluded.embedder",
            (self.collection, embedder),
        )

    @property
    def dirty(self) -> bool:
        return bool(self._state("dirty"))

    def set_dirty(self, dirty: bool) -> None:
        self.db.execute("UPDATE collections SET dirty = ? WHERE collection = ?", (int(dirty), self.collection))

    @property
    def version(self) -> int:
        """The highest corpus version the collection has had, recorded before it is set in
        the store: never behind it, even after a crash or a dropped collection."""
        return int(self._state("version") or 0)

    def set_version(self, version: int) -> None:
        self.db.execute("UPDATE collections SET version = ? WHERE collection = ?", (version, self.collection))

    @property
    def store_stamp(self) -> str:
        """The store's write stamp (rag.store.write_stamp) as this manifest last left it."""
        return str(self._state("store_stamp") or "")

    def set_store_stamp(self, stamp: str | None) -> None:
        self.db.execute(
            "UPDATE collections SET store_stamp = ? WHERE collection = ?", (stamp or "", self.collection)
        )

    def _state(self, column: str) -> str | int | None:
        row = self.db.execute(
            f"SELECT {column} FROM collections WHERE collection = ?", (self.collection,)
        ).fetchone()
        return row[0] if row else None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


def _to_db(path: str) -> str | bytes:
    """A path as SQLite can hold it: text, or, when its name is not valid UTF-8 (Python
    keeps such bytes as surrogates), the raw bytes, so the path still finds the file."""
    try:
        path.encode()
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value
