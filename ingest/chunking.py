"""Cut sections into chunks that fit the active embedder's window, with stable ids.

Token-aware: sizes are counted with the offline model's WordPiece tokenizer. Gemini's
tokenizer is only reachable over the network, so for Gemini profiles WordPiece counts are
a local stand-in; they run close to Gemini's counts on English prose, and the Gemini
profile leaves ample room below its 2,048-token window. Each section is tokenised once,
its lines and sentences are counted from where its word pieces start, chunks are packed
from those counts, and each chunk carries its word pieces to the offline embedder, which
then does not tokenise it again (`rag.providers.wordpieces`).

Structure-aware: a chunk never spans two sections (PDF pages, Markdown sections); inside a
section it breaks at line and sentence ends, and only a single sentence longer than the
whole budget is cut between words. Overlap repeats the last whole sentences of a chunk
(up to the profile's overlap) at the start of the next. A chunk that starts mid-sentence
(a PDF's line) keeps the words before it that start the sentence (`Chunk.lead`, shown with
it, neither embedded nor indexed: rag.sentences); one that starts inside a fenced code block
keeps the block's opening fence line, so it is read as code.

Bounded: every chunk is within the profile's token budget and its character cap, also for
text a tokenizer cannot see into (a run without spaces, which WordPiece counts as one
token): such runs are cut into pieces the embedder reads as words.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Protocol

from ingest.loaders import LoadError, Section
from rag.errors import ConfigError
from rag.filetypes import marks_headings
from rag.providers.wordpieces import BERT_RUN, BERT_WORD_CHAR, Tokenized, WordPieces
from rag.sentences import code_blocks, fence_lead, lead
from rag.settings import ChunkProfile
from rag.types import Chunk, contextual_text

_UNIT_BREAK = re.compile(r"\n+|(?<=[.!?])[ \t]+")
_WORD = BERT_RUN  # a word is what BERT reads as one: a chunk never ends inside one


class WordPieceCounter(Protocol):
    """What the chunker measures with (MiniLM's WordPiece tokenizer)."""

    def count_tokens(self, text: str) -> int: ...

    def word_pieces(self, text: str) -> WordPieces: ...


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    tokens: int
    run: int = -1  # a piece of an over-long run: where the run starts (see Chunker.cut)

    @property
    def whole_words(self) -> bool:
        """Not a piece of a run cut between letters, whose word pieces differ from those
        the run has inside its section."""
        return self.run < 0


@dataclass(frozen=True)
class SizedChunk:
    chunk: Chunk
    tokens: int
    ids: array[int] | None = field(default=None, compare=False)  # word pieces of its embedded text, when known

    @property
    def embedded_text(self) -> str:
        """What the embedder reads, with its word pieces when the chunker knows them."""
        text = self.chunk.embedded_text
        return text if self.ids is None else Tokenized(text, self.ids)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def chunk_id(source: str, digest: str, occurrence: int) -> str:
    """Same content at the same place gives the same id; `occurrence` tells apart identical
    chunks repeated within one file."""
    return hashlib.sha256(f"{source}\0{digest}\0{occurrence}".encode()).hexdigest()[:32]


class TooManyChunks(LoadError):
    """A file of more chunks than `max_chunks_per_file`: refused for what it holds, so unchanged
    it is refused again, and the next run need not read it (ingest.manifest, `refusals`)."""


class Chunker:
    def __init__(self, profile: ChunkProfile, tokenizer: WordPieceCounter, max_chunks: int | None = None) -> None:
        if not 0 <= profile.overlap_tokens < profile.size_tokens:
            raise ConfigError(
                f"Chunk overlap ({profile.overlap_tokens} tokens) must be at least 0 and below the "
                f"chunk size ({profile.size_tokens} tokens): check chunk_profiles in your settings."
            )
        self.size = profile.size_tokens
        self.overlap = profile.overlap_tokens
        self.max_chars = profile.max_chars
        self.word_chars = min(profile.max_word_chars or profile.max_chars, profile.max_chars)
        self._long_run = re.compile(rf"{BERT_WORD_CHAR}{{{self.word_chars + 1},}}")
        self.max_chunks = max_chunks
        self.tokenizer = tokenizer
        self.context_tokens = profile.context_tokens

    def chunk(self, source: str, sections: Sequence[Section]) -> list[SizedChunk]:
        """Raises LoadError when the file makes more than `max_chunks` chunks: text that
        long is rarely a document (a 5 MB run of one letter), and embedding it is not free."""
        out: list[SizedChunk] = []
        seen: Counter[str] = Counter()
        marked = marks_headings(source)
        for section in sections:
            context, context_ids = self.fit_context(section.context)
            pieces = self.tokenizer.word_pieces(section.text)
            blocks = code_blocks(section.text)
            for span in self.pack(self.units(section.text, pieces)):
                if self.max_chunks is not None and len(out) >= self.max_chunks:
                    raise TooManyChunks(
                        f"yields more than {self.max_chunks:,} chunks (max_chunks_per_file): is it really a "
                        "document? Raise GEMRAG_MAX_CHUNKS_PER_FILE to ingest it anyway."
                    )
                text = section.text[span.start : span.end]
                digest = content_hash(contextual_text(context, text))
                chunk = Chunk(
                    id=chunk_id(source, digest, seen[digest]),
                    text=text,
                    source=source,
                    index=len(out),
                    start=section.offset + span.start,
                    end=section.offset + span.end,
                    content_hash=digest,
                    page=section.page,
                    heading=section.heading,
                    kind=section.kind,
                    unit=section.unit,
                    context=context,
                    lead=fence_lead(blocks, span.start) or lead(section.text, span.start, marked),
                )
                seen[digest] += 1
                ids = context_ids + pieces.between(span.start, span.end) if span.whole_words else None
                out.append(SizedChunk(chunk, span.tokens + len(context_ids), ids))
        return out

    def fit_context(self, context: str) -> tuple[str, array[int]]:
        """A section's context within the profile's `context_tokens`, and the word pieces it
        adds before a chunk's text (its own and the line break's, which has none): its
        deepest titles, whole, as many as fit (the deepest says most; a title cut in its
        middle would read as other words), else the first words of the deepest title."""
        titles = context.split(" > ") if context else []
        deepest = titles[-1].split() if titles else []
        shorter = chain((" > ".join(titles[first:]) for first in range(len(titles))),
                        (" ".join(deepest[:size]) for size in range(len(deepest) - 1, 0, -1)))
        for fitted in shorter:
            ids = self.tokenizer.word_pieces(fitted).ids
            if len(ids) <= self.context_tokens:
                return fitted, ids
        return "", array("H")

    def units(self, text: str, pieces: WordPieces) -> Iterator[Span]:
        """Lines and sentences with their token counts, read off the text's word `pieces`.
        One over the token budget or the character cap, or holding a run longer than the
        embedder reads as one word, falls apart into words, and such a run into pieces
        (`cut`)."""
        start = 0
        for brk in [*_UNIT_BREAK.finditer(text), None]:
            end = brk.start() if brk else len(text)
            if text[start:end].strip():
                yield from self._unit(text, start, end, pieces)
            start = brk.end() if brk else len(text)

    def _unit(self, text: str, start: int, end: int, pieces: WordPieces) -> Iterator[Span]:
        if end - start <= self.max_chars and not self._long_run.search(text, start, end):
            tokens = pieces.count(start, end)
            if tokens <= self.size:
                yield Span(start, end, tokens)
                return
        for word in _WORD.finditer(text, start, end):
            if word.end() - word.start() <= self.word_chars:
                tokens = pieces.count(word.start(), word.end())
                if tokens <= self.size:
                    yield Span(word.start(), word.end(), tokens)
                    continue
            yield from self.cut(text, word.start(), word.end())

    def cut(self, text: str, start: int, end: int) -> Iterator[Span]:
        """A run without spaces in pieces of at most `word_chars` characters and the token
        budget, never separating a combining mark from its letter. The pieces carry the
        run's start so that `pack` never joins two of them back into one over-long word."""
        pos = start
        while pos < end:
            width = self.word_chars
            while True:
                stop = _boundary(text, min(pos + width, end), pos)
                tokens = self.tokenizer.count_tokens(text[pos:stop])
                if tokens <= self.size or width == 1:
                    break
                width = max(1, width // 2)
            yield Span(pos, stop, tokens, run=start)
            pos = stop

    def pack(self, units: Iterator[Span]) -> Iterator[Span]:
        current: list[Span] = []
        total = 0
        for unit in units:
            if current and not self._fits(current, total, unit):
                yield _merge(current)
                current = self._overlap_tail(current)
                total = sum(s.tokens for s in current)
                if current and not self._fits(current, total, unit):
                    current, total = [], 0
            current.append(unit)
            total += unit.tokens
        if current:
            yield _merge(current)

    def _fits(self, current: list[Span], total: int, unit: Span) -> bool:
        return (
            total + unit.tokens <= self.size
            and unit.end - current[0].start <= self.max_chars
            and (unit.run < 0 or unit.run != current[-1].run)
        )

    def _overlap_tail(self, units: list[Span]) -> list[Span]:
        tail: list[Span] = []
        total = 0
        for unit in reversed(units[1:]):
            if total + unit.tokens > self.overlap:
                break
            tail.insert(0, unit)
            total += unit.tokens
        return tail


def _boundary(text: str, stop: int, start: int) -> int:
    """`stop`, moved back before any combining marks (Thai vowels, accents) it would cut
    from their letter, as long as the piece keeps a character."""
    while start + 1 < stop < len(text) and unicodedata.category(text[stop])[0] == "M":
        stop -= 1
    return stop


def _merge(spans: Sequence[Span]) -> Span:
    """The spans as one; a piece of a cut run in it makes it one of a cut run (`whole_words`)."""
    runs = [s.run for s in spans if not s.whole_words]
    return Span(spans[0].start, spans[-1].end, sum(s.tokens for s in spans), runs[0] if runs else -1)
