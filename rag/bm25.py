"""The keyword half of hybrid retrieval: a BM25 index over the same chunks as the vectors.

The index is derived data. It is saved under the data dir keyed by collection, corpus
version and chunk count, so it is rebuilt exactly when ingest changes the corpus and
reloaded (not rebuilt) by every later process while the corpus stays the same. Words are
lower-cased, stop words dropped and Snowball-stemmed, so "retries" finds "retrying".
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.settings import Settings
from rag.store import Store
from rag.text import STOPWORDS
from rag.types import Chunk, Hit

if TYPE_CHECKING:
    import bm25s  # imported where first used (about 0.2 s), not by every importer of this module

_WORD = re.compile(r"(?u)\b\w\w+\b")
_IDS_FILE = "chunk_ids.json"


def _stemmer() -> Any:  # PyStemmer ships no type information
    import Stemmer

    return Stemmer.Stemmer("english")


class Terms:
    """The one tokenizer used for documents and queries alike."""

    def __init__(self) -> None:
        from bm25s.stopwords import STOPWORDS_EN

        # bm25s' list lacks question words ("what", "does"); rag.text's list has them.
        self.stopwords = frozenset(STOPWORDS_EN) | STOPWORDS
        self.stemmer = _stemmer()
        self._lock = threading.Lock()  # a Snowball stemmer object is not thread-safe

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self.stopwords]
        with self._lock:
            return list(self.stemmer.stemWords(words))


@dataclass(frozen=True)
class IndexKey:
    """Which corpus an index was built from; any change means a rebuild."""

    collection: str
    version: int
    count: int

    @property
    def dirname(self) -> str:
        return f"v{self.version}-n{self.count}"


class BM25Index:
    def __init__(self, retriever: bm25s.BM25, ids: list[str], sources: list[str], terms: Terms) -> None:
        self._retriever = retriever
        self.ids = ids
        self.sources = np.array(sources, dtype=object)
        self.terms = terms

    @classmethod
    def build(cls, chunks: Sequence[Chunk], terms: Terms) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25()
        # An empty token list would make bm25s drop the document; keep positions aligned.
        retriever.index([terms(c.text) or [""] for c in chunks], show_progress=False)
        return cls(retriever, [c.id for c in chunks], [c.source for c in chunks], terms)

    def save(self, directory: Path) -> None:
        self._retriever.save(str(directory), show_progress=False)
        (directory / _IDS_FILE).write_text(json.dumps({"ids": self.ids, "sources": list(self.sources)}))

    @classmethod
    def load(cls, directory: Path, terms: Terms) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25.load(str(directory), show_progress=False)
        meta = json.loads((directory / _IDS_FILE).read_text())
        return cls(retriever, meta["ids"], meta["sources"], terms)

    def search(self, query: str, n: int, sources: Sequence[str] = ()) -> list[tuple[str, float]]:
        """(chunk id, score) of the best `n` chunks that share a term with the query."""
        words = self.terms(query)
        if not self.ids or not words or n <= 0:
            return []
        scores = self._retriever.get_scores(words)
        if sources:
            scores = scores * np.isin(self.sources, list(sources))
        # Only the best n need sorting: partition first (a full sort of 100k scores took 10 ms).
        best = np.argpartition(-scores, min(n, len(scores)) - 1)[:n]
        top = best[np.lexsort((best, -scores[best]))]  # by score, ties by position: deterministic
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]


class BM25Search:
    """Finds chunks by keywords in a store, keeping its index in step with the corpus."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.terms = Terms()
        self._loaded: dict[str, tuple[IndexKey, BM25Index]] = {}
        self._lock = threading.Lock()

    def index_for(self, store: Store) -> BM25Index:
        version = store.version
        key = IndexKey(store.name, version, store.count(version))
        with self._lock:
            held = self._loaded.get(store.name)
            if held is None or held[0] != key:
                self._loaded[store.name] = (key, self._load_or_build(store, key))
            return self._loaded[store.name][1]

    def search(self, store: Store, query: str, n: int, sources: Sequence[str] = ()) -> list[Hit]:
        ranked = self.index_for(store).search(query, n, sources)
        if not ranked:
            return []
        chunks = {c.id: c for c in store.get([i for i, _ in ranked])}
        return [Hit(chunks[i], score) for i, score in ranked if i in chunks]

    def _load_or_build(self, store: Store, key: IndexKey) -> BM25Index:
        home = self.settings.path("bm25", key.collection)
        target = home / key.dirname
        if (target / _IDS_FILE).exists():
            return BM25Index.load(target, self.terms)
        index = BM25Index.build(list(store.chunks()), self.terms)
        # Write beside the target and rename, so a concurrent reader never sees half an index.
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=home, prefix=".building-"))
        index.save(staging)
        for old in home.glob("v*"):
            if old.name != key.dirname:
                shutil.rmtree(old, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:  # another process finished the same index first
            shutil.rmtree(staging, ignore_errors=True)
        return index
