"""The regression gate: compare a run's headline metrics with an earlier run's JSON, so CI
fails when a change makes retrieval or answers measurably worse."""

from __future__ import annotations

from dataclasses import dataclass

from rag.eval.results import RunReport


@dataclass(frozen=True)
class Difference:
    metric: str  # "retrieval hybrid k=6 / recall"
    baseline: float
    current: float

    @property
    def delta(self) -> float:
        return self.current - self.baseline


@dataclass(frozen=True)
class GateResult:
    differences: list[Difference]
    regressions: list[Difference]
    only_in_baseline: list[str]  # metrics the current run no longer measures
    max_drop: float

    @property
    def passed(self) -> bool:
        return not self.regressions


def compare(current: RunReport, baseline: RunReport, max_drop: float) -> GateResult:
    """Every headline metric both runs measured; a drop of more than `max_drop` (absolute)
    is a regression. All headline metrics are higher-is-better."""
    now, before = current.headline(), baseline.headline()
    differences = [Difference(m, before[m], now[m]) for m in before if m in now]
    return GateResult(
        differences=differences,
        regressions=[d for d in differences if d.delta < -max_drop - 1e-12],
        only_in_baseline=[m for m in before if m not in now],
        max_drop=max_drop,
    )
