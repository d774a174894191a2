"""One answer, start to finish: rewrite → retrieve → prompt → route → generate → cite.

Each step is its own method so the flow reads top-down in `stream`, and so the answer cache
can go right after the rewrite (it keys on the standalone question) and the cost ledger
right after generation. The chain never asks which provider it holds: the offline default
and Gemini answer the same prompts.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace

from rag.answer import AnswerRecord, AskOptions, Citation, Delta, Done, Event, Route
from rag.errors import EmptyCollection, QuotaExhausted
from rag.prompts import answer_prompt
from rag.providers.base import Provider
from rag.retrieval import Query, Retrieved, Retriever
from rag.rewrite import Rewritten, standalone
from rag.router import Routed, Router, WholeDocument
from rag.settings import Settings
from rag.store import Store, list_collections
from rag.types import Hit, Message, Passage, Prompt, Usage

SNIPPET_CHARS = 280
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Generated:
    text: str
    usage: Usage
    route: Route  # the route actually taken: a fallback replaces the planned one
    ttft_s: float


def cited_numbers(answer: str, count: int) -> list[int]:
    """Source numbers the answer cites, in order of first use; numbers outside 1..count are
    ignored (a model may invent them)."""
    seen: dict[int, None] = {}
    for group in _CITATION.findall(answer):
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
        )
        for n, h in enumerate(hits, start=1)
    ]


class Chain:
    def __init__(self, settings: Settings, provider: Provider, store: Store | None = None) -> None:
        self.settings = settings
        self.provider = provider
        self.retriever = Retriever(settings, provider)
        self.router = Router(settings, provider)
        self._default_collection = store.name if store else settings.collection
        self._stores: dict[str, Store] = {store.name: store} if store else {}
        self._lock = threading.Lock()

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
        started = time.perf_counter()
        store = self.store(options.collection)
        corpus_version = store.version  # before retrieval: the version this answer is computed from
        rewritten = self.rewrite(question, history)
        retrieved = self.retrieve(store, rewritten.question, options)
        routed = self.plan(store, question, rewritten.question, retrieved, history, options)
        generated = yield from self.generate(routed, started)
        yield Done(
            AnswerRecord(
                question=question,
                standalone_question=rewritten.question,
                answer=generated.text,
                citations=self.cite(generated.text, routed.prompt.passages),
                sources=[citation(p) for p in routed.prompt.passages],
                route=generated.route,
                usage=rewritten.usage + retrieved.usage + generated.usage,
                latency_s=time.perf_counter() - started,
                ttft_s=generated.ttft_s,
                offline=not self.provider.online,
                session_id=session_id,
                corpus_version=corpus_version,
                history=list(history),
            )
        )

    def store(self, collection: str | None = None) -> Store:
        """The collection to answer from; refuses one that nothing was ingested into."""
        name = collection or self._default_collection
        with self._lock:
            if name not in self._stores and name in list_collections(self.settings):
                self._stores[name] = Store(self.settings, self.provider.embedding_id, name)
            store = self._stores.get(name)
        if store is None or store.count() == 0:
            raise EmptyCollection(f"Collection {name!r} is empty: nothing ingested yet: run python -m ingest PATH")
        return store

    def rewrite(self, question: str, history: Sequence[Message]) -> Rewritten:
        return standalone(self.provider, question, history, self.provider.flash_model)

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
    ) -> Routed:
        """The prompt to send and the model to send it to. A question about a whole document
        gets that document's chunks in order instead of the retrieved ones, if it fits."""
        prompt = answer_prompt(standalone_question, passages(retrieved.hits), history)
        document = self.router.document_wanted(question, [h.chunk.source for h in retrieved.hits])
        whole = None
        if document and not options.model:
            chunks = sorted(store.chunks(where={"source": document}), key=lambda c: c.index)
            whole_passages = passages([Hit(c, 0.0) for c in chunks])
            whole = WholeDocument(document, answer_prompt(standalone_question, whole_passages, history))
        return self.router.route(prompt, whole, forced_model=options.model)

    def generate(self, routed: Routed, started: float) -> Generator[Delta, None, Generated]:
        """Streams the answer; if Pro is out of quota before any text, Flash answers instead."""
        try:
            return (yield from self._stream_model(routed.prompt, routed.route, started))
        except QuotaExhausted as error:
            if routed.route.kind != "pro":
                raise
            fallback = self.router.fallback(routed.route, error)
            return (yield from self._stream_model(routed.prompt, fallback, started))

    def cite(self, answer: str, shown: Sequence[Passage]) -> list[Citation]:
        return [citation(shown[n - 1]) for n in cited_numbers(answer, len(shown))]

    def _stream_model(self, prompt: Prompt, route: Route, started: float) -> Generator[Delta, None, Generated]:
        pieces: list[str] = []
        usage = Usage()
        ttft = 0.0
        for delta in self.provider.stream(prompt, model=route.model):
            if delta.text:
                if not pieces:
                    ttft = time.perf_counter() - started
                pieces.append(delta.text)
                yield Delta(delta.text)
            if delta.final:
                usage = delta.usage
        # The provider's own count is exact; the router may only have bounded it.
        counted = replace(route, prompt_tokens=usage.prompt_tokens or route.prompt_tokens)
        return Generated("".join(pieces), usage, counted, ttft)
