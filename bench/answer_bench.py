"""Answering: the chain's time to first token and total time over the provider's own on
the very same prompt (the chain's overhead), for Flash and for an escalated Pro route, the
offline path, what a cache hit costs, and what the longest questions a user may send cost
offline (`worst_case_table`).

The fake Gemini server answers after a fixed time to first token and streams at a fixed
token rate, so whatever the chain adds (rewrite, query embedding, retrieval, prompt,
routing's token count, citations) is the difference between the two measurements. Each
question is asked once through `Chain.stream`; then the prompt the chain built for it is
sent straight to `provider.stream`: same text, same model, same server.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pydantic import SecretStr

from bench.corpus_gen import generate, queries
from bench.harness import Figure, Profile, Table, fresh_dir, ratio
from rag.answer import MAX_QUESTION_CHARS, AnswerRecord, AskOptions, Delta, Done
from rag.chain import Chain
from rag.providers.base import Embedder, Generator
from rag.settings import Settings
from rag.store import Store
from rag.types import Prompt, StreamDelta

TTFT_S = 0.30  # the fake model's time to first token
TOKENS_PER_S = 150.0
COLLECTION = "bench-answer"
OVERHEAD_TARGET_MS = 50.0
# Questions at the length cap made of one piece repeated, then an ending: shapes that once
# sent a question parser quadratic (a dotted number after each "is", an extension after
# each space, one dotted number of thousands of parts before a name with a digit, a summary
# cue repeated), beside ordinary words repeated.
WORST_PIECES = {"1.1 ": "", " .ab": "", "is 1.5 ": "", "1.": "1a1", "tl;dr ": "", "ab" + "1" * 50 + "-2 ": "",
                "Retry 429 ": "", "os.path ": "", "word ": ""}
WORST_TARGET = 5.0  # a question at the cap may cost this many typical ones, not more


@dataclass(frozen=True)
class Streamed:
    ttft_s: float
    total_s: float


@dataclass(frozen=True)
class Sample:
    chain: Streamed
    provider: Streamed  # the same prompt sent to the provider alone
    overhead_s: float  # of the chain's TTFT, the part spent outside the provider's stream
    steps_s: dict[str, float]  # the chain's steps before generation, timed one by one
    route: str


class StreamProbe:
    """The provider, passed through, noting when the chain calls `stream` and when the
    first text comes back: the chain's own share of its TTFT is then exact for each
    question, not a difference of two noisy runs."""

    def __init__(self, provider: Generator) -> None:
        self.provider = provider
        self.called = self.first = 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self.provider, name)

    @property
    def generator(self) -> Generator:
        """This probe as the chain's Generator: `stream` is its own, the rest passes through
        `__getattr__` (which a type checker does not count towards a protocol)."""
        return cast("Generator", self)

    def stream(self, prompt: Prompt, model: str | None = None) -> Iterator[StreamDelta]:
        self.called, self.first = time.perf_counter(), 0.0
        for delta in self.provider.stream(prompt, model):
            if delta.text and not self.first:
                self.first = time.perf_counter()
            yield delta


def stream_chain(chain: Chain, question: str) -> tuple[Streamed, AnswerRecord]:
    started = time.perf_counter()
    first = 0.0
    for event in chain.stream(question):
        if isinstance(event, Delta) and not first:
            first = time.perf_counter() - started
        if isinstance(event, Done):
            return Streamed(first, time.perf_counter() - started), event.record
    raise RuntimeError("the chain ended without a Done event")


def sample(chain: Chain, probe: StreamProbe, question: str) -> Sample:
    through_chain, record = stream_chain(chain, question)
    inside_provider = probe.first - probe.called
    options = AskOptions()
    clock = time.perf_counter()
    store = chain.stores.get()
    rewritten = chain.rewrite(question, ())
    steps = {"rewrite": time.perf_counter() - clock}
    clock = time.perf_counter()
    retrieved = chain.retrieve(store, rewritten.question, options)
    steps["retrieve"] = time.perf_counter() - clock
    clock = time.perf_counter()
    routed = chain.plan(store, question, rewritten.question, retrieved, (), options)
    steps["prompt + route"] = time.perf_counter() - clock
    started = time.perf_counter()
    first = 0.0
    for delta in probe.provider.stream(routed.prompt, model=routed.route.model):
        if delta.text and not first:
            first = time.perf_counter() - started
    alone = Streamed(first, time.perf_counter() - started)
    return Sample(through_chain, alone, through_chain.ttft_s - inside_provider, steps, record.route.kind)


def samples(chain: Chain, probe: StreamProbe, questions: Sequence[str]) -> list[Sample]:
    """The first question warms up what every later one reuses (BM25 index, connections,
    model sessions) and is not counted."""
    sample(chain, probe, "warm up: " + questions[0])
    return [sample(chain, probe, q) for q in questions]


def median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) * 1000


def route_table(label: str, measured: Sequence[Sample], setup: str) -> Table:
    chain_ttft = median_ms([s.chain.ttft_s for s in measured])
    provider_ttft = median_ms([s.provider.ttft_s for s in measured])
    overhead = median_ms([s.overhead_s for s in measured])
    routes = ", ".join(sorted({s.route for s in measured}))
    table = Table("answer", f"{label}: chain over provider (route recorded: {routes})", setup)
    table.add(
        Figure("provider TTFT", provider_ttft, "ms", "provider.stream on the chain's own prompt (median)"),
        Figure("chain TTFT", chain_ttft, "ms", "Chain.stream to its first Delta (median)"),
        Figure("chain overhead on TTFT", overhead, "ms",
               "per question: chain TTFT − the provider's own TTFT inside that same call (median)",
               f"≤ {OVERHEAD_TARGET_MS:.0f} ms", overhead <= OVERHEAD_TARGET_MS),
        Figure("provider total", median_ms([s.provider.total_s for s in measured]), "ms", "whole stream (median)"),
        Figure("chain total", median_ms([s.chain.total_s for s in measured]), "ms", "to the Done event (median)"),
        Figure("chain total / provider total",
               ratio(statistics.median(s.chain.total_s for s in measured),
                     statistics.median(s.provider.total_s for s in measured)), "×", ""),
    )
    for step in measured[0].steps_s:
        table.add(Figure(f"step: {step}", median_ms([s.steps_s[step] for s in measured]), "ms",
                         "the same step called on its own, after the chain (median)"
                         + ("; its query embedding now comes from the embedding cache" if step == "retrieve" else "")))
    return table


def cache_table(settings: Settings, chain: Chain, repeats: int) -> Table:
    """The end-to-end repeat goes through the chain; the lookup is the cache on its own.
    Both questions are new to this data dir, so neither is a hit from an earlier table."""
    from rag.cache import AnswerCache, cache_key
    from rag.prompts import PROMPT_VERSION

    question, unseen = queries(2, seed=37)
    _, record = stream_chain(chain, question)
    repeat = [stream_chain(chain, question) for _ in range(repeats)]
    served_cached = sum(r.cached for _, r in repeat)
    cache = AnswerCache(settings)
    key = cache_key(question, record.corpus_version, record.route.model, PROMPT_VERSION, AskOptions())
    cache.put(key, record)
    lookups = []
    for _ in range(max(repeats, 20)):
        started = time.perf_counter()
        hit = cache.get(key)
        lookups.append(time.perf_counter() - started)
    lookup_ms = median_ms(lookups)
    table = Table("answer", "answer cache", f"SQLite cache under the data dir; {repeats} repeats of one question")
    table.add(
        Figure("cache lookup (hit)", lookup_ms, "ms", "AnswerCache.get of a stored answer, in-process (median)",
               "≤ 10 ms", hit is not None and lookup_ms <= 10),
        Figure("repeated question end to end", median_ms([s.total_s for s, _ in repeat]), "ms",
               f"Chain.stream of the same question again; {served_cached} of {repeats} served from the cache"),
        Figure("first answer end to end", median_ms([stream_chain(chain, unseen)[0].total_s]), "ms",
               "for comparison: a question the cache has not seen"),
    )
    return table


def worst_case_table(chain: Chain, typical: Sequence[str]) -> Table:
    """The slowest of `WORST_PIECES`' questions at `MAX_QUESTION_CHARS`, each answered
    offline end to end, against the median typical question: an API open to many users must
    not let one request cost seconds of CPU."""
    stream_chain(chain, "warm up: " + typical[0])
    usual = statistics.median(stream_chain(chain, q)[0].total_s for q in typical)
    worst = {piece: stream_chain(chain, _at_cap(piece, ending))[0].total_s for piece, ending in WORST_PIECES.items()}
    slowest = max(worst, key=worst.__getitem__)
    times = ", ".join(f"{piece.strip()[:8]!r} {seconds * 1000:.0f}" for piece, seconds in worst.items())
    table = Table("answer", "the longest questions, offline",
                  f"{len(WORST_PIECES)} questions of {MAX_QUESTION_CHARS:,} characters, each one piece repeated; "
                  f"{len(typical)} typical questions not asked before; the offline provider")
    table.add(
        Figure("typical question end to end", usual * 1000, "ms", "median"),
        Figure("slowest question at the cap", worst[slowest] * 1000, "ms", f"by piece, ms: {times}"),
        Figure("slowest at the cap / typical", ratio(worst[slowest], usual), "×", "",
               f"≤ {WORST_TARGET:g}", worst[slowest] <= WORST_TARGET * usual),
    )
    return table


def _at_cap(piece: str, ending: str) -> str:
    """A question of `MAX_QUESTION_CHARS` characters: `piece` repeated, then `ending`."""
    return ("how do I " + piece * MAX_QUESTION_CHARS)[: MAX_QUESTION_CHARS - 1 - len(ending)] + ending + "?"


def ingest_store(settings: Settings, provider: Embedder, corpus_root: Path) -> Store:
    from ingest.pipeline import ingest_paths

    ingest_paths([corpus_root], settings, provider, collection=COLLECTION)
    return Store(settings, provider.embedding_id, COLLECTION)


def run(profile: Profile, work: Path, emit: Callable[[Table], None]) -> None:
    from rag.providers.gemini import GeminiProvider
    from rag.providers.offline import OfflineProvider
    from rag.testing.fake_gemini import FakeGemini

    corpus = generate(fresh_dir(work / "corpus"), profile.answer_chunks)
    questions = queries(profile.answer_repeats, seed=29)
    pro_questions = queries(profile.answer_repeats, seed=31)  # unseen: a cache must not answer them
    setup = (f"fake Gemini: TTFT {TTFT_S * 1000:.0f} ms, {TOKENS_PER_S:.0f} tokens/s; {len(questions)} questions over "
             f"a {corpus.sections}-chunk generated corpus; hybrid retrieval, top_k 6")
    with FakeGemini(ttft_s=TTFT_S, tokens_per_s=TOKENS_PER_S) as fake:
        settings = Settings(data_dir=fresh_dir(work / "gemini"), api_key=SecretStr("bench-key"), base_url=fake.url,
                            tier="unlimited", collection=COLLECTION)
        gemini = GeminiProvider(settings)
        probe = StreamProbe(gemini)
        chain = Chain(settings, probe.generator, ingest_store(settings, gemini, corpus.root))
        emit(route_table("Flash", samples(chain, probe, questions), setup))
        pro_settings = settings.model_copy(update={"pro_threshold_tokens": 10})
        pro_chain = Chain(pro_settings, probe.generator, chain.stores.get())
        emit(route_table("escalated to Pro (threshold lowered to 10 tokens)",
                         samples(pro_chain, probe, pro_questions), setup))
        emit(cache_table(settings, chain, profile.answer_repeats))

    offline_settings = Settings(data_dir=fresh_dir(work / "offline"), api_key=None, collection=COLLECTION)
    offline_provider = OfflineProvider()
    offline = StreamProbe(offline_provider)
    store = ingest_store(offline_settings, offline_provider, corpus.root)
    offline_chain = Chain(offline_settings, offline.generator, store)
    emit(route_table("offline (MiniLM + extractive answerer)",
                     samples(offline_chain, offline, questions),
                     f"no server: {len(questions)} questions, the same corpus, the offline provider"))
    emit(worst_case_table(offline_chain, queries(profile.answer_repeats, seed=37)))  # unseen: no cache hit
