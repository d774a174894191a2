"""The retrieval bench's order of searches (`turns`): what makes one variant's latency
comparable with another's on a shared machine."""

from __future__ import annotations

from collections import Counter

from bench.retrieval_bench import turns

VARIANTS = ["vector", "bm25", "hybrid", "hybrid+local", "no lines"]


def test_every_variant_times_every_query_once_after_its_warm_up():
    order = turns(VARIANTS, 20, warmup=5)
    timed = [(name, i) for is_timed, name, i in order if is_timed]
    assert sorted(timed) == sorted((name, i) for name in VARIANTS for i in range(20))
    assert Counter(name for is_timed, name, _ in order if not is_timed) == dict.fromkeys(VARIANTS, 5)
    assert all(not is_timed for is_timed, _, _ in order[: 5 * len(VARIANTS)])  # warm-up first


def test_variants_take_turns_each_on_another_query_and_none_always_first():
    order = turns(VARIANTS, 20, warmup=5)
    rounds = [order[n : n + len(VARIANTS)] for n in range(0, len(order), len(VARIANTS))]
    for one in rounds:
        assert sorted(name for _, name, _ in one) == sorted(VARIANTS)  # one search each per turn
        assert len({i for _, _, i in one}) == len(VARIANTS)  # none on the query another just searched
    assert {one[0][1] for one in rounds} == set(VARIANTS)  # the first place rotates


def test_fewer_queries_than_variants_still_time_each_once():
    timed = [(name, i) for is_timed, name, i in turns(VARIANTS, 3, warmup=1) if is_timed]
    assert sorted(timed) == sorted((name, i) for name in VARIANTS for i in range(3))
