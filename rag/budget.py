"""Spending limits, checked before a call so a request that would pass a limit is refused
whole: nothing is sent and nothing is recorded; and alerts as spending nears them.

The limits: the session's, the deployment's per (UTC) day and month, and each API key's per
day and month (rag.costs.Scope). Alerts watch the daily and monthly ones: at each fraction in
`budget_alert_at` (50/80/100 % by default) of a budget, once per budget and period across all
replicas, a warning is logged, observers are told (the server counts it in /metrics) and,
with `budget_webhook_url`, a JSON POST is sent.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass

import httpx

from rag.costs import Hold, Ledger, Limit, LimitReached, Scope, account_of, dollars, price_usd, scope_buckets
from rag.errors import BudgetExceeded
from rag.kv import Cap, bucket
from rag.retrieval import Query
from rag.rewrite import output_bound as rewrite_output_bound
from rag.router import Routed
from rag.settings import Settings
from rag.types import Message, Usage, estimate_tokens

log = logging.getLogger("rag.budget")
PERIODIC: tuple[Scope, ...] = ("daily", "monthly", "key_daily", "key_monthly")
PROMPT_OVERHEAD_TOKENS = 500  # the answer prompt's instructions and source delimiters
REWRITE_OVERHEAD_TOKENS = 150  # the rewrite instruction around the conversation


@dataclass(frozen=True)
class Estimate:
    """An answer's first hold: the answer itself, and its other calls (rewrite, reranking)."""

    answer_usd: float
    other_usd: float

    @property
    def usd(self) -> float:
        return self.answer_usd + self.other_usd


def configured_limits(settings: Settings) -> list[Limit]:
    """Every budget that is set, the session's first."""
    usd: dict[Scope, float | None] = {
        "session": settings.session_budget_usd,
        "daily": settings.daily_budget_usd,
        "monthly": settings.monthly_budget_usd,
        "key_daily": settings.key_daily_budget_usd,
        "key_monthly": settings.key_monthly_budget_usd,
    }
    return [Limit(scope, limit) for scope, limit in usd.items() if limit is not None]


class Budget:
    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger
        if ledger.alerts is None:
            ledger.alerts = BudgetAlerts(settings, ledger)

    def check(self, session_id: str, estimated_usd: float, scopes: Collection[Scope] | None = None) -> None:
        """Raises BudgetExceeded when the spend so far plus `estimated_usd` would pass a
        limit (of `scopes` only, when given). Free calls (the offline default) always pass."""
        if estimated_usd <= 0:
            return
        for limit in self.limits(scopes):
            spent = self.ledger.spent_usd(limit.scope, session_id)
            if spent + estimated_usd > limit.usd:
                raise BudgetExceeded(_refusal(limit.scope, session_id, spent, limit.usd, estimated_usd))

    def reserve(self, session_id: str, estimated_usd: float, scopes: Collection[Scope] | None = None) -> Hold:
        """Sets the estimate aside in the ledger if every limit (of `scopes` only, when given)
        allows it, in one atomic step (concurrent answers cannot all pass before any is
        charged); raises BudgetExceeded otherwise. Done even for a free answer: the call is on
        record before it is sent."""
        limits = self.limits(scopes)
        return self._within(session_id, lambda: self.ledger.reserve(session_id, estimated_usd, limits))

    def extend(self, hold: Hold, more_usd: float) -> Hold:
        """More set aside for the same answer, after routing chose its (dearer) route."""
        return self._within(hold.session_id, lambda: self.ledger.extend(hold, more_usd, self.limits()))

    def hold_answer(self, hold: Hold, routed: Routed, other_usd: float) -> Hold:
        """`hold` raised, if need be, to cover the routed answer's worst case (`answer_usd`)
        plus `other_usd` (the answer's other calls); a refusal names the model and why the
        router chose it ("the question asks for the whole of handbook.pdf ...")."""
        more = other_usd + self.answer_usd(routed) - hold.usd
        if more <= 0:
            return hold
        try:
            return self.extend(hold, more)
        except BudgetExceeded as refused:
            route = routed.route
            raise BudgetExceeded(f"{refused} The answer would come from {route.model}: {route.reason}.") from None

    def answer_usd(self, routed: Routed) -> float:
        """The answer's worst case once routed, before it is sent: the model chosen (Pro for a
        whole document), the prompt as the router counted it (estimated locally when it was
        small enough not to need counting) and the output bound the call carries
        (max_output_tokens, thinking included)."""
        size = routed.size
        prompt_tokens = size.tokens if size is not None and size.exact else routed.prompt.estimated_tokens
        output_tokens = routed.prompt.max_output_tokens or self.settings.budget_output_tokens
        return price_usd(self.settings, routed.route.model, Usage(prompt_tokens, output_tokens))

    def limits(self, scopes: Collection[Scope] | None = None) -> list[Limit]:
        """The configured limits, of `scopes` only when given (ingest's: `INGEST_SCOPES`)."""
        return [limit for limit in configured_limits(self.settings) if scopes is None or limit.scope in scopes]

    @staticmethod
    def _within(session_id: str, hold: Callable[[], Hold]) -> Hold:
        try:
            return hold()
        except LimitReached as reached:
            raise BudgetExceeded(
                _refusal(reached.limit.scope, session_id, reached.spent_usd, reached.limit.usd, reached.wanted_usd)
            ) from None

    def estimate_usd(
        self,
        query: Query,
        history: Sequence[Message],
        model: str,
        rewrite_model: str,
        also: Sequence[tuple[str, Usage]] = (),
    ) -> Estimate:
        """What an answer may cost before any call is made: the first hold, so a budget that
        cannot cover even this refuses before anything is sent. Tokens are estimated locally
        (`estimate_tokens`); the answer's prompt is bounded by `query.top_k` chunks of the
        configured size, its output by `budget_output_tokens`; `model` is the one forced, else
        the router's cheapest (routing may then raise the hold: `hold_answer`). `also`: the
        other calls the answer will make, as (model, estimated usage). The query embedding,
        millionths of a dollar, fits in."""
        asked = estimate_tokens(query.text + "".join(m.text for m in history))
        context = query.top_k * self.settings.chunk_profile.size_tokens + asked + PROMPT_OVERHEAD_TOKENS
        answer = Usage(prompt_tokens=context, output_tokens=self.settings.budget_output_tokens)
        rewrite = (Usage(prompt_tokens=asked + REWRITE_OVERHEAD_TOKENS, output_tokens=rewrite_output_bound(query.text))
                   if history else Usage())
        other = sum(price_usd(self.settings, name, usage) for name, usage in [(rewrite_model, rewrite), *also])
        return Estimate(price_usd(self.settings, model, answer), other)

    def remaining_usd(self, session_id: str) -> float:
        """What the session may still spend under every limit, for the UI and the router."""
        left = (limit.usd - self.ledger.spent_usd(limit.scope, session_id) for limit in self.limits())
        return max(0.0, min(left))


@dataclass(frozen=True)
class BudgetAlert:
    scope: Scope
    account: str  # the API key's name for key_* budgets, else "deployment"
    period: str  # "2026-12-01" or "2026-12"
    threshold: float  # the fraction of the budget reached
    spent_usd: float
    limit_usd: float

    def __str__(self) -> str:
        who = f"API key {self.account!r}" if self.scope.startswith("key_") else "the deployment"
        return (
            f"budget alert: {who} has spent {dollars(self.spent_usd)} of its {self.scope.removeprefix('key_')} "
            f"{dollars(self.limit_usd)} budget for {self.period} ({self.threshold:.0%} reached)"
        )


class BudgetAlerts:
    """Checks the periodic budgets after every recorded spend (Ledger.on_spent); each
    threshold fires once per budget and period, decided atomically in the ledger's store."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger
        self.observers: list[Callable[[BudgetAlert], None]] = []
        self._fired: set[str] = set()  # markers known set: no store round trip per spend for them
        ledger.on_spent.append(self.check)

    def check(self, session_id: str) -> None:
        where = scope_buckets(session_id, self.ledger.today_utc())
        for limit in configured_limits(self.settings):
            if limit.scope not in PERIODIC or limit.usd <= 0:
                continue
            spent = self.ledger.spent_usd(limit.scope, session_id)
            for threshold in sorted(self.settings.budget_alert_at):
                if spent >= threshold * limit.usd and self._first(where[limit.scope], threshold):
                    period = self.ledger.today_utc()[: 7 if limit.scope.endswith("monthly") else 10]
                    account = account_of(session_id) if limit.scope.startswith("key_") else "deployment"
                    self._raise(BudgetAlert(limit.scope, account, period, threshold, spent, limit.usd))

    def _first(self, period_bucket: str, threshold: float) -> bool:
        marker = bucket("alert", period_bucket, f"{threshold:g}")
        if marker in self._fired:
            return False
        fired, _ = self.ledger.kv.add_capped({marker: {"fired": 1}}, [Cap(marker, "fired", 1)])
        self._fired.add(marker)  # by this call or, earlier, by another replica
        return fired

    def _raise(self, alert: BudgetAlert) -> None:
        log.warning("%s", alert, extra={"budget_scope": alert.scope, "threshold": alert.threshold})
        for observe in self.observers:
            observe(alert)
        if self.settings.budget_webhook_url:
            threading.Thread(target=self._post, args=(alert,), daemon=True).start()

    def _post(self, alert: BudgetAlert) -> None:
        try:
            httpx.post(self.settings.budget_webhook_url or "", json={"text": str(alert), **asdict(alert)}, timeout=5)
        except httpx.HTTPError as exc:
            log.warning("budget alert webhook failed: %s", exc)


_WHO: dict[Scope, str] = {
    "session": "This session has",
    "daily": "Today (UTC) the app has",
    "monthly": "This month (UTC) the app has",
    "key_daily": "Today (UTC) the API key {account!r} has",
    "key_monthly": "This month (UTC) the API key {account!r} has",
}
_BUDGET: dict[Scope, str] = {  # the budget's name in words, not the Scope a user never sees
    "session": "session",
    "daily": "daily",
    "monthly": "monthly",
    "key_daily": "per-key daily",
    "key_monthly": "per-key monthly",
}


def _refusal(scope: Scope, session_id: str, spent: float, limit: float, estimated: float) -> str:
    who = _WHO[scope].format(account=account_of(session_id))
    setting = f"{scope}_budget_usd"
    return (
        f"Refused before calling the model: the {_BUDGET[scope]} budget would be exceeded. {who} spent "
        f"{dollars(spent)} of its {dollars(limit)} limit, and this request would cost about {dollars(estimated)}. "
        f"To raise the limit, set GEMRAG_{setting.upper()} (e.g. GEMRAG_{setting.upper()}="
        f"{suggested_limit(spent + estimated)}) or {setting} in gemrag.toml."
    )


def suggested_limit(needed_usd: float) -> str:
    """The limit a refusal suggests, as a setting's value: the smallest round figure (1, 2 or 5
    times a power of ten, a cent at least) that covers `needed_usd`, what was spent plus this
    request, so the request would pass with it. Doubling the old limit could fall short of one
    answer, or stay at 0."""
    needed = max(needed_usd, 0.01)
    power = 10.0 ** math.floor(math.log10(needed))
    figure = next(step * power for step in (1, 2, 5, 10) if step * power >= needed)
    return f"{figure:.2f}".rstrip("0").rstrip(".")
