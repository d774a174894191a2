"""Cut sections into chunks that fit the active embedder's window, with stable ids.

Token-aware: sizes are counted with the offline model's WordPiece tokenizer. Gemini's
tokenizer is only reachable over the network, so for Gemini profiles WordPiece counts are
a local stand-in; they run close to Gemini's counts on English prose, and the Gemini
profile leaves ample room below its 2,048-token window. Each line and sentence is
tokenised once, and chunks are packed from those counts.

Structure-aware: a chunk never spans two sections (PDF pages, Markdown sections); inside a
section it breaks at line and sentence ends, and only a single sentence longer than the
whole budget is cut between words. Overlap repeats the last whole sentences of a chunk
(up to the profile's overlap) at the start of the next.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ingest.loaders import Section
from rag.errors import ConfigError
from rag.settings import ChunkProfile
from rag.types import Chunk

_UNIT_BREAK = re.compile(r"\n+|(?<=[.!?])[ \t]+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class SizedChunk:
    chunk: Chunk
    tokens: int


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def chunk_id(source: str, digest: str, occurrence: int) -> str:
    """Same content at the same place gives the same id; `occurrence` tells apart identical
    chunks repeated within one file."""
    return hashlib.sha256(f"{source}\0{digest}\0{occurrence}".encode()).hexdigest()[:32]


class Chunker:
    def __init__(self, profile: ChunkProfile, count_tokens: Callable[[str], int]) -> None:
        if not 0 <= profile.overlap_tokens < profile.size_tokens:
            raise ConfigError(
                f"Chunk overlap ({profile.overlap_tokens} tokens) must be at least 0 and below the "
                f"chunk size ({profile.size_tokens} tokens): check chunk_profiles in your settings."
            )
        self.size = profile.size_tokens
        self.overlap = profile.overlap_tokens
        self.count_tokens = count_tokens

    def chunk(self, source: str, sections: Sequence[Section]) -> list[SizedChunk]:
        out: list[SizedChunk] = []
        seen: Counter[str] = Counter()
        for section in sections:
            for span in self.pack(self.units(section.text)):
                text = section.text[span.start : span.end]
                digest = content_hash(text)
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
                )
                seen[digest] += 1
                out.append(SizedChunk(chunk, span.tokens))
        return out

    def units(self, text: str) -> Iterator[Span]:
        """Lines and sentences with their token counts; one longer than the whole budget
        falls apart into words, which `pack` then fills chunks with."""
        start = 0
        for brk in [*_UNIT_BREAK.finditer(text), None]:
            end = brk.start() if brk else len(text)
            piece = text[start:end]
            if piece.strip():
                tokens = self.count_tokens(piece)
                if tokens <= self.size:
                    yield Span(start, end, tokens)
                else:
                    # A single word over budget (a long URL, a base64 blob) stays whole;
                    # the embedder truncates it rather than us cutting inside it.
                    for word in _WORD.finditer(text, start, end):
                        yield Span(word.start(), word.end(), self.count_tokens(word.group()))
            start = brk.end() if brk else len(text)

    def pack(self, units: Iterator[Span]) -> Iterator[Span]:
        current: list[Span] = []
        total = 0
        for unit in units:
            if current and total + unit.tokens > self.size:
                yield _merge(current)
                current = self._overlap_tail(current)
                total = sum(s.tokens for s in current)
                if total + unit.tokens > self.size:
                    current, total = [], 0
            current.append(unit)
            total += unit.tokens
        if current:
            yield _merge(current)

    def _overlap_tail(self, units: list[Span]) -> list[Span]:
        tail: list[Span] = []
        total = 0
        for unit in reversed(units[1:]):
            if total + unit.tokens > self.overlap:
                break
            tail.insert(0, unit)
            total += unit.tokens
        return tail


def _merge(spans: Sequence[Span]) -> Span:
    return Span(spans[0].start, spans[-1].end, sum(s.tokens for s in spans))
