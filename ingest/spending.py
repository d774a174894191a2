"""What an ingest run spends, recorded in the cost ledger (rag.costs) call by call.

Each embedding request, Batch API job and figure description is charged as soon as it
returns, so a run killed half-way has what it spent on record, and a re-run that embeds
nothing charges nothing (it does not even open the ledger). A call that failed (a 429, a
503 retried) is not billed by the API and is not charged; its successful retry is, once.
Offline calls are recorded at $0, with their tokens, as offline answers are.
"""

from __future__ import annotations

from functools import cached_property

from rag.costs import Ledger
from rag.settings import Settings
from rag.types import Usage


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

    def charge(self, model: str, usage: Usage, *, batch: bool = False) -> float:
        """Records a finished call (`batch`: a Batch API job's, at the batch price); returns its price."""
        return self.ledger.charge(self.session, model, usage, "ingest", batch=batch).cost_usd
