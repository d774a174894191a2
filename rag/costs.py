"""What every model call cost, and the ledger that remembers it per session, model and day.

Prices come from the model catalogue (rag/catalogue.toml, USD per million tokens), for the
model that actually answered (the response's modelVersion), on the day of the call. The ledger stores
money as integer nano-dollars in atomic counters (rag.kv), so concurrent sessions, threads,
processes and replicas all add up exactly; cache hits record the money they saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from rag.answer import AnswerRecord
from rag.catalogue import most_expensive, role_of_name
from rag.kv import KV, Clock, bucket, bucket_parts, open_kv
from rag.settings import Settings
from rag.types import Usage

# "stopped": an answer the reader stopped mid-stream; paid for, but not counted as an answer.
CallKind = Literal["answer", "stopped", "rewrite", "embed", "judge", "ingest"]
NANO = 1_000_000_000
PER_TOKEN = 1_000_000  # prices are per million tokens


@dataclass(frozen=True)
class Priced:
    """What one call cost, priced as `model`'s catalogue row. `listed` is False when the model
    answering is not in the catalogue: it is then charged as the dearest model of its role."""

    model: str
    cost_usd: float
    cache_saved_usd: float = 0.0  # what Gemini's implicit cache took off the bill
    listed: bool = True


def price_call(settings: Settings, model: str, usage: Usage, day: date | None = None) -> Priced:
    """Gemini bills cached input at the cached rate (cached tokens are part of the prompt
    count; without a published cached rate they are charged in full), thinking as output, and
    on Pro a prompt above `long_context_tokens` moves the whole call, output included, to the
    higher tier. Prices follow the catalogue's dated steps. Local models are free."""
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
    return Priced(name, billed / PER_TOKEN, saved / PER_TOKEN, listed)


def price_usd(settings: Settings, model: str, usage: Usage, day: date | None = None) -> float:
    return price_call(settings, model, usage, day).cost_usd


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
    cache_saved_usd: float = 0.0  # implicit caching: cached tokens billed below the input price

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
        )


class Ledger:
    """Every call is added at once to its session, its model, its session-and-model, its
    (UTC) day and the grand total, in one atomic step."""

    def __init__(self, settings: Settings, kv: KV | None = None, clock: Clock = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.kv = kv or open_kv(settings, "ledger", clock)

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
        fields = {
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
        }
        self.kv.add(
            {
                bucket("total"): fields,
                bucket("day", self.today_utc()): fields,
                bucket("session", session_id): fields,
                bucket("model", model): fields,
                bucket("session-model", session_id, model): fields,
            }
        )

    def charge(self, session_id: str, model: str, usage: Usage, kind: CallKind) -> Priced:
        """Prices a finished call from its usage (on the ledger's day), records it under the
        model that answered and returns its price."""
        priced = price_call(self.settings, model, usage, self.day())
        self.record(session_id, model, usage, kind, priced.cost_usd, cache_saved_usd=priced.cache_saved_usd)
        return priced

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
