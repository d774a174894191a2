"""Prices from usage, checked against arithmetic done by hand, and the ledger's totals."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag.answer import AnswerRecord, Route
from rag.cache import AnswerCache, cache_key
from rag.costs import Ledger, price_usd
from rag.errors import ConfigError
from rag.settings import Settings
from rag.types import Usage
from tests.fakes.clock import ManualClock

# Prices as of 2025-09-01 (USD per 1M tokens): Flash 0.30 in / 0.03 cached / 2.50 out;
# Pro 1.25 / 0.31 / 10.00 up to 200k prompt tokens, 2.50 / 0.625 / 15.00 above;
# gemini-embedding-001 0.15 in.


def test_flash_bills_cached_input_at_the_cached_rate_and_thinking_as_output(settings: Settings) -> None:
    usage = Usage(prompt_tokens=10_000, output_tokens=500, cached_tokens=2_000, thinking_tokens=300)
    # 8,000 fresh × 0.30 + 2,000 cached × 0.03 + (500 + 300) × 2.50 = 2,400 + 60 + 2,000 = 4,460 per 1M
    assert price_usd(settings, "gemini-2.5-flash", usage) == pytest.approx(0.004_46, abs=1e-12)


def test_pro_lower_tier_up_to_and_including_200k_prompt_tokens(settings: Settings) -> None:
    usage = Usage(prompt_tokens=200_000, output_tokens=1_000, cached_tokens=40_000)
    # 160,000 × 1.25 + 40,000 × 0.31 + 1,000 × 10.00 = 200,000 + 12,400 + 10,000 = 222,400 per 1M
    assert price_usd(settings, "gemini-2.5-pro", usage) == pytest.approx(0.2224, abs=1e-12)


def test_pro_higher_tier_above_200k_applies_to_the_whole_call(settings: Settings) -> None:
    usage = Usage(prompt_tokens=250_000, output_tokens=4_000, cached_tokens=50_000, thinking_tokens=1_000)
    # 200,000 × 2.50 + 50,000 × 0.625 + (4,000 + 1,000) × 15.00 = 500,000 + 31,250 + 75,000 = 606,250 per 1M
    assert price_usd(settings, "gemini-2.5-pro", usage) == pytest.approx(0.606_25, abs=1e-12)
    one_more = Usage(prompt_tokens=200_001, output_tokens=1_000)
    # 200,001 × 2.50 + 1,000 × 15.00 = 500,002.5 + 15,000 = 515,002.5 per 1M
    assert price_usd(settings, "gemini-2.5-pro", one_more) == pytest.approx(0.515_002_5, abs=1e-12)


def test_embeddings_bill_input_only(settings: Settings) -> None:
    # 12,345 × 0.15 = 1,851.75 per 1M
    usage = Usage(prompt_tokens=12_345)
    assert price_usd(settings, "gemini-embedding-001", usage) == pytest.approx(0.001_851_75, abs=1e-12)
    assert price_usd(settings, "models/gemini-embedding-001", usage) == price_usd(
        settings, "gemini-embedding-001", usage
    )


def test_local_models_are_free_and_an_unpriced_gemini_model_is_an_error(settings: Settings) -> None:
    usage = Usage(prompt_tokens=5_000, output_tokens=300)
    assert price_usd(settings, "offline-extractive", usage) == 0.0
    assert price_usd(settings, "all-MiniLM-L6-v2-int8", usage) == 0.0
    with pytest.raises(ConfigError, match=r"gemini-9-ultra.*gemrag\.toml"):
        price_usd(settings, "gemini-9-ultra", usage)


def _cache_hit(settings: Settings, first_cost: float) -> AnswerRecord:
    route = Route("flash", "gemini-2.5-flash", "small context")
    first = AnswerRecord("q", "q", "a", [], [], route, Usage(prompt_tokens=10_000, output_tokens=500), first_cost)
    cache = AnswerCache(settings)
    key = cache_key("q", 1, "gemini-2.5-flash", "p", {})
    cache.put(key, first)
    hit = cache.get(key)
    assert hit is not None
    return hit


def test_ledger_aggregates_per_session_model_and_day(store_settings: Settings, clock: ManualClock) -> None:
    ledger = Ledger(store_settings, clock=clock)
    flash = Usage(prompt_tokens=10_000, output_tokens=500)
    cost = ledger.charge("alice", "gemini-2.5-flash", flash, "answer")
    # 10,000 × 0.30 + 500 × 2.50 = 3,000 + 1,250 = 4,250 per 1M
    assert cost == pytest.approx(0.004_25)
    ledger.charge("alice", "gemini-embedding-001", Usage(prompt_tokens=20), "embed")
    ledger.record_hit("alice", _cache_hit(store_settings, cost))
    ledger.charge("bob", "gemini-2.5-flash", flash, "rewrite")

    alice = ledger.session("alice")
    assert (alice.calls, alice.answers, alice.cache_hits) == (2, 2, 1)
    assert alice.hit_rate == 0.5
    assert alice.usage == Usage(prompt_tokens=10_020, output_tokens=500)
    assert alice.cost_usd == pytest.approx(0.004_25 + 20 * 0.15 / 1e6)
    assert alice.saved_usd == pytest.approx(0.004_25)

    assert set(ledger.sessions()) == {"alice", "bob"}
    assert ledger.models()["gemini-2.5-flash"].cost_usd == pytest.approx(2 * 0.004_25)
    assert set(ledger.models("bob")) == {"gemini-2.5-flash"}
    assert ledger.total().cost_usd == pytest.approx(2 * 0.004_25 + 20 * 0.15 / 1e6)
    assert ledger.today() == ledger.total()

    clock.advance(24 * 3600)
    assert ledger.today().calls == 0
    assert ledger.total().calls == 3  # a cache hit is not a model call


def test_concurrent_sessions_keep_separate_ledgers_with_exact_totals(store_settings: Settings) -> None:
    ledger = Ledger(store_settings)
    calls = 200
    plans = {"s1": (1_000, 0.000_123_456), "s2": (7, 0.000_000_789)}

    def spend(session_id: str) -> None:
        tokens, cost = plans[session_id]
        for _ in range(calls):
            ledger.record(session_id, "gemini-2.5-flash", Usage(prompt_tokens=tokens), "answer", cost)

    threads = [threading.Thread(target=spend, args=(sid,)) for sid in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for session_id, (tokens, cost) in plans.items():
        totals = ledger.session(session_id)
        assert totals.calls == calls
        assert totals.usage.prompt_tokens == calls * tokens
        assert totals.cost_usd == round(calls * cost * 1e9) / 1e9  # exact: kept in nano-dollars
    assert ledger.total().calls == 2 * calls


WRITER = """
import sys
from rag.costs import Ledger
from rag.settings import Settings
from rag.types import Usage
ledger = Ledger(Settings(data_dir=sys.argv[1]))
for _ in range(100):
    ledger.record(sys.argv[2], "gemini-2.5-flash", Usage(prompt_tokens=3), "answer", 0.000_001)
"""


@pytest.mark.slow
def test_processes_writing_one_sqlite_ledger_lose_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(data_dir), sid]) for sid in ("p1", "p2", "p1")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    ledger = Ledger(Settings(data_dir=data_dir))
    assert ledger.session("p1").calls == 200
    assert ledger.session("p2").usage.prompt_tokens == 300
    assert ledger.total().cost_usd == 0.0003  # 300 calls × $0.000001, exactly
