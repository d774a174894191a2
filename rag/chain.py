"""One answer, start to finish: budget → rewrite → cache → retrieve → prompt → route →
generate → cite → account → cache.

Each step is its own method so the flow reads top-down in `stream`. The answer cache sits
right after the rewrite because it keys on the standalone question (and on the corpus
version, read before retrieval, so an answer about an older corpus is never served); every
call is charged to the session's ledger as soon as it is made. The chain never asks which
generator it holds: the offline default and Gemini answer the same prompts.

The chain runs the flow; its collaborators (stores, retriever, router, budget, cache, ledger)
are given to it, or built from the settings when not, so one process can share them.
"""

from __future__ import annotations

import collections.abc
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

from rag.answer import MAX_K, MAX_QUESTION_CHARS, AnswerRecord, AskOptions, Citation, Delta, Done, Event, Route
from rag.budget import Budget
from rag.cache import AnswerCache, CacheKey, answer_key
from rag.citecheck import CitationChecker
from rag.contextcache import ContextCache
from rag.costs import Call, CallKind, Hold, Ledger, dollars, price_usd
from rag.embedcache import EmbeddingCache
from rag.errors import BudgetExceeded, InvalidRequest, QuotaExhausted, charging_lost, echoed
from rag.experiments import Experiments
from rag.filetypes import printable
from rag.headroom import Headroom
from rag.keyterms import mentioned_elsewhere, plain_words
from rag.kv import StoreUnavailable
from rag.prompts import answer_prompt
from rag.providers import Embedders
from rag.providers.base import Generator
from rag.providers.minilm import shared_minilm
from rag.ratelimit import shared_limiter
from rag.retrieval import Query, Retrieved, Retriever, Searcher
from rag.rewrite import Rewritten, standalone
from rag.router import Routed, Router, WholeDocument
from rag.settings import Settings
from rag.store import Store
from rag.stores import Stores
from rag.text import CITATION, asks_for_whole_document, without_code
from rag.types import Hit, Message, Passage, Prompt, Usage, estimate_tokens

SNIPPET_CHARS = 280
# What Python makes of bytes that are not UTF-8 in a command line or a terminal's input
# (surrogateescape): "caf\xe9" typed in a Latin-1 terminal. No text can be made of them.
_UNDECODED = re.compile("[\ud800-\udfff]")
# What shows nothing: white space, control characters (NUL, escape) and format characters
# (zero-width space, joiners, direction marks).
_UNSEEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]*")


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generated:
    text: str
    usage: Usage
    route: Route  # the route actually taken: a fallback replaces the planned one
    ttft_s: float
    passages: tuple[Passage, ...]  # what the answer rests on: the prompt's, or those a File Search call found


Streaming = collections.abc.Generator[Delta, None, Generated]  # yields the text, returns the whole


class Answered(Protocol):
    """A model call's result as the ledger charges it (a Generation, a Rewritten, a Verdict)."""

    @property
    def model(self) -> str: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def abandoned(self) -> tuple[Usage, ...]: ...


@dataclass
class Spending:
    """One answer's money: the hold set aside before its calls, and each call once made."""

    hold: Hold
    other_usd: float  # what the hold keeps for calls besides the answer (the rewrite)
    calls: list[Call] = field(default_factory=list)

    def add(self, model: str, usage: Usage, kind: CallKind) -> None:
        if usage != Usage():  # a step that made no call (no history, a cached embedding)
            self.calls.append(Call(model, usage, kind))

    def abandoned(self, model: str, attempts: Sequence[Usage]) -> None:
        """Attempts that got no reply (a timeout, a dropped connection), each of which the API
        may have served and billed (rag.retry.Unanswered)."""
        for usage in attempts:
            self.add(model, usage, "stopped")

    def retrieval(self, retrieved: Retrieved) -> None:
        """The question's embedding and a model-based second stage, attempts with no reply too."""
        self.add(retrieved.embedding_model, retrieved.usage, "embed")
        self.abandoned(retrieved.embedding_model, retrieved.embed_abandoned)
        self.add(retrieved.rerank_model, retrieved.rerank_usage, "rerank")
        self.abandoned(retrieved.rerank_model, retrieved.rerank_abandoned)

    def called(self, call: Answered, kind: CallKind) -> None:
        """A call that answered, and its attempts before that which got no reply."""
        self.add(call.model, call.usage, kind)
        self.abandoned(call.model, call.abandoned)

    def failing(self) -> AbstractContextManager[None]:
        """A step whose call may fail: what it lost is added before the error goes on."""
        return charging_lost(self.abandoned)

    def made(self, call: Call | None) -> None:
        """A call priced by its maker (a cached context created, with its storage)."""
        if call is not None:
            self.calls.append(call)


@contextmanager
def settling(ledger: Ledger, hold: Hold, other_usd: float = 0.0) -> Iterator[Spending]:
    """A step's calls, made under `hold` and settled in `ledger` however the step ends: a call
    that failed in the end still adds what its attempts with no reply may have billed
    (`Spending.failing`), and a step that spent nothing releases the hold."""
    spending = Spending(hold, other_usd)
    try:
        with spending.failing():
            yield spending
    finally:
        ledger.settle(spending.hold, spending.calls)


def cited_numbers(answer: str, count: int) -> list[int]:
    """Source numbers the answer cites, in order of first use; numbers outside 1..count are
    ignored (a model may invent them)."""
    seen: dict[int, None] = {}
    for group in CITATION.findall(without_code(answer)):  # "sys.argv[1]" in quoted code cites nothing
        for number in (int(n) for n in group.split(",")):
            if 1 <= number <= count:
                seen.setdefault(number)
    return list(seen)


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= SNIPPET_CHARS:
        return flat
    return flat[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


def citation(passage: Passage) -> Citation:
    return Citation(
        n=passage.n,
        chunk_id=passage.chunk_id,
        source=passage.source,
        page=passage.page,
        heading=passage.heading,
        snippet=snippet(passage.text),
        score=passage.score,
        kind=passage.kind,
        unit=passage.unit,
    )


def passages(hits: Sequence[Hit]) -> list[Passage]:
    return [
        Passage(
            n=n,
            text=h.chunk.text,
            source=h.chunk.source,
            page=h.chunk.page,
            heading=h.chunk.heading,
            chunk_id=h.chunk.id,
            score=h.score,
            kind=h.chunk.kind,
            unit=h.chunk.unit,
        )
        for n, h in enumerate(hits, start=1)
    ]


class Chain:
    def __init__(
        self,
        settings: Settings,
        generator: Generator,
        store: Store | None = None,
        *,
        stores: Stores | None = None,
        retriever: Searcher | None = None,
        router: Router | None = None,
        ledger: Ledger | None = None,
        budget: Budget | None = None,
        cache: AnswerCache | None = None,
        experiments: Experiments | None = None,
        contexts: ContextCache | None = None,
    ) -> None:
        """`store`: the default collection, already open (else `settings.collection`, opened
        from `stores` on first use). The answer cache is off when `settings.answer_cache` is."""
        self.settings = settings
        self.generator = generator
        self.stores = stores or Stores(settings, *([store] if store else []))
        self.retriever: Searcher = retriever or Retriever(
            settings, Embedders(settings), generator, embeddings=EmbeddingCache(settings)
        )
        self.checker = CitationChecker(shared_minilm().embed)  # local and free, whichever generator answers
        self.ledger = ledger or Ledger(settings)
        self.budget = budget or Budget(settings, self.ledger)
        limiter = shared_limiter(settings) if generator.online else None  # the offline answerer has no quota
        self.router = router or Router(settings, generator, Headroom(settings, limiter, self.budget.remaining_usd))
        self.cache = cache or (AnswerCache(settings) if settings.answer_cache else None)
        if experiments is None and settings.experiment is not None:
            experiments = Experiments(settings.experiment, self.ledger.kv)
        self.experiments = experiments
        self.contexts = contexts or ContextCache(settings, generator)
        self._files: dict[str, tuple[int, tuple[str, ...]]] = {}  # by collection: its version and its files

    def end_session(self, session_id: str) -> None:
        """The conversation is over: what the provider holds for it (a cached context) goes now."""
        self.contexts.end(session_id)

    def ask(
        self,
        question: str,
        history: Sequence[Message] = (),
        session_id: str = "",
        options: AskOptions = AskOptions(),  # noqa: B008  (frozen, so a shared default is safe)
    ) -> AnswerRecord:
        *_, done = self.stream(question, history, session_id, options)
        assert isinstance(done, Done)
        return done.record

    def stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        session_id: str = "",
        options: AskOptions = AskOptions(),  # noqa: B008
    ) -> Iterator[Event]:
        """The answer's events. A cache or ledger that fails before any text is produced
        refuses the question with the reason (nothing it would cost can be recorded). In an A/B
        experiment, the session's arm picks the answer model and each answer is logged."""
        self.check_request(question, options)
        answered = False
        arm = None
        if self.experiments is not None:
            options, arm = self.experiments.options(session_id, options)
        try:
            for event in self._within_budget(question, history, session_id, options):
                answered = True
                if isinstance(event, Done) and self.experiments is not None and arm is not None:
                    self.experiments.answered(session_id, arm, event.record)
                yield event
        except StoreUnavailable as exc:
            if answered or exc.documents:  # without the documents' store, no setting answers
                raise
            raise StoreUnavailable(
                f"Not answered: {exc} Without the answer cache and the cost ledger no answer is given, "
                "so no money is spent unrecorded; set GEMRAG_ANSWER_WITHOUT_STORES=true to answer anyway "
                "(uncached, and its cost neither recorded nor held to the budgets)."
            ) from exc

    def check_request(self, question: str, options: AskOptions) -> None:
        """Refuses, before anything is spent, a blank question (nothing but what shows nothing,
        `_UNSEEN`), one with bytes that are no text (`_UNDECODED`: they failed in the cache
        key's hash, a crash), one over `MAX_QUESTION_CHARS` (the HTTP schema's bound, now the
        UI's and the CLI's too), and a source filter naming a file the collection does not
        hold: a blank question or a mistyped file would otherwise come back as "the documents
        do not seem to answer", which sends the asker looking in the wrong place."""
        if _UNSEEN.fullmatch(question):  # "\x00\x00" or "\u200b" shows as blank, and with a key cost an answer
            raise InvalidRequest("The question is empty: ask something about your documents.", field="question")
        if (odd := _UNDECODED.search(question)) is not None:
            byte = ord(odd.group()) - 0xDC00
            what = f"byte 0x{byte:02x}" if 0x80 <= byte <= 0xFF else f"U+{ord(odd.group()):04X} (half a UTF-16 pair)"
            raise InvalidRequest(
                f"The question is not UTF-8 text: {what} after {question[:odd.start()][-20:]!r} is no character; "
                "set the terminal to UTF-8 (LANG=C.UTF-8) and type it again.", field="question")
        if options.top_k is not None and not 1 <= options.top_k <= MAX_K:
            # the doors with a schema refuse it; LangChain's top_k = 0 meant the default 6, -1 no passage
            raise InvalidRequest(f"k must be a whole number from 1 to {MAX_K}, not {options.top_k}.", field="k")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidRequest(f"The question is {len(question):,} characters long; the limit is "
                                 f"{MAX_QUESTION_CHARS:,}: ask about a passage instead of pasting it whole.",
                                 field="question")
        self.check_sources(options)

    def check_sources(self, options: AskOptions) -> None:
        """The files a question is limited to, named as the collection holds them: `rag chat
        --source` checks them once, before the prompt opens (it refused every question)."""
        for source in options.sources:
            if _UNDECODED.search(source):  # Chroma refuses it ("Invalid where clause"): a crash, before
                raise InvalidRequest("A source's name is not UTF-8 text: name the file as ingest stored it and as "
                                     f"an answer's sources show it, each byte that is no character as \\xNN: "
                                     f"'{printable(source)}'.", field="sources")
        if options.sources:
            store = self.stores.get(options.collection)
            missing = store.missing_sources(options.sources)
            if missing:
                names = ", ".join(echoed(m) for m in missing)
                held = next(store.chunks(page_size=1), None)
                example = f" (for example {held.source!r})" if held else ""
                raise InvalidRequest(
                    f"Collection {store.name!r} holds no file {names}: name a file by its path as an answer's "
                    f"sources show it{example}, relative to the folder that was ingested.",
                    field="sources",
                )

    def _within_budget(
        self, question: str, history: Sequence[Message], session_id: str, options: AskOptions
    ) -> Iterator[Event]:
        """The answer, or, when a budget refuses it: a cached answer to the same question (it
        costs nothing, so no budget refuses it), else with `on_budget_spent = "degrade"` the
        answer from Flash-Lite if that fits, else the refusal. A refusal comes before any
        call, so nothing is spent on the way down."""
        try:
            yield from self._stream(question, history, session_id, options)
            return
        except BudgetExceeded as refused:
            degrade = self.settings.on_budget_spent == "degrade" and options.model is None
            why = f"the budget would not cover the usual route ({refused})"
            hit = self._cached(question, history, session_id, options)
            if hit is not None:
                if degrade:  # said as before: the cache is the first way down
                    route = replace(hit.route, decision="budget_degraded",
                                    reason=f"{why}: an earlier answer, from the cache")
                    hit = replace(hit, route=route)
                yield Delta(hit.answer)
                yield Done(hit)
                return
            if not degrade:
                raise
            lite = self.settings.lite_model
            try:
                for event in self._stream(question, history, session_id, replace(options, model=lite)):
                    if isinstance(event, Done):
                        route = replace(event.record.route, kind="degraded", decision="budget_degraded",
                                        reason=f"{why}: answered by {lite} (on_budget_spent = degrade)")
                        event = Done(replace(event.record, route=route))
                    yield event
            except BudgetExceeded:
                raise refused from None

    def _cached(
        self, question: str, history: Sequence[Message], session_id: str, options: AskOptions
    ) -> AnswerRecord | None:
        """A cached answer to the question as asked, recorded as a free hit; None when there is
        none, or when finding it would cost: a follow-up's key is its rewrite, a paid call (see
        `_reserve`), and an answer about an image is never cached."""
        if history or options.images or self.cache is None:
            return None
        store = self.stores.get(options.collection)
        hit = self.cache.get(self.key(store, question, options))
        if hit is None:
            return None
        record = replace(hit, question=question, session_id=session_id, cached=True, latency_s=0.0, ttft_s=0.0)
        self.ledger.record_hit(session_id, record)
        return record

    def _stream(
        self, question: str, history: Sequence[Message], session_id: str, options: AskOptions
    ) -> Iterator[Event]:
        """Money first: a hold covering the rewrite and a Flash-sized answer is set aside before
        any call is sent, raised to the routed answer's worst case (its model, its counted
        prompt, the output bound) before the answer is sent, both checked against the budgets;
        it is settled to what the calls cost however the answer ends: done, stopped by the
        reader, broken off or failed."""
        started = time.perf_counter()
        store = self.stores.get(options.collection)
        query = Query.of(question, self.settings, options)
        reranking = self.reranking(query)
        lite = self.settings.lite_model  # cheap steps: the rewrite and the second ranking stage
        estimate = self.budget.estimate_usd(
            query, history, options.model or self.generator.flash_model, lite, also=[(lite, reranking)]
        )
        rewrite_usd = estimate.other_usd - price_usd(self.settings, lite, reranking)
        spending = Spending(self._reserve(session_id, estimate.usd, rewrite_usd), other_usd=estimate.other_usd)
        try:
            record, key = yield from self._answer(store, question, history, session_id, options, spending, started)
        except BaseException:
            self.ledger.settle(spending.hold, spending.calls)
            raise
        priced = self.ledger.settle(spending.hold, spending.calls)
        # What this turn's calls cost, a cache hit's too: its follow-up was rewritten, and paid for.
        record = replace(record, cost_usd=sum(p.cost_usd for p in priced),
                         cache_saved_usd=sum(p.cache_saved_usd for p in priced))
        if record.cached:
            self._quietly(lambda: self.ledger.record_hit(session_id, record), "record a cache hit")
        else:
            # Not cached: an answer `_answer` gives no key to, or one whose model a momentary quota
            # or budget chose (rag/headroom.py): others deserve the usual route.
            cache = self.cache  # a local, so the lambda sees it narrowed to not None
            if cache and key is not None and not record.route.decision:
                self._quietly(lambda: cache.put(key, record), "cache the answer")
        yield Done(record)

    def _reserve(self, session_id: str, usd: float, rewrite_usd: float) -> Hold:
        """The answer's first hold. A follow-up's refusal says what its cost is for: the
        rewrite into a standalone question is a paid call that must come before the answer
        cache can be looked up, so a spent budget refuses even a follow-up answered before
        (the same question asked on its own is served from the cache: `_within_budget`)."""
        try:
            return self.budget.reserve(session_id, usd)
        except BudgetExceeded as refused:
            if rewrite_usd <= 0:
                raise
            raise BudgetExceeded(
                f"{refused} That is for rewriting this follow-up as a standalone question (about "
                f"{dollars(rewrite_usd)}), a paid call needed before the answer cache can be looked up, "
                f"and for answering it (about {dollars(usd - rewrite_usd)})."
            ) from None

    def _answer(
        self,
        store: Store,
        question: str,
        history: Sequence[Message],
        session_id: str,
        options: AskOptions,
        spending: Spending,
        started: float,
    ) -> collections.abc.Generator[Delta, None, tuple[AnswerRecord, CacheKey | None]]:
        """The answer's text, then its record (a cache hit's, or a new one yet to be priced)
        and the key to cache it under; none when it must not be kept: an answer about an image
        (the key has no image in it), one written with a conversation before it (the prompt
        carries the turns and the key does not: a made-up history could plant an answer that
        every user asking the question alone would then be served), or one ranked in the
        local order because the Gemini reranking failed (a momentary fault: the same question
        later deserves the usual ranking, not this answer until the entry expires). A
        follow-up is still served the answer its standalone question got when asked alone."""
        with spending.failing():
            rewritten = self.rewrite(question, history)
        spending.called(rewritten, "rewrite")
        key = self.key(store, rewritten.question, options)  # reads the corpus version before retrieval
        # An answer about an image is neither served from the cache nor kept: the key has no image in it.
        cacheable = not options.images
        hit = self.cache.get(key) if self.cache and cacheable else None
        if hit is not None:
            yield Delta(hit.answer)
            elapsed = time.perf_counter() - started
            return replace(hit, question=question, session_id=session_id, history=list(history),
                           latency_s=elapsed, ttft_s=elapsed), key
        with spending.failing():
            retrieved = self.retrieve(store, rewritten.question, options)
        spending.retrieval(retrieved)
        routed = self.plan(store, question, rewritten.question, retrieved, history, options, session_id,
                           held_usd=spending.hold.usd - spending.other_usd)
        caching = self.contexts.plan(session_id, routed, options.follow_ups)
        # Before any call: the answer's worst case, and a cached context's creation if one is planned.
        spending.hold = self.budget.hold_answer(spending.hold, routed, spending.other_usd + caching.usd)
        attached = self.contexts.attach(session_id, caching)
        spending.made(attached.call)
        routed = attached.routed
        generated = yield from self.generate(routed, started, spending)
        route = generated.route  # a second stage that fell back says so, as a retired model's note does
        if retrieved.rerank_note:
            route = replace(route, reason=f"{route.reason}; {retrieved.rerank_note}")
        record = AnswerRecord(
            question=question,
            standalone_question=rewritten.question,
            answer=generated.text,
            citations=self.cite(generated.text, generated.passages),
            checks=self.checker.check(generated.text, generated.passages),
            sources=[citation(p) for p in generated.passages],
            route=route,
            usage=rewritten.usage + retrieved.usage + retrieved.rerank_usage + generated.usage,
            latency_s=time.perf_counter() - started,
            ttft_s=generated.ttft_s,
            offline=not self.generator.online,
            session_id=session_id,
            corpus_version=key.corpus_version,
            history=list(history),
        )
        return record, key if cacheable and not history and not retrieved.rerank_note else None

    def key(self, store: Store, standalone_question: str, options: AskOptions) -> CacheKey:
        """The collection and its version, the model policy (the router picks within it), and
        what retrieval will use (see rag.cache.answer_key)."""
        query = Query.of(standalone_question, self.settings, options)
        models = options.model or f"{self.generator.flash_model}|{self.generator.pro_model}"
        return answer_key(self.settings, store.name, store.version, query, models)

    def _quietly(self, step: Callable[[], object], what: str) -> None:
        """A store write after the answer is paid for and shown: if the store is down now, the
        answer stands (its money is settled or journalled) and only this write is lost."""
        try:
            step()
        except StoreUnavailable as exc:
            log.warning("could not %s: %s", what, exc)

    def search(self, text: str, session_id: str = "", options: AskOptions = AskOptions()) -> Retrieved:  # noqa: B008
        """Retrieval alone (an agent's search tool, a LangChain retriever): the collection's
        passages for `text`, best first, with the query embedding and any model-based second
        stage held and settled against the session as an answer's retrieval is."""
        self.check_request(text, options)
        query = Query.of(text, self.settings, options)
        reranking = price_usd(self.settings, self.settings.lite_model, self.reranking(query))
        with settling(self.ledger, self.budget.reserve(session_id, reranking), reranking) as spending:
            retrieved = self.retrieve(self.stores.get(options.collection), text, options)
            spending.retrieval(retrieved)
        return retrieved

    def reranking(self, query: Query) -> Usage:
        """What the second ranking stage will send, estimated; only hybrid mode has one (it
        reorders fused candidates)."""
        return self.retriever.reranker(query.rerank).estimate(query.text) if query.mode == "hybrid" else Usage()

    def rewrite(self, question: str, history: Sequence[Message]) -> Rewritten:
        """A cheap step: on the Flash-Lite model (a generator without one answers with its own)."""
        return standalone(self.generator, question, history, self.settings.lite_model)

    def retrieve(self, store: Store, question: str, options: AskOptions) -> Retrieved:
        return self.retriever.search(store, Query.of(question, self.settings, options))

    def plan(
        self,
        store: Store,
        question: str,
        standalone_question: str,
        retrieved: Retrieved,
        history: Sequence[Message],
        options: AskOptions,
        session_id: str = "",
        held_usd: float = 0.0,
    ) -> Routed:
        """The prompt to send and the model to send it to. A question about a whole document
        gets that document's chunks in order instead of the retrieved ones, if it fits; so does
        a follow-up in a conversation about that whole document (rag.router.document_discussed).
        `held_usd`: what the answer holds for its answer call, Pro's to use if routed there."""
        bound = self.settings.budget_output_tokens  # so the answer's worst-case cost is known
        shown = passages(retrieved.hits)
        # A typo is looked for in the keyword index, which vector search does not load.
        by_keywords = (options.mode or self.settings.retrieval_mode) != "vector"
        misspelt = partial(self.retriever.misspelt_in, store) if by_keywords else None
        elsewhere = mentioned_elsewhere(standalone_question, shown, store.mentions, misspelt)
        unheard = self.retriever.unheard_of(store, plain_words(standalone_question)) if by_keywords else frozenset()
        prompt = answer_prompt(standalone_question, shown, history, retrieved.file_search,
                               mentioned_elsewhere=elsewhere, unheard_of=unheard)
        prompt = replace(prompt, images=options.images, max_output_tokens=bound)
        whole, unfound = None, ""
        if not options.model and retrieved.file_search is None:  # File Search finds no passages here
            whole, unfound = self.whole_document(store, (question, standalone_question), retrieved, history, options)
        return self.router.route(prompt, whole, forced_model=options.model, session_id=session_id,
                                 held_usd=held_usd, unfound=unfound)

    def whole_document(
        self, store: Store, questions: tuple[str, str], retrieved: Retrieved, history: Sequence[Message],
        options: AskOptions,
    ) -> tuple[WholeDocument | None, str]:
        """The whole document the question (or the conversation) is about, if any, and why
        none when it named one that was not found (`rag.router.Wanted`). Named files are
        looked up among all the collection's, or those the source filter allows. `questions`:
        as asked, and standalone (what the whole document is asked)."""
        question, standalone_question = questions
        sources = [h.chunk.source for h in retrieved.hits]
        held = options.sources or self.files(store, question, history)
        wanted = self.router.wanted(question, sources, held)
        document, follow_up = wanted.source, wanted.source is None and not wanted.unfound
        if follow_up:
            document = self.router.document_discussed(history, sources, held)
        if not document:
            return None, wanted.unfound
        chunks = sorted(store.chunks(where={"source": document}), key=lambda c: c.index)
        whole_passages = passages([Hit(c, 0.0) for c in chunks])
        whole_prompt = answer_prompt(standalone_question, whole_passages, history, reusable=True)
        bound = self.settings.budget_output_tokens
        whole_prompt = replace(whole_prompt, images=options.images, max_output_tokens=bound)
        return WholeDocument(document, whole_prompt, follow_up=follow_up), ""

    def files(self, store: Store, question: str, history: Sequence[Message]) -> tuple[str, ...]:
        """The collection's files when the conversation asks for a whole document (else none
        are needed), so the one it names is found even when retrieval missed it: listed once
        per corpus version, since listing reads every chunk's metadata."""
        asked = [question, *(m.text for m in history if m.role == "user")]
        if not any(asks_for_whole_document(text) for text in asked):
            return ()
        version = store.version
        listed = self._files.get(store.name)
        if listed is None or listed[0] != version:
            listed = (version, tuple(sorted(store.sources())))
            self._files[store.name] = listed
        return listed[1]

    def generate(self, routed: Routed, started: float, spending: Spending) -> Streaming:
        """Streams the answer; if Pro is out of quota before any text, Flash answers instead."""
        prompt = routed.prompt
        if routed.route.kind == "pro" and routed.route.model != self.generator.flash_model:
            prompt = replace(prompt, retry_wait_s=self.settings.pro_retry_wait_s)  # Flash stands in sooner
        try:
            return (yield from self._stream_model(prompt, routed.route, started, spending))
        except QuotaExhausted as error:
            if routed.route.kind != "pro":
                raise
            fallback = self.router.fallback(routed.route, error)
            return (yield from self._stream_model(routed.prompt, fallback, started, spending))

    def cite(self, answer: str, shown: Sequence[Passage]) -> list[Citation]:
        return [citation(shown[n - 1]) for n in cited_numbers(answer, len(shown))]

    def _stream_model(
        self, prompt: Prompt, route: Route, started: float, spending: Spending
    ) -> Streaming:
        """One model call, added to `spending` however it ends. An answer that stops after
        text was produced (the reader's Stop, a broken stream, a failure) was billed for its
        prompt and that text: it is charged as "stopped", from the usage the API last
        reported, else as counted locally."""
        pieces: list[str] = []
        usage = Usage()
        served = route.model
        ttft = 0.0
        shown = prompt.passages
        abandoned: tuple[Usage, ...] = ()
        try:
            with spending.failing():  # a call that failed in the end owes its attempts with no reply
                for delta in self.generator.stream(prompt, model=route.model):
                    served = delta.model or served
                    usage = delta.usage if delta.usage != Usage() else usage  # cumulative
                    abandoned = delta.abandoned if delta.final else abandoned
                    numbered = not pieces or (delta.passages is not None and delta.passages != shown)
                    shown = shown if delta.passages is None else delta.passages
                    if delta.text:
                        if not pieces:
                            ttft = time.perf_counter() - started
                        pieces.append(delta.text)
                        yield Delta(delta.text, tuple(citation(p) for p in shown) if numbered else ())
        except BaseException:
            if pieces:
                counted = Usage(prompt.estimated_tokens, estimate_tokens("".join(pieces)))
                spending.add(served, usage if usage != Usage() else counted, "stopped")
            raise
        spending.abandoned(route.model, abandoned)
        spending.add(served, usage, "answer")
        # The provider's own count is exact; the router may only have bounded it.
        exact = replace(route, prompt_tokens=usage.prompt_tokens or route.prompt_tokens)
        return Generated("".join(pieces), usage, self.router.served(exact, served), ttft, shown)
