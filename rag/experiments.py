"""A/B experiments of model tiers: which arm a session is in, what each arm's answers did, and
whether the difference is more than noise.

An experiment sends a share of sessions to another answer model (for example Flash against
Flash-Lite). The assignment is sticky: a hash of the experiment's name and the session id, so
every replica puts the same session in the same arm without sharing any state, and a user
never sees the model change mid-conversation. Outcomes are kept as integer counters (sums and
sums of squares) in the same store as the ledger (SQLite, or Redis shared by all replicas),
which is all a mean, a standard deviation and a two-sample test need.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

from rich.console import Console
from rich.table import Table

from rag.answer import AnswerRecord, AskOptions
from rag.commands import Parser
from rag.eval.metrics import is_refusal
from rag.feedback import Feedback, FeedbackStore
from rag.kv import KV, bucket, bucket_parts, open_kv
from rag.settings import Arm, Experiment, get_settings

_NANO = 1_000_000_000


def assign(experiment: Experiment, session_id: str) -> Arm:
    """The arm of a session: the same on every replica and every call."""
    digest = hashlib.sha256(f"{experiment.name}\x1f{session_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for arm in experiment.arms:
        edge += arm.share
        if point < edge:
            return arm
    return experiment.arms[-1]


@dataclass(frozen=True)
class Outcome:
    """What one answer in an arm did."""

    latency_s: float
    cost_usd: float
    cached: bool
    refused: bool


@dataclass(frozen=True)
class Sample:
    """Mean and spread of one measure in one arm."""

    n: int
    mean: float
    sd: float

    @classmethod
    def of(cls, n: int, total: float, squares: float) -> Sample:
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        variance = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        return cls(n, mean, math.sqrt(variance))


@dataclass(frozen=True)
class ArmReport:
    name: str
    model: str | None
    sessions: int
    answers: int
    latency_s: Sample
    cost_usd: Sample
    cache_hit_rate: float
    refusal_rate: float
    thumbs_up: int
    thumbs_down: int
    # Against the control arm (None for the control itself): two-sided p-values.
    p_latency: float | None = None
    p_cost: float | None = None
    p_refusal: float | None = None

    @property
    def approval(self) -> float | None:
        rated = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / rated if rated else None


def welch_p(a: Sample, b: Sample) -> float | None:
    """Two-sided p-value that two means differ (Welch's t, normal approximation: adequate for
    the tens to hundreds of answers an arm collects; None when either side is too small)."""
    if a.n < 2 or b.n < 2:
        return None
    se = math.sqrt(a.sd**2 / a.n + b.sd**2 / b.n)
    if se == 0:
        return 1.0 if a.mean == b.mean else 0.0
    return 2 * (1 - NormalDist().cdf(abs(a.mean - b.mean) / se))


def proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float | None:
    """Two-sided p-value of a two-proportion z-test (None when either arm has no answers)."""
    if n_a == 0 or n_b == 0:
        return None
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    return 2 * (1 - NormalDist().cdf(abs(hits_a / n_a - hits_b / n_b) / se))


class ExperimentLog:
    """Outcome counters per arm, in the ledger's store (so replicas add into the same totals)."""

    def __init__(self, experiment: Experiment, kv: KV) -> None:
        self.experiment = experiment
        self.kv = kv

    def record(self, session_id: str, arm: Arm, outcome: Outcome) -> None:
        latency_ms = round(outcome.latency_s * 1000)
        cost = round(outcome.cost_usd * _NANO)
        counters = {
            "answers": 1,
            "latency_ms": latency_ms,
            "latency_ms_sq": latency_ms * latency_ms,
            "cost_nano": cost,
            "cost_nano_sq": cost * cost,
            "cached": int(outcome.cached),
            "refused": int(outcome.refused),
        }
        self.kv.add({self._bucket(arm.name): counters, self._bucket(arm.name, "session", session_id): {"answers": 1}})

    def report(self, ratings: Sequence[Feedback] = ()) -> list[ArmReport]:
        """Each arm side by side, the control first; `ratings` (readers' thumbs, from any
        collection) count for the arm their session is in."""
        thumbs = {arm.name: {"up": 0, "down": 0} for arm in self.experiment.arms}
        for rating in ratings:
            if rating.session_id:
                thumbs[assign(self.experiment, rating.session_id).name][rating.rating] += 1
        reports = [self._arm_report(arm, thumbs[arm.name]) for arm in self.experiment.arms]
        control = reports[0]
        return [reports[0]] + [self._compared(control, other) for other in reports[1:]]

    def _arm_report(self, arm: Arm, thumbs: dict[str, int]) -> ArmReport:
        c = self.kv.counters(self._bucket(arm.name))
        n = c.get("answers", 0)
        sessions = {bucket_parts(b)[-1] for b in self.kv.buckets(self._bucket(arm.name, "session", ""))}
        return ArmReport(
            name=arm.name,
            model=arm.model,
            sessions=len(sessions),
            answers=n,
            latency_s=_scaled(Sample.of(n, c.get("latency_ms", 0), c.get("latency_ms_sq", 0)), 1000),
            cost_usd=_scaled(Sample.of(n, c.get("cost_nano", 0), c.get("cost_nano_sq", 0)), _NANO),
            cache_hit_rate=c.get("cached", 0) / n if n else 0.0,
            refusal_rate=c.get("refused", 0) / n if n else 0.0,
            thumbs_up=thumbs["up"],
            thumbs_down=thumbs["down"],
        )

    @staticmethod
    def _compared(control: ArmReport, other: ArmReport) -> ArmReport:
        return ArmReport(
            **{
                **other.__dict__,
                "p_latency": welch_p(control.latency_s, other.latency_s),
                "p_cost": welch_p(control.cost_usd, other.cost_usd),
                "p_refusal": proportion_p(
                    round(control.refusal_rate * control.answers),
                    control.answers,
                    round(other.refusal_rate * other.answers),
                    other.answers,
                ),
            }
        )

    def _bucket(self, *parts: str) -> str:
        return bucket("experiment", self.experiment.name, *parts)


def _scaled(sample: Sample, unit: float) -> Sample:
    return Sample(sample.n, sample.mean / unit, sample.sd / unit)


class Experiments:
    """What the chain asks of an experiment: the options a session's answers take (its arm's
    model, unless the caller forced one), and each answer's outcome, logged for the report."""

    def __init__(self, experiment: Experiment, kv: KV) -> None:
        self.experiment = experiment
        self.log = ExperimentLog(experiment, kv)

    def options(self, session_id: str, options: AskOptions) -> tuple[AskOptions, Arm]:
        arm = assign(self.experiment, session_id)
        if arm.model and options.model is None:
            options = replace(options, model=arm.model)
        return options, arm

    def answered(self, session_id: str, arm: Arm, record: AnswerRecord) -> None:
        """Notes the arm on the record's route and logs its outcome (a cached answer cost nothing)."""
        where = f"experiment {self.experiment.name!r}, arm {arm.name!r}"
        if arm.model and record.route.kind == "chosen":
            reason = f"{where}: answered by {arm.model}"
        else:
            reason = f"{record.route.reason}; {where}"
        record.route = replace(record.route, reason=reason)
        cost = 0.0 if record.cached else record.cost_usd
        outcome = Outcome(record.latency_s, cost, record.cached, is_refusal(record.answer))
        self.log.record(session_id, arm, outcome)


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render(experiment: Experiment, reports: Sequence[ArmReport], console: Console) -> None:
    table = Table(title=f"Experiment {experiment.name!r} (p: two-sided, against {reports[0].name!r})")
    for column in ("arm", "model", "share", "sessions", "answers", "latency s (sd)", "cost $ (sd)", "cache hits",
                   "refused", "thumbs up/down", "p latency", "p cost", "p refused"):
        table.add_column(column, justify="left" if column in ("arm", "model") else "right")
    shares = {arm.name: arm.share for arm in experiment.arms}
    for r in reports:
        table.add_row(
            r.name, r.model or "router", f"{shares[r.name]:.0%}", str(r.sessions), str(r.answers),
            f"{r.latency_s.mean:.2f} ({r.latency_s.sd:.2f})", f"{r.cost_usd.mean:.5f} ({r.cost_usd.sd:.5f})",
            f"{r.cache_hit_rate:.0%}", f"{r.refusal_rate:.0%}", f"{r.thumbs_up}/{r.thumbs_down}",
            _p(r.p_latency), _p(r.p_cost), _p(r.p_refusal),
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rag experiments report [--json]`."""
    parser = Parser(prog="python -m rag experiments", description="A/B experiments of answer models.")
    commands = parser.add_subparsers(dest="command", required=True)
    report_cmd = commands.add_parser("report", help="each arm's latency, cost, cache hits, refusals and ratings")
    report_cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    settings = get_settings()
    if settings.experiment is None:
        print("error: no experiment configured: add [experiment] with its arms to gemrag.toml "
              "(README: A/B experiments)", file=sys.stderr)
        return 2
    reports = ExperimentLog(settings.experiment, open_kv(settings, "ledger")).report(FeedbackStore(settings).all())
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in reports], indent=1))
    else:
        render(settings.experiment, reports, Console(width=200))
    return 0
