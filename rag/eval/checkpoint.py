"""Resuming an interrupted run: every finished unit of work is appended to a JSONL file in
the output directory as soon as it is scored, and a rerun skips the units already there.

A unit's key hashes everything its scores depend on (the case's content, the configuration,
the provider, models, collection and corpus version), so a rerun after any change to those
scores the affected units again instead of reusing stale ones. Failed units (a quota error,
say) are not written, so a resume retries them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

FILENAME = "checkpoint.jsonl"


def unit_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Checkpoint:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILENAME
        self._lock = threading.Lock()
        self.done: dict[str, Any] = self._read()

    def get(self, key: str) -> Any | None:
        return self.done.get(key)

    def add(self, key: str, payload: Any) -> None:
        line = json.dumps({"key": key, "payload": payload}) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            self.done[key] = payload

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        done: dict[str, Any] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[entry["key"]] = entry["payload"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by the interruption: that unit runs again
        return done
