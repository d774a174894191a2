"""The keyword half of hybrid retrieval: a BM25 index over the same chunks as the vectors.

The index is derived data. It is saved under the data dir keyed by collection, corpus
version and chunk count, so it is rebuilt exactly when ingest changes the corpus and
reloaded (not rebuilt) by every later process while the corpus stays the same. Words are
lower-cased, stop words dropped and Snowball-stemmed, so "retries" finds "retrying".

A second index holds each chunk's lines (long lines split into sentences): a manual's
option list or reference table answers in one line ("--interior  use interior point
method"), which a 200-token chunk of twenty such lines dilutes. Searched for lines holding
at least half the question's terms, it gives each chunk its best line's score, a third
ranking for hybrid fusion (`settings.line_weight`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.acronyms import defined, spelled_out
from rag.keyterms import file_names, key_terms
from rag.settings import Settings
from rag.store import Store
from rag.text import STOPWORDS, TYPO_MIN_CHARS, folded, may_be_misspelt, stem_words, typo_of
from rag.types import Chunk, Hit

if TYPE_CHECKING:
    import bm25s  # imported where first used (about 0.2 s), not by every importer of this module

_WORD = re.compile(r"(?u)\b\w\w+\b")
# A term is a word of two characters or more, or a one-letter command-line flag standing alone
# ("-d", "-H"): a manual's option list says "-d Enable debug output", and "what does -d do?"
# found nothing by keyword (new-user walkthrough, socat). Not a letter after a word or a dash
# ("x-d", "--d") nor before one ("-dx" is the word "dx").
_TERM = re.compile(r"(?u)(?<![\w-])-[^\W\d_](?![\w-])|\b\w\w+\b")
_IDS_FILE = "chunk_ids.json"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`-])")
LONG_LINE_CHARS = 200  # a longer line is prose wrapped by nobody: split into sentences
LINE_MIN_SHARE = 0.5  # of the question's distinct terms a line must hold to count: one shared word is chance


def _bm25s() -> Any:  # bm25s ships no type information
    """bm25s, with its logger back at WARNING: importing it sets that logger to DEBUG, so
    its "Building index from tokens" passed every handler's level (the chat UI printed it
    at each first question on a collection)."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class Terms:
    """The one tokenizer used for documents and queries alike."""

    def __init__(self) -> None:
        from bm25s.stopwords import STOPWORDS_EN

        # bm25s' list lacks question words ("what", "does"); rag.text's list has them.
        self.stopwords = frozenset(STOPWORDS_EN) | STOPWORDS

    # of the terms an index holds (`IndexKey.dirname`): 2 folds accents (`rag.text.folded`), 3 keeps one-letter
    # flags, 4 keeps the acronyms its texts define (`rag.acronyms`), 5 spells a Greek letter standing alone,
    # 6 adds a name's words (`_parts`), 7 the names of a chunk's file (`file_names`)
    version = 7

    def __call__(self, text: str) -> list[str]:
        """A text's terms, each word followed by the words of a name written with
        underscores (`_parts`): "max_arity" is also "max" and "arity", so that a user who
        types "max arity" for GNU Prolog's max_arity flag finds it."""
        return stem_words(t for w in self.words(text) for t in (w, *_parts(w)) if t not in self.stopwords)

    def asked(self, query: str, held: Container[str]) -> list[str]:
        """A query's terms: a name written with underscores is followed by its words only
        where the index does not hold the name itself ("glp_simplex" typed of a manual read
        without its underscores). Where it does, its words would rank every passage naming
        glp_something: an example program of 20 GLPK calls took the first place from the
        routine's own page (glpk gl15)."""
        terms = []
        for word in self.words(query):
            terms += stem_words([word])
            if terms[-1] not in held:
                terms += stem_words(p for p in _parts(word) if p not in self.stopwords)
        return terms

    def words(self, text: str) -> list[str]:
        return [w for w in _TERM.findall(folded(text).lower()) if w not in self.stopwords]


def _parts(word: str) -> list[str]:
    """The words of a name written with underscores, of two characters or more: none for
    a plain word or "__init__"."""
    return [part for part in word.split("_") if len(part) > 1] if "_" in word.strip("_") else []


@dataclass(frozen=True)
class IndexKey:
    """Which corpus an index was built from; any change means a rebuild."""

    collection: str
    version: int
    count: int

    @property
    def dirname(self) -> str:
        """Named by the terms' version too, so an index of an earlier tokenisation is built
        again rather than searched with queries tokenised another way."""
        return f"v{self.version}-n{self.count}-t{Terms.version}"


class BM25Index:
    def __init__(
        self, retriever: bm25s.BM25, ids: list[str], sources: list[str], terms: Terms,
        acronyms: Sequence[tuple[str, tuple[str, ...]]] = (),
    ) -> None:
        self._retriever = retriever
        self.ids = ids
        self.sources = np.array(sources, dtype=object)
        self.terms = terms
        self.acronyms = acronyms  # (acronym, its words' terms) as the texts define them (`rag.acronyms`)

    @classmethod
    def build(cls, chunks: Sequence[Chunk], terms: Terms) -> BM25Index:
        """An entry per chunk: its text, after the names its file's name gives (`file_names`)."""
        named = {source: file_names(source) for source in {c.source for c in chunks}}
        return cls.of([f"{named[c.source]} {c.text}".lstrip() for c in chunks], [c.id for c in chunks],
                      [c.source for c in chunks], terms)

    @classmethod
    def build_lines(cls, chunks: Sequence[Chunk], terms: Terms) -> BM25Index:
        """One entry per line of each chunk (`line_units`), under the chunk's id."""
        units = [(unit, c) for c in chunks for unit in line_units(c.text)]
        return cls.of([u for u, _ in units], [c.id for _, c in units], [c.source for _, c in units], terms)

    @classmethod
    def of(cls, texts: Sequence[str], ids: list[str], sources: list[str], terms: Terms) -> BM25Index:
        """An index of `texts`, each found under its id (a chunk's, for its text or a line)."""
        bm25s = _bm25s()

        # "lucene" gives a term an entry lacks no score: the line ranking sums postings alone.
        retriever = bm25s.BM25(method="lucene")
        # An empty token list would make bm25s drop the document; keep positions aligned.
        retriever.index([terms(t) or [""] for t in texts], show_progress=False)
        return cls(retriever, ids, sources, terms, defined(texts, terms))

    def save(self, directory: Path) -> None:
        self._retriever.save(str(directory), show_progress=False)
        (directory / _IDS_FILE).write_text(json.dumps({"ids": self.ids, "sources": list(self.sources),
                                                       "acronyms": self.acronyms}))

    @classmethod
    def load(cls, directory: Path, terms: Terms) -> BM25Index:
        bm25s = _bm25s()

        retriever = bm25s.BM25.load(str(directory), show_progress=False)
        meta = json.loads((directory / _IDS_FILE).read_text())
        acronyms = [(acronym, tuple(words)) for acronym, words in meta["acronyms"]]
        return cls(retriever, meta["ids"], meta["sources"], terms, acronyms)

    def search(self, query: str, n: int, sources: Sequence[str] = ()) -> list[tuple[str, float]]:
        """(chunk id, score) of the best `n` chunks that share a term with the query."""
        words = self.query_terms(query)
        if not self.ids or not words or n <= 0:
            return []
        scores = self._in_sources(self._retriever.get_scores(words), sources)
        return [(self.ids[i], float(scores[i])) for i in _best_first(scores, n)]

    def search_best_units(self, query: str, n: int, sources: Sequence[str] = ()) -> list[tuple[str, float]]:
        """(id, score of its best entry) of the best `n` ids, counting only entries that hold
        at least `LINE_MIN_SHARE` of the query's distinct terms; for an index of lines, whose
        entries sharing an id (its chunk) lie next to each other (`build_lines`).

        Scores and terms held are counted from the terms' postings (`np.bincount`): at 100k
        chunks the index holds 1.1M lines, and a dense score array per term (bm25s'
        `get_scores`) made this ranking cost 2.7x as much. bm25s' default scoring ("lucene")
        gives a term an entry lacks no score, so the postings are the whole score."""
        words = list(dict.fromkeys(self.query_terms(query)))
        if not self.ids or not words or n <= 0:
            return []
        postings, vocab = self._retriever.scores, self._retriever.vocab_dict
        spans = [(postings["indptr"][t], postings["indptr"][t + 1]) for t in (vocab[w] for w in words if w in vocab)]
        if not spans:
            return []
        where = np.concatenate([postings["indices"][start:end] for start, end in spans])
        values = np.concatenate([postings["data"][start:end] for start, end in spans])
        scores = np.bincount(where, weights=values, minlength=len(self.ids))
        held = np.bincount(where, minlength=len(self.ids))  # an entry is in a term's postings once
        entries = np.flatnonzero(held >= LINE_MIN_SHARE * len(words))
        if sources:
            entries = entries[np.isin(self.sources[entries], list(sources))]
        if not len(entries):
            return []
        owners = self._owners[entries]  # ascending, as the entries are
        firsts = np.flatnonzero(np.concatenate(([True], owners[1:] != owners[:-1])))
        best = np.maximum.reduceat(scores[entries], firsts)  # each id's best entry
        return [(self.ids[entries[firsts[i]]], float(best[i])) for i in _best_first(best, n)]

    def query_terms(self, query: str) -> list[str]:
        """The query's terms, a name or identifier the index lacks read as the term it holds
        one typo away (`rag.text.typo_of`; the one in most entries if several):
        "glp_smplex" finds what "glp_simplex" does, "Mathrog" what "MathProg" does. Only
        the words of the question's key terms (`rag.keyterms`) that `may_be_misspelt`: a
        common word the corpus lacks is another word, not a typo ("reader" is not
        "header", "Ministry" not "ministerial"). Then the acronyms the corpus defines whose
        words the query spells out ("requests per minute" adds "rpm": `rag.acronyms`)."""
        vocab = self._retriever.vocab_dict
        words = self.terms.asked(query, vocab)
        if not all(w in vocab for w in words):
            names = self._may_be_misspelt(key_terms(query))
            words = [self._respelt(w) or w if w not in vocab and w in names else w for w in words]
        return words + spelled_out(words, self.acronyms)

    def held_misspelt(self, term: str, sources: Sequence[str]) -> bool:
        """Whether entries of `sources` hold `term` once each of its words the index lacks is
        read as the term one typo away (`query_terms`): "mathrog", "subprocss.run". A word
        that may not be misspelt (`may_be_misspelt`) is never respelt: "asy.studio" is not
        "asy.stdio"."""
        vocab = self._retriever.vocab_dict
        words = self.terms(term)
        typed = self._may_be_misspelt([term])
        respelt = [w if w in vocab else self._respelt(w) if w in typed else None for w in words]
        changed = [r for w, r in zip(words, respelt, strict=True) if r != w]
        return bool(changed) and all(r is not None and self._held(r, sources) for r in changed)

    def unheard_of(self, words: Iterable[str]) -> frozenset[str]:
        """Those of `words` that no entry holds in any form (none of their terms, stemmed,
        is indexed): "gym" in a staff handbook that never names one."""
        vocab = self._retriever.vocab_dict
        return frozenset(w for w in words if (terms := self.terms(w)) and not any(t in vocab for t in terms))

    def _may_be_misspelt(self, names: Iterable[str]) -> set[str]:
        """The index terms of the words of `names` that `may_be_misspelt`: the only ones a
        typo is looked for in (`query_terms`, `held_misspelt`)."""
        return {stem for name in names for w in _WORD.findall(name) if may_be_misspelt(w) for stem in self.terms(w)}

    def _held(self, term: str, sources: Sequence[str]) -> bool:
        postings = self._retriever.scores
        t = self._retriever.vocab_dict[term]
        entries = postings["indices"][postings["indptr"][t] : postings["indptr"][t + 1]]
        return bool(np.isin(self.sources[entries], list(sources)).any())

    def _respelt(self, word: str) -> str | None:
        """The index's term `word` is a typo of, the one in most entries if several. Its
        neighbours are filed under `word`'s own pairs (`_spellings`) while it has four
        characters or more and they five."""
        if len(word) < TYPO_MIN_CHARS - 1:
            return None
        near = {
            w for n in range(len(word) - 1, len(word) + 2) for key in ((n, word[:2]), (n, "$" + word[-2:]))
            for w in self._spellings.get(key, ()) if typo_of(word, w)
        }
        indptr, vocab = self._retriever.scores["indptr"], self._retriever.vocab_dict
        return max(sorted(near), key=lambda w: indptr[vocab[w] + 1] - indptr[vocab[w]], default=None)

    @cached_property
    def _spellings(self) -> dict[tuple[int, str], list[str]]:
        """The index's terms of `TYPO_MIN_CHARS` or more by length and first two letters, and
        by length and last two ("$" before them): one typo leaves one pair or the other as it
        was, so a term's neighbours are among those filed under its own pairs (for a term of
        four characters, only as long as the neighbours have five: swapping the middle two
        of "abcd" changes both pairs)."""
        filed: dict[tuple[int, str], list[str]] = {}
        for w in self._retriever.vocab_dict:
            if len(w) >= TYPO_MIN_CHARS:
                filed.setdefault((len(w), w[:2]), []).append(w)
                filed.setdefault((len(w), "$" + w[-2:]), []).append(w)
        return filed

    def _in_sources(self, scores: np.ndarray, sources: Sequence[str]) -> np.ndarray:
        """The scores with every entry outside `sources` (when given) set to 0."""
        return scores * np.isin(self.sources, list(sources)) if sources else scores

    @cached_property
    def _owners(self) -> np.ndarray:
        """For each entry, the number of the run of same-id entries it belongs to."""
        ids = np.array(self.ids, dtype=object)
        return np.concatenate(([0], np.cumsum(ids[1:] != ids[:-1]))).astype(np.int32)


def with_chunks(ranked: Sequence[tuple[str, float]], chunks: Mapping[str, Chunk]) -> list[Hit]:
    """A ranking of ids as hits, in order; an id whose chunk was not read (deleted since the
    index was built) is left out."""
    return [Hit(chunks[i], score) for i, score in ranked if i in chunks]


def _best_first(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the `n` highest positive scores, best first, ties by position:
    deterministic, also among ties at the cut (which `argpartition` alone picks arbitrarily).
    Only those above the cut are sorted, a partition first (a full sort of 100k scores took
    10 ms); the tied ones at the cut follow in position order, as many as fit."""
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.intp)
    kth = max(float(scores[np.argpartition(-scores, min(n, len(scores)) - 1)[:n]].min()), 0.0)
    above = np.flatnonzero(scores > kth)
    above = above[np.lexsort((above, -scores[above]))]
    tied = np.flatnonzero(scores == kth)[: n - len(above)] if kth > 0 else np.zeros(0, dtype=np.intp)
    return np.concatenate((above, tied))


def line_units(text: str) -> list[str]:
    """A chunk's lines, each line longer than `LONG_LINE_CHARS` split into its sentences."""
    units: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if len(line) > LONG_LINE_CHARS:
            units += [s for s in _SENTENCE_END.split(line) if s.strip()]
        elif line:
            units.append(line)
    return units


@dataclass(frozen=True)
class IndexKind:
    """One of a collection's keyword indexes: the folder it is saved in and how it is built."""

    folder: str
    build: Callable[[Sequence[Chunk], Terms], BM25Index]


CHUNKS = IndexKind("bm25", BM25Index.build)
LINES = IndexKind("bm25-lines", BM25Index.build_lines)


def remove_indexes(settings: Settings, collection: str) -> None:
    """Deletes every saved keyword index of a collection (when ingest drops it to rebuild)."""
    for kind in (CHUNKS, LINES):
        shutil.rmtree(settings.path(kind.folder, collection), ignore_errors=True)


class BM25Search:
    """Finds chunks by keywords in a store, keeping its indexes (chunks, lines) in step with
    the corpus."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.terms = Terms()
        self._loaded: dict[tuple[str, str], tuple[IndexKey, BM25Index]] = {}
        self._lock = threading.Lock()
        # One lock per collection and kind: building one index (seconds at 100k chunks)
        # does not hold up searches of the others.
        self._building: dict[tuple[str, str], threading.Lock] = {}

    def index_for(self, store: Store, kind: IndexKind = CHUNKS) -> BM25Index:
        version = store.version
        key = IndexKey(store.name, version, store.count(version))
        slot = (store.name, kind.folder)
        with self._lock:
            building = self._building.setdefault(slot, threading.Lock())
        with building:
            held = self._loaded.get(slot)
            if held is None or held[0] != key:
                self._loaded[slot] = (key, self._load_or_build(store, key, kind))
            return self._loaded[slot][1]

    def search(self, store: Store, query: str, n: int, sources: Sequence[str] = ()) -> list[Hit]:
        """The best `n` chunks, read from the store."""
        ranked = self.rank(store, query, n, sources)
        return with_chunks(ranked, {c.id: c for c in store.get([i for i, _ in ranked])})  # get([]) reads nothing

    def rank(self, store: Store, query: str, n: int, sources: Sequence[str] = ()) -> list[tuple[str, float]]:
        """(chunk id, score) of the best `n` chunks. Ids only: hybrid search fuses rankings of
        ids and reads only the chunks it keeps, in one store call (`Retriever`)."""
        return self.index_for(store).search(query, n, sources)

    def rank_lines(self, store: Store, query: str, n: int, sources: Sequence[str] = ()) -> list[tuple[str, float]]:
        """(chunk id, score) of the `n` chunks whose best line (holding half the query's
        terms or more) scores highest, with that line's score. Ids only, as `rank`."""
        return self.index_for(store, LINES).search_best_units(query, n, sources)

    def misspelt_in(self, store: Store, term: str, sources: Sequence[str]) -> bool:
        """Whether those files hold `term` one typo away (`BM25Index.held_misspelt`)."""
        return self.index_for(store).held_misspelt(term, sources)

    def unheard_of(self, store: Store, words: Iterable[str]) -> frozenset[str]:
        """Those of `words` that no chunk of the collection holds (`BM25Index.unheard_of`)."""
        return self.index_for(store).unheard_of(words)

    def _load_or_build(self, store: Store, key: IndexKey, kind: IndexKind) -> BM25Index:
        home = self.settings.path(kind.folder, key.collection)
        target = home / key.dirname
        if (target / _IDS_FILE).exists():
            return BM25Index.load(target, self.terms)
        index = kind.build(list(store.chunks()), self.terms)
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
