"""Retrieval latency of vector, BM25 and hybrid search (first stage alone, and hybrid with the
local second ranking stage) as the collection grows, the query embedding on its own, and
what the indexes cost in memory and on disk.

Collections are synthetic: chunk-sized texts from the corpus generator (so BM25 sees real
term statistics) with random unit vectors, because embedding 100k chunks with the offline
model would take about 1.6 hours on two cores. Random vectors are the hard case for an HNSW
graph (no clusters to exploit), so vector latencies here are if anything pessimistic.
Queries are real: embedded once with MiniLM, then handed to the retriever precomputed, so
the search latencies exclude the query embedding, which is measured separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.corpus_gen import queries as make_queries
from bench.corpus_gen import synthetic_texts
from bench.harness import (
    Figure,
    Latencies,
    Profile,
    Table,
    dir_size_mb,
    fresh_dir,
    in_fresh_process,
    ratio,
)
from rag.answer import Mode, RerankMode
from rag.providers.minilm import DIM
from rag.providers.offline import OfflineProvider
from rag.types import Embedded, Usage

EMBEDDING_ID = f"bench-random:{DIM}"
CHUNKS_PER_SOURCE = 20
CHUNKS_PER_PAGE = 3  # of the PDF half of the sources: the local stage looks up neighbouring pages


def synthetic_place(n: int) -> tuple[str, int, int | None]:
    """The file, position in it and page of the n-th synthetic chunk: every other source is a
    PDF whose chunks sit three to a page, as a mixed folder's would, so the second stage
    looks up neighbouring pages (with random texts and vectors, a page and its neighbour are
    rarely both among the 30 candidates: this times the lookup, not a lift)."""
    source, index = divmod(n, CHUNKS_PER_SOURCE)
    if source % 2 == 0:
        return f"doc-{source:05d}.md", index, None
    return f"doc-{source:05d}.pdf", index, index // CHUNKS_PER_PAGE + 1


# name -> (mode, second stage, whether hybrid fuses the line ranking): the default last but
# one, and beside it the same without lines, the in-run baseline for what the lines add.
VARIANTS: dict[str, tuple[Mode, RerankMode, bool]] = {
    "vector": ("vector", "none", True),
    "bm25": ("bm25", "none", True),
    "hybrid": ("hybrid", "none", True),
    "hybrid+local": ("hybrid", "local", True),
    "hybrid+local, no lines": ("hybrid", "local", False),
}
DEFAULT, WITHOUT_LINES = "hybrid+local", "hybrid+local, no lines"
WARMUP = 5
BUILD_BATCH = 2_000  # below Chroma's maximum batch size


class PrecomputedQueries(OfflineProvider):
    """The offline provider with query vectors looked up instead of computed, for the
    collection of random vectors it is registered as the embedder of."""

    embedding_id = EMBEDDING_ID

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        super().__init__()
        self.vectors = vectors

    def embed_query(self, text: str) -> Embedded:
        return Embedded([self.vectors[text]], Usage(), "precomputed")


@dataclass(frozen=True)
class QueryEmbeddings:
    vectors: dict[str, list[float]]
    seconds: list[float]


def embed_queries_child(queries: Sequence[str]) -> QueryEmbeddings:
    provider = OfflineProvider()
    provider.embed_query("warm up the model")
    vectors, seconds = {}, []
    for text in queries:
        started = time.perf_counter()
        vectors[text] = provider.embed_query(text).vectors[0]
        seconds.append(time.perf_counter() - started)
    return QueryEmbeddings(vectors, seconds)


def build_collection(data: Path, size: int, seed: int = 3) -> float:
    """Writes `size` synthetic chunks with random unit vectors; returns seconds taken.
    Uses Chroma's `add` directly: building is not what this benchmark measures."""
    from rag.settings import Settings
    from rag.store import Store
    from rag.types import Chunk

    store = Store(Settings(data_dir=data, api_key=None), EMBEDDING_ID, f"bench-{size}")
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for start in range(0, size, BUILD_BATCH):
        texts = synthetic_texts(min(BUILD_BATCH, size - start), seed=seed + start)
        vectors = rng.standard_normal((len(texts), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        places = [synthetic_place(start + i) for i in range(len(texts))]
        chunks = [
            Chunk(id=f"c{start + i}", text=text, source=source, index=index, start=0, end=len(text),
                  content_hash=f"h{start + i}", page=page)
            for i, (text, (source, index, page)) in enumerate(zip(texts, places, strict=True))
        ]
        store.collection.add(
            ids=[c.id for c in chunks], embeddings=vectors, documents=texts,
            metadatas=[c.metadata() for c in chunks],
        )
    store.bump_version()
    return time.perf_counter() - started


def turns(variants: Sequence[str], queries: int, warmup: int) -> list[tuple[bool, str, int]]:
    """The order of the timed searches: (timed, variant, query index). The variants take turns,
    the first one rotating, so a burst of load from elsewhere on a shared machine hits them
    alike, not whichever ran during it; and in one turn each searches another query, a
    `queries / len(variants)` apart, so none finds the caches warm from the same question
    just before. Each variant searches every query once, timed, after `warmup` untimed turns."""
    stride = max(1, queries // len(variants))
    order: list[tuple[bool, str, int]] = []
    for n, turn in enumerate([*range(warmup), *range(queries)]):
        first = turn % len(variants)
        for k in [*range(first, len(variants)), *range(first)]:
            order.append((n >= warmup, variants[k], (turn + k * stride) % queries))
    return order


@dataclass(frozen=True)
class Searched:
    seconds: dict[str, list[float]]  # variant -> one latency per query
    rerank_seconds: list[float]  # the local second stage alone, on each query's 30 fused candidates
    rerank_pageless_seconds: list[float]  # the same stage without the neighbouring-page lift, alternated with it
    bm25_build_s: float
    lines_build_s: float
    rss_before_mb: float
    rss_after_mb: float


def search_child(data: Path, size: int, vectors: dict[str, list[float]]) -> Searched:
    """In a fresh process: open the collection, build BM25 on first use, then time every
    query in every variant."""
    import psutil

    from rag.bm25 import LINES
    from rag.providers import Embedders
    from rag.rerank import LocalReranker
    from rag.retrieval import Query, Retriever
    from rag.settings import Settings
    from rag.store import Store

    rss = psutil.Process().memory_info
    settings = Settings(data_dir=data, api_key=None)
    precomputed = PrecomputedQueries(vectors)
    retriever = Retriever(settings, Embedders(settings, precomputed), precomputed)
    before = rss().rss / 2**20
    store = Store(settings, EMBEDDING_ID, f"bench-{size}")
    texts = list(vectors)
    started = time.perf_counter()
    retriever.bm25.index_for(store)
    bm25_build = time.perf_counter() - started
    started = time.perf_counter()
    retriever.bm25.index_for(store, LINES)
    lines_build = time.perf_counter() - started
    no_lines = settings.model_copy(update={"line_weight": 0.0})
    retrievers = {True: retriever, False: Retriever(no_lines, Embedders(no_lines, precomputed), precomputed,
                                                     bm25=retriever.bm25)}
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for timed, name, i in turns(list(VARIANTS), len(texts), WARMUP):
        mode, rerank, lines = VARIANTS[name]
        started = time.perf_counter()
        # As a question is searched (`Stores.get`): the corpus version read once, then
        # every step of the search at that version.
        retrievers[lines].search(store.pinned(), Query(texts[i], mode, settings.top_k, mmr=False, rerank=rerank))
        if timed:
            seconds[name].append(time.perf_counter() - started)
    rerankers = {"with": retriever.reranker("local"),
                 "without": LocalReranker(settings.local_rerank.model_copy(update={"neighbours": 0.0}))}
    rerank_seconds: dict[str, list[float]] = {"with": [], "without": []}
    for n, text in enumerate(texts):
        fused = retriever.search(store, Query(text, "hybrid", settings.rerank_depth, mmr=False, rerank="none")).hits
        for name in ("with", "without") if n % 2 == 0 else ("without", "with"):  # neither always runs first
            started = time.perf_counter()
            rerankers[name].rerank(text, fused, store)
            rerank_seconds[name].append(time.perf_counter() - started)
    return Searched(seconds, rerank_seconds["with"], rerank_seconds["without"], bm25_build, lines_build, before,
                    rss().rss / 2**20)


def run(profile: Profile, work: Path, emit: Callable[[Table], None]) -> None:
    queries = make_queries(profile.retrieval_queries)
    embedded = in_fresh_process(embed_queries_child, queries, timeout_s=profile.timeout_s)
    embedding = Latencies.of(embedded.seconds)
    table = Table("retrieval", "query embedding alone", f"{len(queries)} generated queries, offline MiniLM, model warm")
    table.add(
        Figure("query embedding p50", embedding.p50_ms, "ms", "OfflineProvider.embed_query, one query at a time"),
        Figure("query embedding p95", embedding.p95_ms, "ms", "added to vector and hybrid search in a real question"),
    )
    emit(table)
    p95: dict[int, dict[str, float]] = {}
    for size in profile.retrieval_chunks:
        data = fresh_dir(work / f"store-{size}")
        build_s = build_collection(data, size)
        searched = in_fresh_process(search_child, data, size, embedded.vectors, timeout_s=profile.timeout_s)
        table = Table(
            "retrieval",
            f"search latency at {size:,} chunks",
            f"synthetic chunk texts with RANDOM unit vectors ({DIM} dims); {len(queries)} real MiniLM queries "
            f"(precomputed, so excluded); top_k 6, over-fetch 5; hybrid+local reranks the fused top 30; "
            f"{WARMUP} warm-up turns; the variants take turns, each on another query",
        )
        p95[size] = {}
        for name in VARIANTS:
            latency = Latencies.of(searched.seconds[name])
            p95[size][name] = latency.p95_ms
            target = ("≤ 50 ms", latency.p95_ms <= 50) if name.startswith("hybrid") and size >= 100_000 else ("", None)
            table.add(
                Figure(f"{name} p50", latency.p50_ms, "ms",
                       "Retriever.search on a pinned store (version read once, as per question), query vector given"),
                Figure(f"{name} p95", latency.p95_ms, "ms", "", *target),
                Figure(f"{name} p99", latency.p99_ms, "ms", ""),
            )
        with_lines, without = Latencies.of(searched.seconds[DEFAULT]), Latencies.of(searched.seconds[WITHOUT_LINES])
        table.add(
            Figure("line ranking adds, p50", with_lines.p50_ms - without.p50_ms, "ms",
                   f"{DEFAULT} p50 minus {WITHOUT_LINES} p50: the chunks' lines searched and fused"),
            Figure("line ranking adds, p95", with_lines.p95_ms - without.p95_ms, "ms", "the same at p95"),
        )
        added, pageless = Latencies.of(searched.rerank_seconds), Latencies.of(searched.rerank_pageless_seconds)
        table.add(
            Figure("local rerank stage p50", added.p50_ms, "ms", "what the second stage adds per question: "
                   "LocalReranker.rerank on the 30 fused candidates, timed alone"),
            Figure("local rerank stage p95", added.p95_ms, "ms", ""),
            Figure("neighbouring pages add, p50", added.p50_ms - pageless.p50_ms, "ms",
                   "the stage's p50 minus its p50 without the lift from neighbouring PDF pages, timed alternately"),
        )
        table.add(
            Figure("build collection", build_s, "s", "Chroma add of texts, metadata and vectors (not measured work)"),
            Figure("BM25 index build", searched.bm25_build_s, "s",
                   "first keyword search after a corpus change: read chunks, tokenise, index, save"),
            Figure("line index build", searched.lines_build_s, "s",
                   "the same for the chunks' lines (hybrid's third ranking), on the first hybrid search"),
            Figure("index memory", searched.rss_after_mb - searched.rss_before_mb, "MB",
                   "RSS growth of a fresh process from opening the collection to after all queries"),
            Figure("Chroma on disk", dir_size_mb(data / "chroma"), "MB", "vectors, HNSW graph, texts, metadata"),
            Figure("BM25 on disk", dir_size_mb(data / "bm25"), "MB", "saved keyword index"),
            Figure("line index on disk", dir_size_mb(data / "bm25-lines"), "MB", "saved index of the chunks' lines"),
        )
        emit(table)
    if len(p95) >= 2:
        emit(scaling_table(p95))


def scaling_table(p95: dict[int, dict[str, float]]) -> Table:
    small, large = min(p95), max(p95)
    table = Table("retrieval", "scaling of p95 latency with collection size", f"{small:,} → {large:,} chunks")
    for name in VARIANTS:
        table.add(Figure(f"{name} p95 {large:,} / {small:,}", ratio(p95[large][name], p95[small][name]), "×",
                         f"{large // small}× the chunks"))
    return table
