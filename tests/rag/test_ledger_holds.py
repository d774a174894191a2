"""Reserve, then settle (issue #14, items 1 and 7), on the SQLite default and a real Redis:
the check and the reservation are one atomic act, a settlement counts exactly once, and a
settlement the store could not take waits in the journal until the store is back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from rag.budget import Budget
from rag.costs import JOURNAL, Call, Ledger, Limit, LimitReached, price_call
from rag.errors import BudgetExceeded
from rag.kv import KV, Cap, StoreUnavailable, open_kv
from rag.settings import Settings
from rag.types import Usage
from tests.fakes.clock import ManualClock

FLASH = "gemini-3.8-flash"
ANSWER = Call(FLASH, Usage(prompt_tokens=2_000, output_tokens=300), "answer")


@pytest.fixture
def ledger(store_settings: Settings, clock: ManualClock) -> Ledger:
    return Ledger(store_settings, clock=clock)


def test_a_hold_counts_at_once_and_settles_to_the_real_cost(ledger: Ledger) -> None:
    hold = ledger.reserve("s", 0.05)
    held = ledger.session("s")
    assert held.cost_usd == pytest.approx(0.05) and held.held_usd == pytest.approx(0.05) and held.calls == 0
    [priced] = ledger.settle(hold, [ANSWER])
    cost = priced.cost_usd
    assert cost == pytest.approx(price_call(ledger.settings, FLASH, ANSWER.usage, ledger.day()).cost_usd)
    settled = ledger.session("s")
    assert settled.cost_usd == pytest.approx(cost) and settled.held_usd == 0
    assert (settled.calls, settled.answers, settled.usage) == (1, 1, ANSWER.usage)
    assert ledger.models("s")[FLASH].cost_usd == pytest.approx(cost)
    assert ledger.today().cost_usd == ledger.total().cost_usd == pytest.approx(cost)


def test_a_settlement_counts_once_even_if_sent_again(ledger: Ledger) -> None:
    hold = ledger.reserve("s", 0.05)
    ledger.settle(hold, [ANSWER])
    ledger.settle(hold, [ANSWER])
    assert ledger.session("s").calls == 1 and ledger.session("s").held_usd == 0


def test_settled_holds_add_no_bucket_per_answer(ledger: Ledger) -> None:
    """Each settlement left a bucket of its own (one Redis key and index entry per answer, for
    ever), which every listing of sessions then read (operations walkthrough)."""
    ledger.settle(ledger.reserve("s", 0.01), [ANSWER])
    before = len(ledger.kv.buckets(""))
    for _ in range(5):
        ledger.settle(ledger.reserve("s", 0.01), [ANSWER])
    assert len(ledger.kv.buckets("")) == before and ledger.session("s").calls == 6


def test_a_hold_settled_by_the_version_before_is_not_settled_again(ledger: Ledger) -> None:
    """That version marked a settled hold in a bucket of its own: a settlement it applied whose
    reply was lost (so journalled) and replayed after the upgrade was counted twice."""
    from rag.kv import bucket

    hold = ledger.reserve("s", 0.05)
    ledger.kv.add({bucket("hold", hold.id): {"settled": 1}})  # the old marker of a settlement already applied
    ledger.settle(hold, [ANSWER])
    assert ledger.session("s").calls == 0


def test_an_extension_is_checked_and_settled_with_the_hold(ledger: Ledger) -> None:
    limits = [Limit("session", 0.10)]
    hold = ledger.reserve("s", 0.02, limits)
    with pytest.raises(LimitReached) as reached:
        ledger.extend(hold, 0.09, limits)
    assert reached.value.spent_usd == pytest.approx(0.02) and reached.value.limit.scope == "session"
    hold = ledger.extend(hold, 0.07, limits)
    assert ledger.session("s").held_usd == pytest.approx(0.09)
    ledger.settle(hold, [])
    assert ledger.session("s").cost_usd == 0 and ledger.session("s").held_usd == 0


def test_concurrent_answers_of_one_session_cannot_all_pass_the_budget(store_settings: Settings) -> None:
    """Before: each checked the spend so far (nothing) and all went ahead."""
    budget = Budget(store_settings.model_copy(update={"session_budget_usd": 1.0}), Ledger(store_settings))

    def attempt(_: int) -> bool:
        try:
            budget.reserve("s", 0.30)
        except BudgetExceeded:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        passed = list(pool.map(attempt, range(8)))
    assert sum(passed) == 3


class Flaky:
    """A real store that can be switched off: every call then fails as a dead Redis would."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self.down = False

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreUnavailable("the store is down (test)")
        return getattr(self.kv, name)

    def add_capped(self, increments: Mapping[str, Mapping[str, int]], caps: Sequence[Cap]) -> tuple[bool, list[int]]:
        if self.down:
            raise StoreUnavailable("the store is down (test)")
        return self.kv.add_capped(increments, caps)


def test_a_settlement_the_store_cannot_take_waits_in_the_journal(store_settings: Settings) -> None:
    store = Flaky(open_kv(store_settings, "ledger"))
    ledger = Ledger(store_settings, kv=store)  # type: ignore[arg-type]
    hold = ledger.reserve("s", 0.05)
    store.down = True
    [priced] = ledger.settle(hold, [ANSWER])  # the answer is not lost for it
    cost = priced.cost_usd
    assert cost > 0 and (store_settings.data_dir / JOURNAL).read_text().count("\n") == 1
    with pytest.raises(StoreUnavailable):
        ledger.reserve("s", 0.01)  # while it is down, no new answer goes ahead
    store.down = False
    assert ledger.session("s").held_usd == pytest.approx(0.05)  # the upper bound stood meanwhile
    ledger.reserve("other", 0.0)  # the next answer applies what waited
    assert ledger.session("s").cost_usd == pytest.approx(cost) and ledger.session("s").held_usd == 0
    assert (store_settings.data_dir / JOURNAL).read_text() == ""
    ledger.replay_journal()
    assert ledger.session("s").calls == 1


def test_a_cached_contents_storage_survives_the_journal(store_settings: Settings) -> None:
    store = Flaky(open_kv(store_settings, "ledger"))
    ledger = Ledger(store_settings, kv=store)  # type: ignore[arg-type]
    hold = ledger.reserve("s", 0.05)
    store.down = True
    pro = store_settings.pro_model
    [priced] = ledger.settle(hold, [Call(pro, Usage(prompt_tokens=10_000), "cache", storage_hours=0.5)])
    assert priced.storage_usd == pytest.approx(10_000 * 4.50 * 0.5 / 1e6)  # $4.50 per 1M tokens per hour
    store.down = False
    ledger.replay_journal()
    assert ledger.session("s").storage_usd == pytest.approx(priced.storage_usd)
    assert ledger.session("s").cost_usd == pytest.approx(priced.cost_usd)


def test_a_batch_jobs_price_survives_the_journal(store_settings: Settings) -> None:
    """A collected Batch API job settles its hold at the batch price, also after waiting in
    the journal (replayed at the full price, it would be recorded at twice its cost)."""
    store = Flaky(open_kv(store_settings, "ledger"))
    ledger = Ledger(store_settings, kv=store)  # type: ignore[arg-type]
    hold = ledger.reserve("s", 0.05)
    store.down = True
    model = store_settings.embedding_model
    [priced] = ledger.settle(hold, [Call(model, Usage(prompt_tokens=100_000), "ingest", batch=True)])
    full = price_call(store_settings, model, Usage(prompt_tokens=100_000), ledger.day()).cost_usd
    assert 0 < priced.cost_usd < full
    store.down = False
    ledger.replay_journal()
    assert ledger.session("s").cost_usd == pytest.approx(priced.cost_usd) and ledger.session("s").held_usd == 0


def test_a_hold_lands_on_its_day(store_settings: Settings, clock: ManualClock) -> None:
    ledger = Ledger(store_settings, clock=clock)
    hold = ledger.reserve("s", 0.05)
    day = ledger.today_utc()
    clock.advance(86_400)
    ledger.settle(hold, [ANSWER])
    assert hold.day == day != ledger.today_utc() and ledger.today().cost_usd == 0
