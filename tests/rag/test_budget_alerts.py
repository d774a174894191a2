"""Monthly and per-API-key budgets, and the alerts at 50/80/100 % of the daily and monthly
ones: each fires once per budget and period (however many replicas or Budget objects watch
the ledger), reaches the observers and a webhook, and a spent key budget refuses that key only."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.budget import Budget, BudgetAlert
from rag.costs import Call, Ledger
from rag.errors import BudgetExceeded
from rag.settings import Settings
from rag.types import Usage
from tests.fakes.clock import ManualClock

FLASH = "gemini-3.8-flash"


def spend(ledger: Ledger, session: str, usd: float) -> None:
    ledger.record(session, FLASH, Usage(prompt_tokens=1000), "answer", usd)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()


def test_alerts_fire_once_per_threshold_and_reach_observers_and_the_webhook(
    store_settings: Settings, clock: ManualClock, webhook: tuple[str, list[dict[str, object]]]
) -> None:
    url, posted = webhook
    settings = store_settings.model_copy(update={"daily_budget_usd": 1.0, "budget_webhook_url": url})
    ledger = Ledger(settings, clock=clock)
    seen: list[BudgetAlert] = []
    Budget(settings, ledger).ledger.alerts.observers.append(seen.append)  # type: ignore[union-attr]
    Budget(settings, ledger)  # a second watcher of the same ledger adds no second alert

    spend(ledger, "a", 0.55)
    spend(ledger, "b", 0.10)
    assert [(a.scope, a.threshold) for a in seen] == [("daily", 0.5)]
    spend(ledger, "c", 0.20)
    spend(ledger, "c", 0.20)
    assert [a.threshold for a in seen] == [0.5, 0.8, 1.0]
    assert seen[-1].spent_usd == pytest.approx(1.05) and seen[-1].account == "deployment"

    other_replica = Ledger(settings, clock=clock)
    Budget(settings, other_replica)
    spend(other_replica, "d", 0.01)  # same store: the thresholds already fired today
    assert len(seen) == 3
    deadline = time.monotonic() + 5
    while len(posted) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(p["threshold"] for p in posted) == [0.5, 0.8, 1.0]  # type: ignore[type-var]
    assert "80% reached" in str(next(p["text"] for p in posted if p["threshold"] == 0.8))

    clock.advance(24 * 3600)
    spend(ledger, "e", 0.6)
    assert [a.threshold for a in seen[3:]] == [0.5] and seen[3].period != seen[0].period


def test_a_key_budget_refuses_that_key_only(store_settings: Settings, clock: ManualClock) -> None:
    settings = store_settings.model_copy(update={"key_daily_budget_usd": 0.10, "daily_budget_usd": 10.0})
    ledger = Ledger(settings, clock=clock)
    budget = Budget(settings, ledger)
    for session in ("alice/s1", "alice/s2"):
        hold = budget.reserve(session, 0.04)
        ledger.settle(hold, [Call(FLASH, Usage(prompt_tokens=10), "answer")])
    spend(ledger, "alice/s3", 0.09)

    with pytest.raises(BudgetExceeded) as refused:
        budget.reserve("alice/s4", 0.02)
    message = str(refused.value)
    assert "the per-key daily budget" in message and "API key 'alice'" in message
    assert "GEMRAG_KEY_DAILY_BUDGET_USD" in message
    budget.reserve("bob/s1", 0.02)  # another key has its own budget
    assert budget.remaining_usd("alice/s9") == pytest.approx(0.1 - ledger.spent_usd("key_daily", "alice/x"))


def test_an_alert_shows_a_budget_under_a_cent_as_set(store_settings: Settings, clock: ManualClock) -> None:
    """Before: a $0.0145 daily budget read "daily $0.01 budget" in the log and the webhook."""
    settings = store_settings.model_copy(update={"daily_budget_usd": 0.0145})
    ledger = Ledger(settings, clock=clock)
    seen: list[BudgetAlert] = []
    Budget(settings, ledger).ledger.alerts.observers.append(seen.append)  # type: ignore[union-attr]

    spend(ledger, "a", 0.008)

    [alert] = seen
    assert "has spent $0.0080 of its daily $0.0145 budget" in str(alert) and "(50% reached)" in str(alert)


def test_the_monthly_budget_spans_days_and_resets_with_the_month(store_settings: Settings) -> None:
    clock = ManualClock(1_795_003_200.0)  # 2026-11-18 12:00 UTC
    settings = store_settings.model_copy(
        update={"monthly_budget_usd": 1.0, "daily_budget_usd": 0.6, "session_budget_usd": 5.0}
    )
    ledger = Ledger(settings, clock=clock)
    budget = Budget(settings, ledger)
    for _ in range(3):
        spend(ledger, "s", 0.3)
        clock.advance(24 * 3600)
    with pytest.raises(BudgetExceeded, match=r"monthly budget.*This month"):
        budget.check("s", 0.2)
    clock.advance(14 * 24 * 3600)  # December
    budget.check("s", 0.2)
