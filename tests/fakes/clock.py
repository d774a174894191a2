"""A clock tests move by hand, so TTLs and day boundaries are tested without sleeping."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 1_767_268_800.0) -> None:  # 2026-01-01 12:00 UTC
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
