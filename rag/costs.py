"""What every model call cost, and the ledger that remembers it per session, model and day.

Prices come from the dated table in settings (USD per million tokens). The ledger stores
money as integer nano-dollars in atomic counters (rag.kv), so concurrent sessions, threads,
processes and replicas all add up exactly; cache hits record the money they saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from rag.answer import AnswerRecord
from rag.errors import ConfigError
from rag.kv import KV, Clock, bucket, bucket_parts, open_kv
from rag.settings import PRICES_AS_OF, Settings
from rag.types import Usage

# "stopped": an answer the reader stopped mid-stream; paid for, but not counted as an answer.
CallKind = Literal["answer", "stopped", "rewrite", "embed", "judge", "ingest"]
NANO = 1_000_000_000
PER_TOKEN = 1_000_000  # prices are per million tokens


def price_usd(settings: Settings, model: str, usage: Usage) -> float:
    """Gemini bills cached input at the cached rate (cached tokens are part of the prompt
    count), thinking as output, and on Pro a prompt above `long_context_tokens` moves the
    whole call, output included, to the higher tier. Local models are free."""
    price = settings.prices.get(model.removeprefix("models/"))
    if price is None:
        if model.removeprefix("models/").startswith("gemini"):
            raise ConfigError(
                f"No price for model {model!r} in the price table (prices as of {PRICES_AS_OF}). "
                f'Add it to gemrag.toml, e.g. [prices."{model}"] input = 0.30, output = 2.50.'
            )
        return 0.0
    long = price.long_context_tokens is not None and usage.prompt_tokens > price.long_context_tokens
    input_rate = price.input_long if long and price.input_long is not None else price.input
    output_rate = price.output_long if long and price.output_long is not None else price.output
    cached_rate = price.cached_input_long if long and price.cached_input_long is not None else price.cached_input
    fresh = usage.prompt_tokens - usage.cached_tokens
    billed = (
        fresh * input_rate
        + usage.cached_tokens * cached_rate
        + (usage.output_tokens + usage.thinking_tokens) * output_rate
    )
    return billed / PER_TOKEN


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
    ) -> None:
        """A cache hit is recorded with `cached=True`, zero usage and cost, and the cost it avoided."""
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

    def charge(self, session_id: str, model: str, usage: Usage, kind: CallKind) -> float:
        """Prices a finished call from its usage, records it and returns its cost."""
        cost = price_usd(self.settings, model, usage)
        self.record(session_id, model, usage, kind, cost)
        return cost

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

    def today_utc(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).date().isoformat()

    def _totals(self, name: str) -> Totals:
        return Totals.from_counters(self.kv.counters(name))

    def _group(self, prefix: str) -> dict[str, Totals]:
        return {bucket_parts(name)[-1]: self._totals(name) for name in self.kv.buckets(prefix)}
