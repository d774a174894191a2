"""Ratings readers give answers, kept per collection so the evaluation can learn from them.

A rating is stored the moment the thumb is pressed (a reader may leave right after); a
comment or "the right source" added later updates the same entry. Entries live in the same
key-value store as the cache and the ledger (SQLite under the data dir, or Redis when
REDIS_URL is set, so every replica's ratings end up together), never expire, and are read
back by `python -m rag.eval feedback`, which turns them into test cases.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Literal

from rag.kv import Table, bucket, open_kv
from rag.settings import Settings

Rating = Literal["up", "down"]
TABLE = Table("feedback", ttl_s=None, max_entries=1_000_000)


@dataclass(frozen=True)
class Place:
    """Where an answer is (or should have been) found: a source, its page, the chunk and its text."""

    source: str
    page: int | None = None
    chunk_id: str = ""
    text: str = ""


@dataclass(frozen=True)
class Feedback:
    collection: str
    question: str
    standalone_question: str
    answer: str
    rating: Rating
    cited: tuple[Place, ...] = ()  # the sources the answer cited
    right_source: Place | None = None  # what the reader says the answer should have used
    comment: str = ""
    session_id: str = ""
    corpus_version: int = 0
    id: str = field(default_factory=lambda: f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}")  # sorts by time

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Feedback:
        data = json.loads(raw)
        right = data.pop("right_source")
        return cls(
            **{k: v for k, v in data.items() if k != "cited"},
            cited=tuple(Place(**p) for p in data["cited"]),
            right_source=Place(**right) if right else None,
        )


class FeedbackStore:
    def __init__(self, settings: Settings) -> None:
        self.kv = open_kv(settings, "feedback")

    def save(self, feedback: Feedback) -> None:
        """Adds the entry, or replaces the one with the same id (a later comment or source)."""
        self.kv.put(TABLE, bucket(feedback.collection, feedback.id), feedback.to_json())

    def all(self) -> list[Feedback]:
        """Every collection's ratings (an experiment's arms span collections)."""
        return self._read("")

    def _read(self, prefix: str) -> list[Feedback]:
        return [Feedback.from_json(raw) for _, raw in sorted(self.kv.scan(TABLE, prefix))]

    def list(self, collection: str) -> list[Feedback]:
        """The collection's ratings, oldest first."""
        return self._read(bucket(collection, ""))
