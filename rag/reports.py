"""`python -m rag costs`: what was spent, per session and per model, and what the cache saved.

`cost_report` returns the same numbers as a typed object for the UI and the metrics
endpoint, so the terminal, the browser and monitoring never disagree.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rag.catalogue import most_expensive, role_of_name
from rag.commands import Exit, Parser, add_debug_flag, folder_path, run_command
from rag.costs import Ledger, Totals
from rag.errors import ConfigError
from rag.server.schemas import totals_out
from rag.settings import Settings, get_settings


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
    prices_as_of: str
    # Models that answered but are not in the catalogue -> the row they were charged as.
    unlisted: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def note(self) -> str | None:
        return no_calls_note(self.session_id, self.total)

    def to_dict(self) -> dict[str, object]:
        """Totals as the API's `GET /v1/sessions/{id}/costs` gives them (one model, so a script
        reads the same fields from either); `note` says why a session's report is all zeros."""

        def totals(t: Totals) -> dict[str, object]:
            return totals_out(t).model_dump()

        return {
            "session_id": self.session_id,
            "note": self.note,
            "total": totals(self.total),
            "today": totals(self.today),
            "sessions": {name: totals(t) for name, t in self.sessions.items()},
            "models": {name: totals(t) for name, t in self.models.items()},
            "session_budget_usd": self.session_budget_usd,
            "daily_budget_usd": self.daily_budget_usd,
            "prices_as_of": self.prices_as_of,
            "unlisted": self.unlisted,
        }


def no_calls_note(session_id: str | None, total: Totals) -> str | None:
    """Why a session's report is all zeros, the same words from the CLI and the API: an id
    with nothing recorded is not an error to a script that polls it, but it may be mistyped."""
    if session_id is None or not total.empty:
        return None
    return f"no calls recorded for session {session_id!r}: not used yet, or not this id"


def cost_report(settings: Settings, session_id: str | None = None, ledger: Ledger | None = None) -> CostReport:
    ledger = ledger or Ledger(settings)
    if session_id is None:
        sessions = ledger.sessions()
        total = ledger.total()
    else:
        total = ledger.session(session_id)
        sessions = {session_id: total}
    models = ledger.models(session_id)
    return CostReport(
        session_id=session_id,
        total=total,
        today=ledger.today(),
        sessions=sessions,
        models=models,
        session_budget_usd=settings.session_budget_usd,
        daily_budget_usd=settings.daily_budget_usd,
        prices_as_of=max(str(row.read) for row in settings.models.values() if row.read),
        unlisted={
            name: most_expensive(settings.models, role_of_name(name), ledger.day())[0]
            for name in models
            if name not in settings.models and name.startswith("gemini")
        },
    )


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    return run_command(lambda: _costs(argv, settings), argv)


def _costs(argv: Sequence[str] | None, settings: Settings | None) -> int:
    parser = Parser(
        prog="python -m rag costs",
        description="Spending, tokens, cache hit rate and money saved, per session and per model.",
    )
    parser.add_argument("--session", metavar="ID", help="only this session")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--data-dir", type=folder_path, help="whose ledger (default: GEMRAG_DATA_DIR or ./.gemrag), as "
                                                      "given to `rag ask --data-dir`")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    settings = settings or get_settings()
    if args.data_dir is not None:
        if not args.data_dir.is_dir():  # a typo: made empty, it reported "No calls recorded yet", exit 0
            raise ConfigError(f"no data dir at {args.data_dir}: nothing was ever recorded there. Give the folder "
                              "`rag ask --data-dir` used (default: GEMRAG_DATA_DIR, or ./.gemrag).")
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    report = cost_report(settings, args.session)
    # A session with no calls: its zeros on stdout, as a table or JSON alike (the JSON's `note`
    # is the API's field), and the note said once, on stderr (README).
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        # Piped output keeps whole rows instead of rich's 80-column fallback.
        render(report, Console() if sys.stdout.isatty() else Console(width=200))
    if report.note:
        print(report.note, file=sys.stderr)
        return Exit.SOME_FAILED  # README, Exit codes: "a session with no calls"
    return Exit.OK


def render(report: CostReport, console: Console) -> None:
    """Session ids and model names are escaped wherever they are printed: Rich reads square
    brackets as markup, and "ops[eu]" or `[models."x"]` would otherwise lose their brackets."""
    if report.total.empty and report.session_id is None:
        console.print("No calls recorded yet.")
        return
    scope = f"session {report.session_id}" if report.session_id else "all sessions"
    console.print(_table(f"Per session ({scope})", "session", report.sessions))
    if report.models:
        console.print(_table(f"Per model ({scope})", "model", report.models))
    for name, priced_as in report.unlisted.items():
        row = escape(f'[models."{name}"]')
        console.print(
            f"[bold]{escape(name)}[/] answered but is not in the model catalogue: charged at {escape(priced_as)}'s "
            f"prices, the dearest of its role. Add its row as {row} in gemrag.toml to charge it exactly."
        )
    console.print(_table("Total", "", {"all time" if report.session_id is None else scope: report.total,
                                         "today (UTC)": report.today}))
    console.print(
        f"Budgets: ${report.session_budget_usd:.2f} per session, ${report.daily_budget_usd:.2f} per day "
        f"(GEMRAG_SESSION_BUDGET_USD, GEMRAG_DAILY_BUDGET_USD). Prices from the model catalogue read "
        f"{report.prices_as_of} (python -m rag models)."
    )


def _table(title: str, first: str, rows: dict[str, Totals]) -> Table:
    table = Table(title=escape(title), title_justify="left")
    table.add_column(first, no_wrap=True)
    # Thinking apart from output, as the JSON and the API give them: a folded "output tok"
    # disagreed with the API's output_tokens for the same session.
    columns = ("answers", "cache hits", "hit rate", "calls", "prompt tok", "cached tok", "output tok", "thinking tok",
               "cost $",
               "saved $", "gemini cache -$", "cache storage $")
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    for name, t in rows.items():
        table.add_row(
            escape(name),
            f"{t.answers:,}",
            f"{t.cache_hits:,}",
            f"{t.hit_rate:.0%}",
            f"{t.calls:,}",
            f"{t.usage.prompt_tokens:,}",
            f"{t.usage.cached_tokens:,}",
            f"{t.usage.output_tokens:,}",
            f"{t.usage.thinking_tokens:,}",
            f"{t.cost_usd:.6f}",
            f"{t.saved_usd:.6f}",
            f"{t.cache_saved_usd:.6f}",
            f"{t.storage_usd:.6f}",
        )
    return table
