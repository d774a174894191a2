"""Prices from usage, checked against arithmetic done by hand, and the ledger's totals."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest

from rag.answer import AnswerRecord, Route
from rag.cache import AnswerCache, cache_key
from rag.costs import Call, Ledger, price_call, price_usd
from rag.settings import Settings
from rag.types import Usage
from tests.fakes.clock import ManualClock

# Catalogue prices (USD per 1M tokens) on DAY: gemini-3.8-flash 0.75 in / 0.075 cached / 3.75 out
# (1.50 / 0.15 / 7.50 from 2027-01-01), cache storage 0.50 per hour (1.00 from 2027-01-01);
# gemini-3.1-pro-preview 2.00 / 0.20 / 12.00 up to 200k prompt tokens, 4.00 / 0.40 / 18.00 above,
# cache storage 4.50 per hour;
# gemini-2.5-pro 2.50 / 0.625 / 15.00 above 200k; gemini-embedding-001 0.15 in.
DAY = date(2026, 12, 1)
FLASH, PRO, EMBED = "gemini-3.8-flash", "gemini-3.1-pro-preview", "gemini-embedding-001"


def test_defaults_are_the_rows_these_figures_come_from(settings: Settings) -> None:
    assert (settings.flash_model, settings.pro_model, settings.embedding_model) == (FLASH, PRO, EMBED)


def test_flash_bills_cached_input_at_the_cached_rate_and_thinking_as_output(settings: Settings) -> None:
    usage = Usage(prompt_tokens=10_000, output_tokens=500, cached_tokens=2_000, thinking_tokens=300)
    # 8,000 fresh × 0.75 + 2,000 cached × 0.075 + (500 + 300) × 3.75 = 6,000 + 150 + 3,000 = 9,150 per 1M
    priced = price_call(settings, FLASH, usage, DAY)
    assert priced.cost_usd == pytest.approx(0.009_15, abs=1e-12)
    # The implicit cache took 2,000 × (0.75 - 0.075) = 1,350 per 1M off the bill.
    assert priced.cache_saved_usd == pytest.approx(0.001_35, abs=1e-12)


def test_a_dated_price_step_applies_from_its_day(settings: Settings) -> None:
    usage = Usage(prompt_tokens=1_000_000, output_tokens=1_000_000)
    assert price_usd(settings, FLASH, usage, date(2026, 12, 31)) == pytest.approx(0.75 + 3.75)
    assert price_usd(settings, FLASH, usage, date(2027, 1, 1)) == pytest.approx(1.50 + 7.50)


def test_pro_lower_tier_up_to_and_including_200k_prompt_tokens(settings: Settings) -> None:
    usage = Usage(prompt_tokens=200_000, output_tokens=1_000, cached_tokens=40_000)
    # 160,000 × 2.00 + 40,000 × 0.20 (cached) + 1,000 × 12.00 = 320,000 + 8,000 + 12,000 = 340,000 per 1M
    priced = price_call(settings, PRO, usage, DAY)
    assert priced.cost_usd == pytest.approx(0.34, abs=1e-12)
    assert priced.cache_saved_usd == pytest.approx(0.072, abs=1e-12)  # 40,000 × (2.00 - 0.20)


def test_pro_higher_tier_above_200k_applies_to_the_whole_call(settings: Settings) -> None:
    usage = Usage(prompt_tokens=250_000, output_tokens=4_000, cached_tokens=50_000, thinking_tokens=1_000)
    # 200,000 × 4.00 + 50,000 × 0.40 (cached) + (4,000 + 1,000) × 18.00 = 800,000 + 20,000 + 90,000 per 1M
    assert price_usd(settings, PRO, usage, DAY) == pytest.approx(0.91, abs=1e-12)
    # gemini-2.5-pro had a cached long rate: 200,000 × 2.50 + 50,000 × 0.625 + 5,000 × 15.00 = 606,250
    assert price_usd(settings, "gemini-2.5-pro", usage, DAY) == pytest.approx(0.606_25, abs=1e-12)


def test_embeddings_bill_input_only(settings: Settings) -> None:
    # 12,345 × 0.15 = 1,851.75 per 1M
    usage = Usage(prompt_tokens=12_345)
    assert price_usd(settings, EMBED, usage) == pytest.approx(0.001_851_75, abs=1e-12)
    assert price_usd(settings, f"models/{EMBED}", usage) == price_usd(settings, EMBED, usage)


def test_local_models_are_free_and_an_unknown_gemini_model_costs_the_dearest_of_its_role(
    settings: Settings,
) -> None:
    usage = Usage(prompt_tokens=5_000, output_tokens=300)
    assert price_usd(settings, "offline-extractive", usage) == 0.0
    assert price_usd(settings, "all-MiniLM-L6-v2-int8", usage) == 0.0
    # The dearest Flash row on DAY is gemini-3.5-flash (1.50 / 9.00): 5,000 × 1.50 + 300 × 9.00 = 10,200
    unknown = price_call(settings, "gemini-9-flash", usage, DAY)
    assert not unknown.listed and unknown.cost_usd == pytest.approx(0.010_2, abs=1e-12)
    # A Pro-looking name is charged as gemini-2.5-pro/3.1-pro, whichever costs more per output token.
    assert price_call(settings, "gemini-9-pro", usage, DAY).cost_usd >= price_usd(settings, PRO, usage, DAY)


def _cache_hit(settings: Settings, first_cost: float) -> AnswerRecord:
    route = Route("flash", FLASH, "small context")
    first = AnswerRecord("q", "q", "a", [], [], route, Usage(prompt_tokens=10_000, output_tokens=500), first_cost)
    cache = AnswerCache(settings)
    key = cache_key("q", 1, FLASH, "p", {})
    cache.put(key, first)
    hit = cache.get(key)
    assert hit is not None
    return hit


def test_a_cached_content_is_charged_its_tokens_and_their_storage(settings: Settings) -> None:
    created = Usage(prompt_tokens=100_000)
    # 100,000 × 2.00 at creation + 100,000 × 4.50 per hour × 0.25 h = 200,000 + 112,500 per 1M
    priced = price_call(settings, PRO, created, DAY, storage_hours=0.25)
    assert priced.cost_usd == pytest.approx(0.3125, abs=1e-12)
    assert priced.storage_usd == pytest.approx(0.1125, abs=1e-12)
    # Storage follows the dated step: Flash's 0.50 per hour becomes 1.00 on 2027-01-01.
    assert price_call(settings, FLASH, created, date(2026, 12, 31), storage_hours=1).storage_usd == pytest.approx(0.05)
    assert price_call(settings, FLASH, created, date(2027, 1, 1), storage_hours=1).storage_usd == pytest.approx(0.10)


def test_the_ledger_totals_storage_apart(store_settings: Settings, clock: ManualClock) -> None:
    ledger = Ledger(store_settings, clock=clock)
    hold = ledger.reserve("alice", 1.0)
    ledger.settle(hold, [Call(PRO, Usage(prompt_tokens=100_000), "cache", storage_hours=0.25),
                         Call(PRO, Usage(prompt_tokens=100_100, output_tokens=100, cached_tokens=100_000), "answer")])
    alice = ledger.session("alice")
    assert alice.storage_usd == pytest.approx(0.1125)
    assert alice.usage.cached_tokens == 100_000
    # creation 0.2 + storage 0.1125 + answer (100 × 2.00 + 100,000 × 0.20 + 100 × 12.00) / 1M
    assert alice.cost_usd == pytest.approx(0.2 + 0.1125 + 0.0214)
    assert alice.cache_saved_usd == pytest.approx(100_000 * 1.80 / 1e6)
    assert (alice.calls, alice.answers, alice.held_usd) == (2, 1, 0.0)


def test_ledger_aggregates_per_session_model_and_day(store_settings: Settings, clock: ManualClock) -> None:
    ledger = Ledger(store_settings, clock=clock)
    flash = Usage(prompt_tokens=10_000, output_tokens=500)
    cost = ledger.charge("alice", FLASH, flash, "answer").cost_usd
    # 10,000 × 0.75 + 500 × 3.75 = 7,500 + 1,875 = 9,375 per 1M
    assert cost == pytest.approx(0.009_375)
    ledger.charge("alice", EMBED, Usage(prompt_tokens=20), "embed")
    ledger.record_hit("alice", _cache_hit(store_settings, cost))
    ledger.charge("bob", FLASH, flash, "rewrite")

    alice = ledger.session("alice")
    assert (alice.calls, alice.answers, alice.cache_hits) == (2, 2, 1)
    assert alice.hit_rate == 0.5
    assert alice.usage == Usage(prompt_tokens=10_020, output_tokens=500)
    assert alice.cost_usd == pytest.approx(0.009_375 + 20 * 0.15 / 1e6)
    assert alice.saved_usd == pytest.approx(0.009_375)

    assert set(ledger.sessions()) == {"alice", "bob"}
    assert ledger.models()[FLASH].cost_usd == pytest.approx(2 * 0.009_375)
    assert set(ledger.models("bob")) == {FLASH}
    assert ledger.total().cost_usd == pytest.approx(2 * 0.009_375 + 20 * 0.15 / 1e6)
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
            ledger.record(session_id, FLASH, Usage(prompt_tokens=tokens), "answer", cost)

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
    ledger.record(sys.argv[2], "gemini-3.8-flash", Usage(prompt_tokens=3), "answer", 0.000_001)
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


def test_batch_requests_cost_the_rows_batch_share(settings: Settings) -> None:
    usage = Usage(prompt_tokens=1_000_000)
    # gemini-embedding-001: 0.15 per 1M, batch_discount 0.5; gemini-embedding-2 has no batch price.
    assert price_usd(settings, EMBED, usage, DAY, batch=True) == pytest.approx(0.075)
    assert price_usd(settings, "gemini-embedding-2", usage, DAY, batch=True) == pytest.approx(0.20)
    ledger = Ledger(settings)
    ledger.charge("ingest:docs", EMBED, usage, "ingest", batch=True)
    assert ledger.session("ingest:docs").cost_usd == pytest.approx(0.075)
