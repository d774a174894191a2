"""What every model call cost, and the ledger that remembers it per session, model and day.

Prices come from the model catalogue (rag/catalogue.toml, USD per million tokens), for the
model that actually answered (the response's modelVersion), on the day of the call. The ledger stores
money as integer nano-dollars in atomic counters (rag.kv), so concurrent sessions, threads,
processes and replicas all add up exactly; cache hits record the money they saved.

Reserve, then settle (what answers use, and any replica sharing the ledger through Redis):

    hold = ledger.reserve(session_id, estimate_usd, limits)   # before any call is sent
    hold = ledger.extend(hold, more_usd, limits)              # optional: a dearer route chosen
    ledger.settle(hold, [Call(model, usage, kind), ...])      # after: what the calls cost

`reserve` checks the limits and sets the money aside in one atomic step, so concurrent
answers of one session (or one day) cannot all pass the check before any is charged, and
a call is on record before it is sent. `settle` replaces the held money by the calls' real
cost, exactly once per hold. If the store is unreachable at that moment (Redis died
mid-answer), the settlement is written to a local journal under the data dir and applied
by the next reserve or check once the store is back; until then the held estimate, an upper
bound, stands in the ledger.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Literal, TextIO

from rag.answer import AnswerRecord
from rag.catalogue import most_expensive, role_of_name
from rag.kv import KV, Cap, Clock, StoreUnavailable, bucket, bucket_parts, open_kv
from rag.settings import Settings
from rag.types import Usage

if TYPE_CHECKING:
    from rag.budget import BudgetAlerts

# "stopped": an answer stopped mid-stream (by the reader, or a broken stream), or a call
# abandoned before its reply (a reranking timed out); paid for, or possibly so, but not
# counted as an answer, its tokens as the API last reported them, else counted locally.
# "suggest": the UI's first-screen questions written by the cheap model.
# "cache": an explicit cached content created (its tokens at the input price, and its storage).
# "index": File Search indexing an uploaded file, billed at the embedding price.
CallKind = Literal["answer", "stopped", "rewrite", "embed", "rerank", "judge", "ingest", "suggest", "cache", "index"]
# The budgets a hold is checked against: the session's, the deployment's per (UTC) day and
# month, and the API key's (the account's) per day and month.
Scope = Literal["session", "daily", "monthly", "key_daily", "key_monthly"]
SpentHook = Callable[[str], None]  # (session id) after money was recorded: budget alerts


def account_of(session_id: str) -> str:
    """The account (API key name) a session's money counts against: the HTTP API names its
    sessions "<key name>/<id>"; the CLI's and the UI's sessions belong to "local"."""
    return session_id.split("/", 1)[0] if "/" in session_id else "local"


def scope_buckets(session_id: str, day: str) -> dict[Scope, str]:
    """Where each budget's spending is counted, for a session on a (UTC) day "YYYY-MM-DD"."""
    account, month = account_of(session_id), day[:7]
    return {
        "session": bucket("session", session_id),
        "daily": bucket("day", day),
        "monthly": bucket("month", month),
        "key_daily": bucket("account-day", account, day),
        "key_monthly": bucket("account-month", account, month),
    }


def dollars(amount: float) -> str:
    """Money as a user reads it, with digits enough that an amount never shows as another: a
    $0.005 budget is not "$0.01", nor a $0.0003 Flash answer "$0.0000". Six decimals below a
    tenth of a cent, four below a dollar, cents above."""
    if 0 < abs(amount) < 0.001:
        return f"${amount:.6f}"
    return f"${amount:.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


JOURNAL = "ledger-unsettled.jsonl"
log = logging.getLogger(__name__)
NANO = 1_000_000_000
PER_TOKEN = 1_000_000  # prices are per million tokens


@dataclass(frozen=True)
class Priced:
    """What one call cost, priced as `model`'s catalogue row. `listed` is False when the model
    answering is not in the catalogue: it is then charged as the dearest model of its role."""

    model: str
    cost_usd: float
    cache_saved_usd: float = 0.0  # what Gemini's cache (implicit or explicit) took off the bill
    listed: bool = True
    storage_usd: float = 0.0  # part of cost_usd: keeping an explicit cached content


def price_call(
    settings: Settings,
    model: str,
    usage: Usage,
    day: date | None = None,
    *,
    batch: bool = False,
    storage_hours: float = 0.0,
) -> Priced:
    """Gemini bills cached input at the cached rate (cached tokens are part of the prompt
    count; without a published cached rate they are charged in full), thinking as output, and
    on Pro a prompt above `long_context_tokens` moves the whole call, output included, to the
    higher tier. Prices follow the catalogue's dated steps. Local models are free. `batch`: a
    Batch API request, at the row's `batch_discount` (a row without one is charged in full).
    `storage_hours`: a cached content created by this call, its prompt tokens kept that long
    at the row's `cache_storage` price (none published: charged as the input price per hour,
    so storage is never recorded below what it may cost); storage has no batch discount."""
    name = model.removeprefix("models/")
    day = day or datetime.now(UTC).date()
    row = settings.models.get(name)
    listed = row is not None
    if row is None:
        if not name.startswith("gemini"):
            return Priced(name, 0.0)
        _, row = most_expensive(settings.models, role_of_name(name), day)
    price = row.price_on(day)
    long = price.long_context_tokens is not None and usage.prompt_tokens > price.long_context_tokens
    input_rate = price.input_long if long and price.input_long is not None else price.input
    output_rate = (price.output_long if long and price.output_long is not None else price.output) or 0.0
    cached = price.cached_input_long if long and price.cached_input_long is not None else price.cached_input
    cached_rate = input_rate if cached is None else cached
    fresh = usage.prompt_tokens - usage.cached_tokens
    output = usage.output_tokens + usage.thinking_tokens
    billed = fresh * input_rate + usage.cached_tokens * cached_rate + output * output_rate
    saved = usage.cached_tokens * (input_rate - cached_rate)
    share = row.batch_discount if batch and row.batch_discount is not None else 1.0
    storage_rate = input_rate if price.cache_storage is None else price.cache_storage
    storage = usage.prompt_tokens * storage_rate * storage_hours / PER_TOKEN
    return Priced(name, billed * share / PER_TOKEN + storage, saved * share / PER_TOKEN, listed, storage)


def price_usd(
    settings: Settings, model: str, usage: Usage, day: date | None = None, *, batch: bool = False
) -> float:
    return price_call(settings, model, usage, day, batch=batch).cost_usd


@dataclass(frozen=True)
class Totals:
    """Aggregates of one bucket (a session, a model, a day or everything).

    `answers` counts answered questions, `cache_hits` those served from the answer cache.
    """

    calls: int = 0
    answers: int = 0
    cache_hits: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    cache_saved_usd: float = 0.0  # cached tokens (implicit or explicit) billed below the input price
    held_usd: float = 0.0  # part of cost_usd set aside for answers not yet settled
    storage_usd: float = 0.0  # part of cost_usd: explicit cached contents kept (rag.contextcache)

    @property
    def empty(self) -> bool:
        return self.calls == 0 and self.cache_hits == 0

    @property
    def hit_rate(self) -> float:
        return self.cache_hits / self.answers if self.answers else 0.0

    @classmethod
    def from_counters(cls, counters: dict[str, int]) -> Totals:
        return cls(
            calls=counters.get("calls", 0),
            answers=counters.get("answers", 0),
            cache_hits=counters.get("cache_hits", 0),
            usage=Usage(
                prompt_tokens=counters.get("prompt_tokens", 0),
                output_tokens=counters.get("output_tokens", 0),
                cached_tokens=counters.get("cached_tokens", 0),
                thinking_tokens=counters.get("thinking_tokens", 0),
            ),
            cost_usd=counters.get("cost_nusd", 0) / NANO,
            saved_usd=counters.get("saved_nusd", 0) / NANO,
            cache_saved_usd=counters.get("cache_saved_nusd", 0) / NANO,
            held_usd=counters.get("held_nusd", 0) / NANO,
            storage_usd=counters.get("storage_nusd", 0) / NANO,
        )


@dataclass(frozen=True)
class Call:
    """One model call as the ledger charges it."""

    model: str
    usage: Usage
    kind: CallKind
    storage_hours: float = 0.0  # a cached content created: how long its tokens are kept
    batch: bool = False  # a Batch API job's requests, at the batch price


@dataclass(frozen=True)
class Limit:
    """A spending limit `reserve` enforces: the session's or today's (UTC)."""

    scope: Scope
    usd: float


@dataclass(frozen=True)
class Hold:
    """Money set aside for one answer's calls, counted against the limits until settled."""

    id: str
    session_id: str
    day: str  # the (UTC) day it was charged to: its settlement lands there too
    nusd: int

    @property
    def usd(self) -> float:
        return self.nusd / NANO


class LimitReached(Exception):
    """`reserve` would pass `limit`: nothing was set aside. `spent_usd` includes other holds."""

    def __init__(self, limit: Limit, spent_usd: float, wanted_usd: float) -> None:
        super().__init__(
            f"{limit.scope} limit {dollars(limit.usd)}: spent {dollars(spent_usd)}, wanted {dollars(wanted_usd)}"
        )
        self.limit = limit
        self.spent_usd = spent_usd
        self.wanted_usd = wanted_usd


class Ledger:
    """Every call is added at once to its session, its model, its session-and-model, its
    (UTC) day and the grand total, in one atomic step."""

    def __init__(self, settings: Settings, kv: KV | None = None, clock: Clock = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.kv = kv or open_kv(settings, "ledger", clock)
        self.on_spent: list[SpentHook] = []  # called after money was recorded for a session
        self.alerts: BudgetAlerts | None = None  # set by the first Budget over this ledger
        _warn_if_volatile(self.kv)

    def record(
        self,
        session_id: str,
        model: str,
        usage: Usage,
        kind: CallKind,
        cost_usd: float,
        saved_usd: float = 0.0,
        cached: bool = False,
        cache_saved_usd: float = 0.0,
    ) -> None:
        """A cache hit is recorded with `cached=True`, zero usage and cost, and the cost it
        avoided; `cache_saved_usd` is what Gemini's implicit cache took off a call's bill."""
        fields = _fields(usage, kind, cost_usd, saved_usd, cached, cache_saved_usd)
        names = (bucket("total"), *scope_buckets(session_id, self.today_utc()).values(),
                 bucket("model", model), bucket("session-model", session_id, model))
        self.kv.add({name: fields for name in names})
        self._spent(session_id)

    def charge(
        self, session_id: str, model: str, usage: Usage, kind: CallKind, *, batch: bool = False
    ) -> Priced:
        """Prices a finished call from its usage (on the ledger's day), records it under the
        model that answered and returns its price (a call not covered by a hold). `batch`: a
        Batch API job's requests, at the batch price."""
        priced = price_call(self.settings, model, usage, self.day(), batch=batch)
        self.record(session_id, model, usage, kind, priced.cost_usd, cache_saved_usd=priced.cache_saved_usd)
        self.charged(Call(model, usage, kind), priced)
        return priced

    def charged(self, call: Call, priced: Priced) -> None:
        """Called after each call is recorded (by `charge` or `settle`): a hook for metrics."""

    def reserve(self, session_id: str, usd: float, limits: Sequence[Limit] = ()) -> Hold:
        """Sets `usd` aside for calls about to be sent, if every limit allows it; raises
        LimitReached (nothing set aside) otherwise, StoreUnavailable if the store is down."""
        self.replay_journal()
        hold = Hold(uuid.uuid4().hex, session_id, self.today_utc(), 0)
        return self._hold(hold, round(usd * NANO), limits, {"pending": 1})

    def extend(self, hold: Hold, usd: float, limits: Sequence[Limit] = ()) -> Hold:
        """Sets `usd` more aside for the same answer (its route turned out dearer)."""
        return self._hold(hold, round(usd * NANO), limits, {})

    def settle(self, hold: Hold, calls: Sequence[Call]) -> list[Priced]:
        """Replaces the held money by what `calls` cost, once; returns each call's price. With
        the store unreachable the settlement waits in the journal (see the module docstring)."""
        priced = self._priced(hold, calls)
        try:
            self._settle(hold, calls, priced)
        except StoreUnavailable as exc:
            self._journal_append(hold, calls)
            log.warning("ledger unreachable, settlement of %s kept in %s until it is back: %s", hold.id, JOURNAL, exc)
        for call, price in zip(calls, priced, strict=True):
            self.charged(call, price)
        self._spent(hold.session_id)
        return priced

    def replay_journal(self) -> None:
        """Applies settlements that waited for the store; keeps those it still cannot apply."""
        path = self.settings.data_dir / JOURNAL
        if not path.exists():
            return
        with self._journal_locked() as journal:
            waiting = [line for line in journal.read().splitlines() if line.strip()]
            left = []
            for line in waiting:
                hold, calls = _from_journal(line)
                try:
                    self._settle(hold, calls, self._priced(hold, calls))
                except StoreUnavailable:
                    left.append(line)
            journal.seek(0)
            journal.truncate()
            journal.write("".join(f"{line}\n" for line in left))
            journal.flush()
            os.fsync(journal.fileno())

    def spent_usd(self, scope: Scope, session_id: str = "") -> float:
        """Money recorded (and held) so far in a budget's current period."""
        return self._totals(scope_buckets(session_id, self.today_utc())[scope]).cost_usd

    def _spent(self, session_id: str) -> None:
        """The hooks read the store: with it down, they wait for the next spend (the money
        itself is recorded or journalled already, and an answer must not fail for an alert)."""
        try:
            for hook in self.on_spent:
                hook(session_id)
        except StoreUnavailable as exc:
            log.warning("budget alerts skipped for now: %s", exc)

    def record_hit(self, session_id: str, hit: AnswerRecord) -> None:
        """An answer served from the cache: no call, no tokens, and the money it saved."""
        self.record(session_id, hit.route.model, Usage(), "answer", 0.0, saved_usd=hit.saved_usd, cached=True)

    def check(self) -> None:
        """Raises StoreUnavailable unless the ledger's store answers now (a ledger opened with
        `answer_without_stores` otherwise reads as empty when its store is down)."""
        self.kv.ping()

    def session(self, session_id: str) -> Totals:
        return self._totals(bucket("session", session_id))

    def today(self) -> Totals:
        return self._totals(bucket("day", self.today_utc()))

    def total(self) -> Totals:
        return self._totals(bucket("total"))

    def sessions(self) -> dict[str, Totals]:
        return self._group(bucket("session", ""))

    def models(self, session_id: str | None = None) -> dict[str, Totals]:
        if session_id is None:
            return self._group(bucket("model", ""))
        return self._group(bucket("session-model", session_id, ""))

    def day(self) -> date:
        """The ledger's (UTC) day: it buckets spending and picks the dated prices."""
        return datetime.fromtimestamp(self.clock(), UTC).date()

    def today_utc(self) -> str:
        return self.day().isoformat()

    def _totals(self, name: str) -> Totals:
        return Totals.from_counters(self.kv.counters(name))

    def _group(self, prefix: str) -> dict[str, Totals]:
        return {bucket_parts(name)[-1]: self._totals(name) for name in self.kv.buckets(prefix)}

    def _hold(self, hold: Hold, nusd: int, limits: Sequence[Limit], extra: dict[str, int]) -> Hold:
        held = {"cost_nusd": nusd, "held_nusd": nusd, **extra}
        where = scope_buckets(hold.session_id, hold.day)
        caps = [Cap(where[limit.scope], "cost_nusd", round(limit.usd * NANO)) for limit in limits]
        buckets = (bucket("total"), *where.values())
        added, spent = self.kv.add_capped({name: held for name in buckets}, caps)
        if not added:
            limit, now = next((lim, v) for lim, v, c in zip(limits, spent, caps, strict=True) if v + nusd > c.most)
            raise LimitReached(limit, now / NANO, nusd / NANO)
        return Hold(hold.id, hold.session_id, hold.day, hold.nusd + nusd)

    def _settle(self, hold: Hold, calls: Sequence[Call], priced: Sequence[Priced]) -> None:
        """One atomic add: the hold released, each call recorded; the hold's own counter (a
        field of its day's `holds` bucket) caps it at one settlement, so a journal replay after
        a lost reply cannot count it twice."""
        increments: dict[str, dict[str, int]] = {}

        def add(name: str, fields: dict[str, int]) -> None:
            into = increments.setdefault(name, {})
            for key, n in fields.items():
                into[key] = into.get(key, 0) + n

        release = {"cost_nusd": -hold.nusd, "held_nusd": -hold.nusd, "pending": -1}
        scoped = (bucket("total"), *scope_buckets(hold.session_id, hold.day).values())
        for name in scoped:
            add(name, release)
        for call, price in zip(calls, priced, strict=True):
            fields = _fields(call.usage, call.kind, price.cost_usd, cache_saved_usd=price.cache_saved_usd,
                             storage_usd=price.storage_usd)
            for name in (*scoped, bucket("model", price.model), bucket("session-model", hold.session_id, price.model)):
                add(name, fields)
        # One field per hold in its day's bucket: a bucket per hold (and an entry in the index
        # of buckets) grew the store by one key per answer, for ever, and every listing of
        # sessions read them all (0.95 s for a session's costs at 500,000 answers).
        marker = bucket("holds", hold.day)
        add(marker, {hold.id: 1})
        # ... and not settled before, by a version that marked a hold in a bucket of its own: a
        # journal replayed across the upgrade would count that settlement twice.
        self.kv.add_capped(increments, [Cap(marker, hold.id, 1), Cap(bucket("hold", hold.id), "settled", 0)])

    def _priced(self, hold: Hold, calls: Sequence[Call]) -> list[Priced]:
        day = date.fromisoformat(hold.day)
        return [price_call(self.settings, c.model, c.usage, day, batch=c.batch, storage_hours=c.storage_hours)
                for c in calls]

    def _journal_append(self, hold: Hold, calls: Sequence[Call]) -> None:
        with self._journal_locked() as journal:
            journal.seek(0, os.SEEK_END)
            journal.write(_to_journal(hold, calls) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    @contextmanager
    def _journal_locked(self) -> Iterator[TextIO]:
        """The journal, locked against other threads and processes of this data dir."""
        with open(self.settings.path(JOURNAL), "a+", encoding="utf-8") as journal:
            fcntl.flock(journal, fcntl.LOCK_EX)
            journal.seek(0)
            yield journal


def _fields(
    usage: Usage,
    kind: CallKind,
    cost_usd: float,
    saved_usd: float = 0.0,
    cached: bool = False,
    cache_saved_usd: float = 0.0,
    storage_usd: float = 0.0,
) -> dict[str, int]:
    """One call's (or cache hit's) counter increments."""
    return {
        "calls": 0 if cached else 1,
        "answers": int(kind == "answer"),
        "cache_hits": int(cached),
        "prompt_tokens": usage.prompt_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "thinking_tokens": usage.thinking_tokens,
        "cost_nusd": round(cost_usd * NANO),
        "saved_nusd": round(saved_usd * NANO),
        "cache_saved_nusd": round(cache_saved_usd * NANO),
        "storage_nusd": round(storage_usd * NANO),
    }


_warned: set[str] = set()


def _warn_if_volatile(kv: KV) -> None:
    """Once per store and process: spending and budgets vanish with a store that forgets."""
    problem = kv.volatility()
    if problem and problem not in _warned:
        _warned.add(problem)
        log.warning("%s; the cost ledger and the budgets it enforces would be lost with it. "
                    "Run Redis with appendonly yes (see README: Reliability).", problem)


def _to_journal(hold: Hold, calls: Sequence[Call]) -> str:
    return json.dumps({"hold": asdict(hold), "calls": [asdict(c) for c in calls]})


def _from_journal(line: str) -> tuple[Hold, list[Call]]:
    entry = json.loads(line)
    calls = [Call(c["model"], Usage(**c["usage"]), c["kind"], c.get("storage_hours", 0.0), c.get("batch", False))
             for c in entry["calls"]]
    return Hold(**entry["hold"]), calls
