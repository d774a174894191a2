"""Finding the chunks that answer a question: vectors, BM25, or both fused.

Small embedders miss exact terms (names, codes, numbers) that BM25 catches, and BM25 misses
paraphrases that vectors catch; hybrid mode fuses the two, by reciprocal rank fusion (no
weight to tune) or by a convex combination of normalised scores (one weight, tuned on the
test set); `settings.fusion` chooses, and the evaluation decides the default. Convex
fusion takes a third ranking too, the chunks' best lines (`rag.bm25`), at `line_weight`.
Each mode over-fetches `top_k * overfetch` candidates; the second ranking stage
(`rag.rerank`) reorders the best `rerank_depth` of them, and the list is cut to `top_k`,
each chunk shown with the start of its first sentence (`rag.sentences`).
MMR, when asked for, picks that cut for diversity instead of rank alone. `per_file` keeps
each file's best passage only, so the cut ranks files (BEIR ranks documents this way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rag.answer import AskOptions, Mode, RerankMode
from rag.bm25 import BM25Search, with_chunks
from rag.embedcache import EmbeddingCache
from rag.providers import Embedders
from rag.providers.base import Generator
from rag.rerank import Reranked, Reranker, make_reranker
from rag.sentences import as_shown
from rag.settings import Settings
from rag.store import Store
from rag.types import Embedded, FileSearchTool, Hit, Usage

Ranking = Sequence[tuple[str, float]]  # (chunk id, score), best first
MAX_POOL_DOUBLINGS = 6  # one per file reads at most 64 times the usual pool


@dataclass(frozen=True)
class Query:
    """One retrieval request with every default already resolved from settings."""

    text: str
    mode: Mode
    top_k: int
    mmr: bool
    rerank: RerankMode = "none"
    sources: tuple[str, ...] = ()
    per_file: bool = False  # at most one hit per source file, its best

    @classmethod
    def of(cls, text: str, settings: Settings, options: AskOptions) -> Query:
        return cls(
            text=text,
            mode=options.mode or settings.retrieval_mode,
            top_k=options.top_k or settings.top_k,
            mmr=settings.mmr if options.mmr is None else options.mmr,
            rerank=options.rerank or settings.rerank,
            sources=options.sources,
            per_file=options.per_file,
        )


@dataclass(frozen=True)
class Retrieved:
    """Ranked hits (best first) and what embedding the query cost, with which model."""

    hits: list[Hit]
    usage: Usage
    embedding_model: str = ""
    rerank_usage: Usage = field(default_factory=Usage)  # a model-based second stage's call, charged like any other
    rerank_model: str = ""
    rerank_note: str = ""  # why the second stage fell back, if it did
    rerank_abandoned: tuple[Usage, ...] = ()  # what its unanswered attempts may have billed (rag.rerank)
    file_search: FileSearchTool | None = None  # backend "file-search": the model searches there itself
    embed_abandoned: tuple[Usage, ...] = ()  # what the question's unanswered embedding attempts may have billed


class Searcher(Protocol):
    """What the chain retrieves with: `Retriever` over the local collection, or the File
    Search backend's (rag.filesearch), which leaves the searching to the answering model."""

    def search(self, store: Store, query: Query) -> Retrieved: ...

    def reranker(self, mode: RerankMode) -> Reranker: ...

    def misspelt_in(self, store: Store, term: str, sources: Sequence[str]) -> bool:
        """Whether those files of the collection hold `term` one typo away
        (rag.keyterms.mentioned_elsewhere)."""
        ...

    def unheard_of(self, store: Store, words: Iterable[str]) -> frozenset[str]:
        """Those of `words` that the collection holds in no form (`AnswerTask.unheard_of`)."""
        ...


def rrf(rankings: Sequence[Sequence[str]], k: int) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank of d), ranks from 1."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)


def convex(rankings: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]) -> list[tuple[str, float]]:
    """Convex combination of min-max normalised scores (Bruch, Gai and Ingber, TOIS 2023):
    score(d) = sum of weight * normalised score in each ranking; absent from a ranking = 0.
    Unlike RRF it keeps how far apart the scores are, at the price of one tuned weight."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        values = [score for _, score in ranking]
        low, span = min(values), max(values) - min(values)
        for item, score in ranking:
            scores[item] = scores.get(item, 0.0) + weight * ((score - low) / span if span else 1.0)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)


def mmr(query: np.ndarray, candidates: np.ndarray, n: int, lam: float) -> list[int]:
    """Maximal marginal relevance: greedily pick the candidate most similar to the query and
    least similar to those already picked. Vectors are L2-normalised; returns row indices."""
    if len(candidates) == 0:
        return []
    relevance = candidates @ query
    similarity = candidates @ candidates.T
    picked = [int(np.argmax(relevance))]
    while len(picked) < min(n, len(candidates)):
        redundancy = similarity[:, picked].max(axis=1)
        gain = lam * relevance - (1 - lam) * redundancy
        gain[picked] = -np.inf
        picked.append(int(np.argmax(gain)))
    return picked


def distinct(hits: Sequence[Hit]) -> list[Hit]:
    """Each text once, at its best rank (white space aside): a copy of a file (a man page
    installed under two names, as graphviz-doc's dot.1.pdf and neato.1.pdf; "report (1).pdf"
    beside "report.pdf") filled two of the six places with one passage (blind set on
    graphviz-doc, 2026-12-07), where another could have stood."""
    return _first_of_each(hits, lambda hit: " ".join(hit.chunk.text.split()))


def best_per_file(hits: Sequence[Hit]) -> list[Hit]:
    """The first (best-ranked) hit of each source file, in rank order: a file's best passage
    stands for it, as a document's best chunk does in chunked BEIR runs (MaxP)."""
    return _first_of_each(hits, lambda hit: hit.chunk.source)


def _first_of_each(hits: Sequence[Hit], key: Callable[[Hit], str]) -> list[Hit]:
    """The first hit of each `key`, in rank order."""
    firsts: dict[str, Hit] = {}
    for hit in hits:
        firsts.setdefault(key(hit), hit)
    return list(firsts.values())


def _normalised(vectors: Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    normalised: np.ndarray = array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)
    return normalised


def source_filter(sources: Sequence[str]) -> dict[str, Any] | None:
    """The Chroma `where` clause restricting a search to some source paths."""
    if not sources:
        return None
    if len(sources) == 1:
        return {"source": sources[0]}
    return {"source": {"$in": list(sources)}}


class Retriever:
    """Searches any collection: its question is embedded by the embedder that built it
    (`embedders`), whatever generator writes the answer; `generator` serves the model-based
    second ranking stage."""

    def __init__(
        self,
        settings: Settings,
        embedders: Embedders,
        generator: Generator,
        bm25: BM25Search | None = None,
        embeddings: EmbeddingCache | None = None,
    ) -> None:
        self.settings = settings
        self.embedders = embedders
        self.generator = generator
        self.bm25 = bm25 or BM25Search(settings)
        self.embeddings = embeddings
        self._rerankers: dict[str, Reranker] = {}

    def search(self, store: Store, query: Query) -> Retrieved:
        reranker = self.reranker(query.rerank)
        needs_vector = query.mode != "bm25" or query.mmr
        embedded = self.embed(store, query.text) if needs_vector else None
        usage, model = (embedded.usage, embedded.model) if embedded else (Usage(), "")
        # The second stage reorders fused candidates, which only hybrid mode has.
        reranks = query.mode == "hybrid" and reranker.name != "none"
        depth = max(query.top_k, self.settings.rerank_depth) if reranks else query.top_k
        pool = query.top_k * self.settings.overfetch
        candidates = self._candidates(store, query, embedded, pool, depth)
        if query.per_file:
            candidates = self._with_files(store, query, embedded, pool, depth, candidates)
        reranked = Reranked(candidates)
        if reranks and len(candidates) > 1:
            reranked = reranker.rerank(query.text, candidates[:depth], store)
            candidates = reranked.hits + candidates[depth:]
        candidates = distinct(candidates)
        if query.per_file:
            candidates = best_per_file(candidates)
        if query.mmr and embedded and len(candidates) > query.top_k:
            candidates = self._diversify(store, embedded.vectors[0], candidates, query.top_k)
        return Retrieved(
            [Hit(as_shown(h.chunk), h.score) for h in candidates[: query.top_k]],
            usage, model, reranked.usage, reranked.model, reranked.note, reranked.abandoned,
            embed_abandoned=embedded.abandoned if embedded else (),
        )

    def _with_files(
        self, store: Store, query: Query, embedded: Embedded | None, pool: int, depth: int, candidates: list[Hit]
    ) -> list[Hit]:
        """One per file: a long file can fill the pool with its own chunks, so the pool doubles
        until the candidates hold top_k files, the rankings run dry (a source filter, BM25's
        matching chunks), the pool holds the whole collection, or after `MAX_POOL_DOUBLINGS`
        (a collection of fewer files than top_k would otherwise be read whole). All before
        the second stage, which then runs once: a model-based one is a paid call."""
        stored: int | None = None  # counted once, when first needed: each count reads the version
        for _ in range(MAX_POOL_DOUBLINGS):
            if len({h.chunk.source for h in candidates}) >= query.top_k:
                break
            stored = store.count() if stored is None else stored
            if pool >= stored:
                break
            pool *= 2
            more = self._candidates(store, query, embedded, pool, depth)
            if len(more) == len(candidates):
                break
            candidates = more
        return candidates

    def _candidates(self, store: Store, query: Query, embedded: Embedded | None, pool: int, depth: int) -> list[Hit]:
        """The first stage: `pool` candidates from each ranking the mode uses, fused in hybrid
        mode."""
        vector_hits = (
            store.query(embedded.vectors[0], pool, where=source_filter(query.sources))
            if embedded and query.mode != "bm25"
            else []
        )
        if query.mode == "hybrid":
            # Only the candidates something still looks at are read: all of them for MMR or
            # for one per file (a file's further chunks drop out), else the second stage's
            # depth, or the cut, and as many again for the copies of a text (`distinct`).
            keep = None if query.mmr or query.per_file else depth + query.top_k
            return self._hybrid(store, query, pool, vector_hits, keep)
        if query.mode == "bm25":
            return self.bm25.search(store, query.text, pool, query.sources)
        return vector_hits

    def misspelt_in(self, store: Store, term: str, sources: Sequence[str]) -> bool:
        return self.bm25.misspelt_in(store, term, sources)

    def unheard_of(self, store: Store, words: Iterable[str]) -> frozenset[str]:
        return self.bm25.unheard_of(store, words)

    def reranker(self, mode: RerankMode) -> Reranker:
        if mode not in self._rerankers:
            self._rerankers[mode] = make_reranker(self.settings, self.generator, mode)
        return self._rerankers[mode]

    def embed(self, store: Store, text: str) -> Embedded:
        """With the collection's embedder, through the query-embedding cache when there is
        one: a repeated question costs no call."""
        embedder = self.embedders.get(store.embedding_id)
        if self.embeddings is None:
            return embedder.embed_query(text)
        return self.embeddings.embed_query(embedder, text)

    def _hybrid(self, store: Store, query: Query, n: int, vector_hits: Sequence[Hit], keep: int | None) -> list[Hit]:
        """The vector ranking fused with BM25's ranking of chunks and, for convex fusion (RRF
        has no weight to give it), of their best lines, on ids and scores; then the first
        `keep` (all if None) read from the store in one call, less those the vector search
        returned (at 100k chunks a read costs about 0.8 ms and 0.05 ms an id; the keyword
        rankings name some 60 ids, of which the second stage keeps 30)."""
        vector = [(h.chunk.id, h.score) for h in vector_hits]
        ranked = self.bm25.rank(store, query.text, n, query.sources)
        lines = (
            self.bm25.rank_lines(store, query.text, n, query.sources)
            if self.settings.fusion == "convex" and self.settings.line_weight > 0
            else []
        )
        kept = self._fuse(vector, ranked, lines)[:keep]
        chunks = {h.chunk.id: h.chunk for h in vector_hits}
        chunks |= {c.id: c for c in store.get([i for i, _ in kept if i not in chunks])}
        if any(i not in chunks for i, _ in kept):
            # The keyword index names a kept chunk the store no longer holds (an ingest in
            # another process deleted it and has not bumped the version yet): every chunk of
            # the rankings is read, the missing ones dropped and the rest fused again, so the
            # cut stays full. One missing below the cut only shifts the normalised scores of
            # the others, until the version bump rebuilds the index.
            unread = dict.fromkeys(i for i, _ in [*ranked, *lines] if i not in chunks)  # Chroma refuses an id twice
            chunks |= {c.id: c for c in store.get(list(unread))}
            ranked, lines = ([(i, score) for i, score in ranking if i in chunks] for ranking in (ranked, lines))
            kept = self._fuse(vector, ranked, lines)[:keep]
        return with_chunks(kept, chunks)

    def _fuse(self, vector: Ranking, ranked: Ranking, lines: Ranking) -> list[tuple[str, float]]:
        """Convex at the three rankings' weights, or RRF of the first two."""
        if self.settings.fusion != "convex":
            return rrf([[i for i, _ in vector], [i for i, _ in ranked]], self.settings.rrf_k)
        alpha = self.settings.fusion_alpha
        return convex([vector, ranked, lines], [alpha, 1.0 - alpha, self.settings.line_weight])

    def _diversify(self, store: Store, query_vector: list[float], candidates: list[Hit], n: int) -> list[Hit]:
        vectors = store.vectors([h.chunk.id for h in candidates])
        present = [h for h in candidates if h.chunk.id in vectors]
        order = mmr(
            _normalised(query_vector),
            _normalised([vectors[h.chunk.id] for h in present]),
            n,
            self.settings.mmr_lambda,
        )
        return [present[i] for i in order]
