"""What an ingest run spends, recorded in the cost ledger (rag.costs) call by call.

Each embedding request, Batch API job and figure description is charged as soon as it
returns, so a run killed half-way has what it spent on record, and a re-run that embeds
nothing charges nothing (it does not even open the ledger). A call that failed (a 429, a
503 retried) is not billed by the API and is not charged; its successful retry is, once.
Offline calls are recorded at $0, with their tokens, as offline answers are. Before a paid
call is sent, its estimated price is checked against the budgets (`allow`), as an answer's is.
A Batch API job, charged only once collected (hours later, maybe by another run), has its
estimate held in the ledger from its submission (`hold`) until then (`settle`).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from rag.costs import Call, Hold, Ledger, Scope, price_usd
from rag.settings import Settings
from rag.types import Usage

if TYPE_CHECKING:
    from rag.budget import Budget


# The budgets an ingest is held to: the deployment's and its key's, by day and month. Not the
# session budget, a conversation's: an ingest's session is its collection's for ever, so the
# default $1 would have refused every paid ingest into a collection once it had cost that.
INGEST_SCOPES: tuple[Scope, ...] = ("daily", "monthly", "key_daily", "key_monthly")


def ledger_session(collection: str, account: str | None = None) -> str:
    """Ingest's spending shows in `python -m rag costs` under this session: the local
    account's, or for a job the HTTP API queued, its API key's ("<key name>/ingest:<collection>"),
    so `GET /v1/sessions/ingest:<collection>/costs` shows it to that key and its budgets count it."""
    session = f"ingest:{collection}"
    return f"{account}/{session}" if account else session


class Spending:
    """One run's charges, under one ledger session."""

    def __init__(self, settings: Settings, session: str) -> None:
        self.settings = settings
        self.session = session

    @cached_property
    def ledger(self) -> Ledger:
        """Opened at the first charge: a run that calls nothing never touches the store."""
        return Ledger(self.settings)

    @cached_property
    def budget(self) -> Budget:
        """Imported here: rag.budget brings retrieval and numpy, which an unchanged re-run never loads."""
        from rag.budget import Budget

        return Budget(self.settings, self.ledger)

    def allow(self, model: str, usage: Usage) -> None:
        """Refuses (BudgetExceeded, naming the budget) a call whose price, estimated before it
        is sent, would pass a budget: ingest spent with every budget at 0, and an ingest key
        past its own. Checked rather than held: each call is charged as it returns, so at most
        the calls already in flight (a few embedding batches) can pass a limit together. A free
        call (the offline embedder) never opens the ledger for it."""
        usd = price_usd(self.settings, model, usage)
        if usd > 0:
            self.budget.check(self.session, usd, INGEST_SCOPES)

    def hold(self, model: str, usage: Usage) -> Hold | None:
        """Sets a Batch API job's estimated price aside, counted against the budgets until
        the job is collected (BudgetExceeded if one cannot cover it): checked only, jobs
        submitted by runs that did not wait (or into other collections) each passed a budget
        they passed together. None for a free job."""
        usd = price_usd(self.settings, model, usage, batch=True)
        return self.budget.reserve(self.session, usd, INGEST_SCOPES) if usd > 0 else None

    def settle(self, hold: Hold, model: str, usage: Usage | None) -> float:
        """A held job collected: its hold replaced by what it cost at the batch price (nothing,
        for a job that embedded nothing: `usage` None); returns that."""
        calls = [] if usage is None else [Call(model, usage, "ingest", batch=True)]
        return sum(p.cost_usd for p in self.ledger.settle(hold, calls))

    def charge(self, model: str, usage: Usage, *, batch: bool = False) -> float:
        """Records a finished call (`batch`: a Batch API job's, at the batch price); returns its price."""
        return self.ledger.charge(self.session, model, usage, "ingest", batch=batch).cost_usd
