"""A `sleep` for code that waits (rate limiter, retry backoff): it records each wait and
moves a ManualClock forward by it, so tests check exact waits without spending them."""

from __future__ import annotations

from tests.fakes.clock import ManualClock


class RecordingSleep:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(max(0.0, seconds))
