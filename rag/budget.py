"""Spending limits, checked before a call so a request that would pass a limit is refused
whole: nothing is sent and nothing is recorded."""

from __future__ import annotations

from collections.abc import Callable

from rag.costs import Hold, Ledger, Limit, LimitReached
from rag.errors import BudgetExceeded
from rag.settings import Settings


class Budget:
    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger

    def check(self, session_id: str, estimated_usd: float) -> None:
        """Raises BudgetExceeded when the spend so far plus `estimated_usd` would pass the
        session's or today's (UTC) limit. Free calls (the offline default) always pass."""
        if estimated_usd <= 0:
            return
        limits = (
            ("session", self.ledger.session(session_id).cost_usd, self.settings.session_budget_usd),
            ("daily", self.ledger.today().cost_usd, self.settings.daily_budget_usd),
        )
        for scope, spent, limit in limits:
            if spent + estimated_usd > limit:
                raise BudgetExceeded(_refusal(scope, spent, limit, estimated_usd))

    def reserve(self, session_id: str, estimated_usd: float) -> Hold:
        """Sets the estimate aside in the ledger if both limits allow it, in one atomic step
        (concurrent answers cannot all pass before any is charged); raises BudgetExceeded
        otherwise. Done even for a free answer: the call is on record before it is sent."""
        return self._within(lambda: self.ledger.reserve(session_id, estimated_usd, self.limits()))

    def extend(self, hold: Hold, more_usd: float) -> Hold:
        """More set aside for the same answer, after routing chose its (dearer) route."""
        return self._within(lambda: self.ledger.extend(hold, more_usd, self.limits()))

    def limits(self) -> list[Limit]:
        return [Limit("session", self.settings.session_budget_usd), Limit("daily", self.settings.daily_budget_usd)]

    @staticmethod
    def _within(hold: Callable[[], Hold]) -> Hold:
        try:
            return hold()
        except LimitReached as reached:
            raise BudgetExceeded(
                _refusal(reached.limit.scope, reached.spent_usd, reached.limit.usd, reached.wanted_usd)
            ) from None

    def remaining_usd(self, session_id: str) -> float:
        """What the session may still spend today under both limits, for the UI."""
        return max(
            0.0,
            min(
                self.settings.session_budget_usd - self.ledger.session(session_id).cost_usd,
                self.settings.daily_budget_usd - self.ledger.today().cost_usd,
            ),
        )


def _refusal(scope: str, spent: float, limit: float, estimated: float) -> str:
    who = "This session has" if scope == "session" else "Today (UTC) the app has"
    setting = f"{scope}_budget_usd"
    return (
        f"Refused before calling the model: the {scope} budget would be exceeded. {who} spent "
        f"${spent:.4f} of its ${limit:.2f} limit, and this request would cost about ${estimated:.4f}. "
        f"To raise the limit, set GEMRAG_{setting.upper()} (e.g. GEMRAG_{setting.upper()}={limit * 2:g}) "
        f"or {setting} in gemrag.toml."
    )
