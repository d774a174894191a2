"""A/B experiments: sticky assignment by configured share, outcome counters on both backends,
and significance tests that tell a real difference from noise."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from rag.experiments import ExperimentLog, Outcome, Sample, assign, proportion_p, welch_p
from rag.feedback import Feedback, Rating
from rag.kv import open_kv
from rag.settings import Arm, Experiment, Settings

FLASH_VS_LITE = Experiment(
    name="lite-answers",
    arms=[Arm(name="flash", share=0.7), Arm(name="lite", share=0.3, model="gemini-3.1-flash-lite")],
)


def test_assignment_is_sticky_and_follows_the_shares() -> None:
    sessions = [f"s{i}" for i in range(2000)]
    arms = [assign(FLASH_VS_LITE, s).name for s in sessions]
    assert arms == [assign(FLASH_VS_LITE, s).name for s in sessions], "the same session always gets the same arm"
    share = arms.count("lite") / len(arms)
    assert 0.27 < share < 0.33  # 0.3 ± 3 standard errors at n=2000


def test_a_renamed_experiment_reshuffles_sessions() -> None:
    other = FLASH_VS_LITE.model_copy(update={"name": "another"})
    moved = sum(assign(FLASH_VS_LITE, f"s{i}").name != assign(other, f"s{i}").name for i in range(500))
    assert moved > 50


@pytest.mark.parametrize(
    "arms",
    [
        [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}],
        [{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}],
        [{"name": "a", "share": 1.0}],
    ],
)
def test_bad_experiment_configs_are_refused(arms: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        Experiment.model_validate({"name": "x", "arms": arms})


def test_welch_tells_a_real_difference_from_noise() -> None:
    rng = random.Random(7)

    def sample(mean: float, n: int = 100) -> Sample:
        xs = [rng.gauss(mean, 1.0) for _ in range(n)]
        return Sample.of(n, sum(xs), sum(x * x for x in xs))

    p_same = welch_p(sample(5.0), sample(5.0))
    p_diff = welch_p(sample(5.0), sample(6.0))
    assert p_same is not None and p_same > 0.01
    assert p_diff is not None and p_diff < 0.001
    assert welch_p(Sample(1, 1.0, 0.0), sample(5.0)) is None


def test_proportion_test() -> None:
    assert proportion_p(10, 100, 40, 100) < 0.001  # type: ignore[operator]
    assert proportion_p(20, 100, 22, 100) > 0.5  # type: ignore[operator]
    assert proportion_p(0, 0, 1, 10) is None


def rated(session_id: str, rating: Rating) -> Feedback:
    return Feedback("docs", "q", "q", "a", rating, session_id=session_id)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_outcomes_add_up_per_arm(backend: str, settings: Settings, request: pytest.FixtureRequest) -> None:
    if backend == "redis":
        settings = settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})
    log = ExperimentLog(FLASH_VS_LITE, open_kv(settings, "ledger"))
    flash, lite = FLASH_VS_LITE.arms
    for i in range(10):
        log.record(f"a{i % 4}", flash, Outcome(latency_s=1.0 + i / 10, cost_usd=0.002, cached=i < 2, refused=False))
    for i in range(6):
        log.record(f"b{i}", lite, Outcome(latency_s=0.5, cost_usd=0.0005, cached=False, refused=i == 0))
    flash_session = next(f"r{i}" for i in range(100) if assign(FLASH_VS_LITE, f"r{i}").name == "flash")
    lite_session = next(f"r{i}" for i in range(100) if assign(FLASH_VS_LITE, f"r{i}").name == "lite")
    ratings = [rated(flash_session, "up"), rated(lite_session, "down"), rated("", "up")]

    control, other = log.report(ratings)
    assert (control.name, control.answers, control.sessions) == ("flash", 10, 4)
    assert control.latency_s.mean == pytest.approx(1.45)
    assert control.cost_usd.mean == pytest.approx(0.002)
    assert control.cache_hit_rate == pytest.approx(0.2)
    assert control.approval == 1.0 and control.p_latency is None
    assert (other.name, other.answers, other.sessions, other.model) == ("lite", 6, 6, "gemini-3.1-flash-lite")
    assert other.refusal_rate == pytest.approx(1 / 6)
    assert other.approval == 0.0
    assert other.p_latency is not None and other.p_latency < 0.001
