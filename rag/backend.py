"""What one process shares across every session and request: the stores, the ledger and its
budget, the chain over them. A UI or a server builds it once and hands each part to whoever
needs it, instead of reaching through the chain for them.

`settings.backend` is decided here and nowhere else: "gemrag" retrieves from the local
collection, "file-search" leaves retrieval to Gemini's File Search tool (rag.filesearch);
the chain above either is the same."""

from __future__ import annotations

from dataclasses import dataclass

from rag.budget import Budget
from rag.chain import Chain
from rag.costs import Ledger
from rag.embedcache import EmbeddingCache
from rag.providers import Embedders, get_generator
from rag.providers.base import Embedder, Generator
from rag.providers.minilm import shared_minilm
from rag.retrieval import Retriever, Searcher
from rag.settings import BackendName, Settings
from rag.stores import Stores, embedder_for
from rag.text import word_lists


@dataclass(frozen=True)
class Backend:
    settings: Settings
    generator: Generator
    embedders: Embedders
    stores: Stores
    ledger: Ledger
    budget: Budget
    chain: Chain

    @classmethod
    def build(
        cls, settings: Settings, generator: Generator | None = None, *, ledger: Ledger | None = None,
        stores: Stores | None = None,
    ) -> Backend:
        """Each part from the settings unless given: `generator` (tests pass a slowed or fake
        one), `ledger` (the server's counts what it charges), `stores` (opened collections)."""
        generator = generator or get_generator(settings)
        embedders = Embedders(settings)
        stores = stores or Stores(settings)
        ledger = ledger or Ledger(settings)
        budget = Budget(settings, ledger)
        retriever = searcher(settings, settings.backend, embedders, generator)
        chain = Chain(settings, generator, stores=stores, retriever=retriever, ledger=ledger, budget=budget)
        return cls(settings, generator, embedders, stores, ledger, budget, chain)

    def warm_up(self) -> None:
        """Loads the local model now (about 0.3 s) rather than in the first question: every
        answer's citations are checked with it, whichever generator answers, and offline it
        also embeds the question and picks the sentences quoted. The word lists a question
        typed without capitals is read with (`rag.text.word_lists`) load too."""
        shared_minilm().warm_up()
        word_lists()

    def embedder_for(self, collection: str) -> Embedder:
        """The embedder new documents for `collection` are embedded with (see rag.stores)."""
        return embedder_for(self.settings, collection, self.embedders)


def searcher(settings: Settings, backend: BackendName, embedders: Embedders, generator: Generator) -> Searcher:
    """What answers retrieve with under `backend` (the evaluation builds one per backend it compares)."""
    if backend == "file-search":
        from rag.filesearch import FileSearchRetriever, FileSearchStores

        return FileSearchRetriever(FileSearchStores(settings))
    return Retriever(settings, embedders, generator, embeddings=EmbeddingCache(settings))
