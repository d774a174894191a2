"""Explicit context caching: a long prefix sent once, held by the provider, reused by follow-ups.

A question about a whole document sends all of it (tens of thousands of tokens) to Pro, and
the conversation's follow-ups about that document send it again (rag.router.document_discussed
keeps a conversation on the document it opened). Gemini can keep such a prefix as a cached content for a TTL: a request
naming it sends only its question and pays the cached-input price for the prefix, but keeping it
is billed per token and hour. So one is created only when the follow-ups expected save more than
it costs, per token of the prefix:

    follow_ups × (input − cached)  >  cached + storage_per_hour × ttl_hours

(the first answer pays the prefix at the input price, as it would have without the cache, once
to create it, then a cached read and the storage). No cached content for a prefix below the
model's minimum (`cache_min_tokens`), for a model without a published storage price, for a
question with no follow-up expected (the CLI's one-shot `ask`, or no session), or with
`context_cache` off. A session holds at most one: a session that moves to another document, or
whose TTL passed, has its old one deleted, and `end(session)` deletes it when the session ends.

Storage is charged when the content is created, for the whole TTL: an upper bound of the bill
(one deleted early is billed less), so money is never recorded below what it may have cost.
The registry lives in this process: another replica serving the same session makes its own.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from rag.answer import Route
from rag.costs import Call, price_call
from rag.errors import ProviderError
from rag.kv import Clock
from rag.providers.base import Generator
from rag.router import Routed
from rag.settings import Settings
from rag.types import CachedContext, Prompt, Usage, estimate_tokens

log = logging.getLogger(__name__)
PER_TOKEN = 1_000_000  # catalogue prices are per million tokens


@dataclass(frozen=True)
class Held:
    """A session's cached content: what it holds (the document, a digest of the prefix)."""

    context: CachedContext
    document: str
    prefix: str


@dataclass(frozen=True)
class CachePlan:
    """What `plan` decided for one answer, before any call: reuse `held`, create one (`usd`,
    its creation with storage, is held against the budgets first), or neither (`note` says
    why, for the route)."""

    routed: Routed
    prefix: str = ""
    held: Held | None = None
    usd: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class Attached:
    """The answer's routing with the cached context named in its prompt and route, and the
    creation call to charge, if one was made."""

    routed: Routed
    call: Call | None = None


class ContextCache:
    def __init__(self, settings: Settings, generator: Generator, clock: Clock = time.time) -> None:
        self.settings = settings
        self.generator = generator
        self.clock = clock
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()

    def plan(self, session_id: str, routed: Routed, follow_ups: float | None = None) -> CachePlan:
        """Only a whole document's prompt is considered: its sources turn is what follow-ups
        resend. `follow_ups`: expected in this session (None: the configured default)."""
        if not (self.settings.context_cache and session_id and routed.document and routed.prompt.prefix_turns):
            return CachePlan(routed)
        model = routed.route.model
        prefix = _digest(model, routed.prompt)
        self._expire()
        with self._lock:
            held = self._held.get(session_id)
        if held is not None and held.prefix == prefix:
            return CachePlan(routed, prefix, held=held)
        if held is not None:  # the session moved to another document (or the document changed)
            self._drop(session_id, held)
        row = self.settings.models.get(model)
        if row is None:  # not a catalogued Gemini model (the offline answerer): nothing to cache
            return CachePlan(routed)
        price = row.price_on(datetime.fromtimestamp(self.clock(), UTC).date())
        minimum = row.cache_min_tokens
        if price.cache_storage is None or minimum is None:
            return CachePlan(routed, note=f"no cached context: the catalogue has no cache storage price or "
                                          f"minimum size for {model}")
        expected = self.settings.context_cache_followups if follow_ups is None else follow_ups
        if expected <= 0:
            return CachePlan(routed, note="no cached context: no follow-up question expected")
        head = _head(routed.prompt)
        tokens = estimate_tokens(head.text)
        if tokens >= minimum:  # worth the exact count (countTokens is free)
            tokens = self.generator.count_tokens(head, model)
        if tokens < minimum:
            return CachePlan(routed, note=f"no cached context: {tokens:,} tokens, below {model}'s "
                                          f"{minimum:,}-token minimum")
        long = price.long_context_tokens is not None and tokens > price.long_context_tokens
        input_rate = price.input_long if long and price.input_long is not None else price.input
        cached = price.cached_input_long if long and price.cached_input_long is not None else price.cached_input
        cached_rate = input_rate if cached is None else cached
        hours = self.settings.context_cache_ttl_s / 3600
        saving = expected * tokens * (input_rate - cached_rate) / PER_TOKEN
        keeping = tokens * (cached_rate + price.cache_storage * hours) / PER_TOKEN
        if saving <= keeping:
            return CachePlan(routed, note=f"no cached context: {expected:g} expected follow-ups would save "
                                          f"${saving:.4f}, keeping {tokens:,} tokens for {_minutes(hours)} "
                                          f"costs ${keeping:.4f}")
        usd = price_call(self.settings, model, Usage(prompt_tokens=tokens), storage_hours=hours).cost_usd
        return CachePlan(routed, prefix, usd=usd, note=f"{expected:g} expected follow-ups save ${saving:.4f}, "
                                                       f"keeping it costs ${keeping:.4f}")

    def attach(self, session_id: str, plan: CachePlan) -> Attached:
        """Carries out `plan`: the held context named in the prompt, or a new one created (a
        creation that fails leaves the answer to go without, as it would have)."""
        routed = plan.routed
        if plan.held is not None:
            held = plan.held.context
            note = (f"cached context: reused {held.name} ({held.tokens:,} tokens of {plan.held.document}, "
                    f"kept until {_clock_time(held.expires_at)} UTC)")
            return Attached(_named(routed, held.name, note))
        if not plan.usd:
            return Attached(_noted(routed, plan.note) if plan.note else routed)
        model = routed.route.model
        try:
            context = self.generator.cache_prefix(routed.prompt, model, self.settings.context_cache_ttl_s)
        except ProviderError as error:
            log.warning("no cached context for %s: %s", routed.document, error)
            return Attached(_noted(routed, f"no cached context: creating it failed ({error})"))
        if context is None:  # this generator keeps no cache (several keys, the offline answerer)
            return Attached(routed)
        with self._lock:
            self._held[session_id] = Held(context, routed.document or "", plan.prefix)
        hours = self.settings.context_cache_ttl_s / 3600
        note = (f"cached context: created {context.name} ({context.tokens:,} tokens of {routed.document}) for the "
                f"session's follow-ups, kept {_minutes(hours)}; {plan.note}")
        call = Call(model, Usage(prompt_tokens=context.tokens), "cache", storage_hours=hours)
        return Attached(_named(routed, context.name, note), call)

    def end(self, session_id: str) -> None:
        """The session is over: its cached content, if any, is deleted now rather than at its TTL."""
        with self._lock:
            held = self._held.get(session_id)
        if held is not None:
            self._drop(session_id, held)

    def _expire(self) -> None:
        """Forgets (and deletes, in case the provider's clock runs behind) contents past their TTL."""
        now = self.clock()
        with self._lock:
            expired = [(s, h) for s, h in self._held.items() if h.context.expires_at <= now]
        for session_id, held in expired:
            self._drop(session_id, held)

    def _drop(self, session_id: str, held: Held) -> None:
        with self._lock:
            if self._held.get(session_id) is held:
                del self._held[session_id]
        try:
            self.generator.drop_cache(held.context.name)
        except ProviderError as error:  # it expires at its TTL anyway; its storage is charged already
            log.warning("could not delete cached context %s: %s", held.context.name, error)


def _head(prompt: Prompt) -> Prompt:
    """The prompt's reusable prefix alone: the system instruction and its first turns."""
    return replace(prompt, contents=prompt.contents[: prompt.prefix_turns], images=())


def _digest(model: str, prompt: Prompt) -> str:
    head = _head(prompt)
    text = "\x1f".join([model, head.system, *(f"{m.role}:{m.text}" for m in head.contents)])
    return hashlib.sha256(text.encode()).hexdigest()


def _named(routed: Routed, name: str, note: str) -> Routed:
    return replace(_noted(routed, note), prompt=replace(routed.prompt, cached_context=name))


def _noted(routed: Routed, note: str) -> Routed:
    route: Route = routed.route
    return replace(routed, route=replace(route, reason=f"{route.reason}; {note}"))


def _minutes(hours: float) -> str:
    return f"{hours * 60:g} min"


def _clock_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%H:%M:%S")
