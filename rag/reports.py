"""`python -m rag costs`: what was spent, per session and per model, and what the cache saved.

`cost_report` returns the same numbers as a typed object for the UI and the metrics
endpoint, so the terminal, the browser and monitoring never disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from rag.costs import Ledger, Totals
from rag.errors import GemragError
from rag.settings import PRICES_AS_OF, Settings, get_settings


@dataclass(frozen=True)
class CostReport:
    """`sessions` and `models` cover everything, or only `session_id` when one is given."""

    session_id: str | None
    total: Totals
    today: Totals
    sessions: dict[str, Totals]
    models: dict[str, Totals]
    session_budget_usd: float
    daily_budget_usd: float
    prices_as_of: str = PRICES_AS_OF

    def to_dict(self) -> dict[str, object]:
        def totals(t: Totals) -> dict[str, object]:
            return dataclasses.asdict(t) | {"hit_rate": t.hit_rate}

        return {
            "session_id": self.session_id,
            "total": totals(self.total),
            "today": totals(self.today),
            "sessions": {name: totals(t) for name, t in self.sessions.items()},
            "models": {name: totals(t) for name, t in self.models.items()},
            "session_budget_usd": self.session_budget_usd,
            "daily_budget_usd": self.daily_budget_usd,
            "prices_as_of": self.prices_as_of,
        }


def cost_report(settings: Settings, session_id: str | None = None, ledger: Ledger | None = None) -> CostReport:
    ledger = ledger or Ledger(settings)
    if session_id is None:
        sessions = ledger.sessions()
        total = ledger.total()
    else:
        total = ledger.session(session_id)
        sessions = {session_id: total}
    return CostReport(
        session_id=session_id,
        total=total,
        today=ledger.today(),
        sessions=sessions,
        models=ledger.models(session_id),
        session_budget_usd=settings.session_budget_usd,
        daily_budget_usd=settings.daily_budget_usd,
    )


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag costs",
        description="Spending, tokens, cache hit rate and money saved, per session and per model.",
    )
    parser.add_argument("--session", metavar="ID", help="only this session")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    try:
        report = cost_report(settings or get_settings(), args.session)
    except GemragError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.session is not None and report.total.empty:
        print(f"error: no calls recorded for session {args.session!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        # Piped output keeps whole rows instead of rich's 80-column fallback.
        render(report, Console() if sys.stdout.isatty() else Console(width=200))
    return 0


def render(report: CostReport, console: Console) -> None:
    if report.total.empty:
        console.print("No calls recorded yet.")
        return
    scope = f"session {report.session_id}" if report.session_id else "all sessions"
    console.print(_table(f"Per session ({scope})", "session", report.sessions))
    console.print(_table(f"Per model ({scope})", "model", report.models))
    console.print(_table("Total", "", {"all time" if report.session_id is None else scope: report.total,
                                         "today (UTC)": report.today}))
    console.print(
        f"Budgets: ${report.session_budget_usd:.2f} per session, ${report.daily_budget_usd:.2f} per day "
        f"(GEMRAG_SESSION_BUDGET_USD, GEMRAG_DAILY_BUDGET_USD). Prices as of {report.prices_as_of}."
    )


def _table(title: str, first: str, rows: dict[str, Totals]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first, no_wrap=True)
    for name in ("answers", "cache hits", "hit rate", "calls", "prompt tok", "output tok", "cost $", "saved $"):
        table.add_column(name, justify="right", no_wrap=True)
    for name, t in rows.items():
        table.add_row(
            name,
            f"{t.answers:,}",
            f"{t.cache_hits:,}",
            f"{t.hit_rate:.0%}",
            f"{t.calls:,}",
            f"{t.usage.prompt_tokens:,}",
            f"{t.usage.output_tokens + t.usage.thinking_tokens:,}",
            f"{t.cost_usd:.6f}",
            f"{t.saved_usd:.6f}",
        )
    return table
