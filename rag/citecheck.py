"""Checking an answer's citations: does passage n support the sentence that cites [n]?

Models cite the wrong source now and then, and a user cannot check every [n] by hand. After
each answer, every sentence is checked against the passages it cites: a verbatim quote is
supported; otherwise its numbers must all appear in a cited passage, and most of its content
words must be there too, or the sentence must mean what one of the passage's sentences
means (cosine with the local MiniLM embedder, so the check is free and works offline as
online). A sentence that states a fact (a figure, or a full clause) without any
citation is flagged as uncited. The verdicts go on the answer record, the CLI prints the
flagged ones, the UI shows them and the evaluation reports the supported share.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.answer import SentenceCheck, Verdict
from rag.filetypes import marks_headings
from rag.providers.extractive import OFFLINE_NOTE
from rag.providers.quotable import CUT_MARK, split_units
from rag.text import (
    CITATION,
    LIST_MARK,
    MARK,
    between,
    code_kept,
    content_words,
    fence_line,
    line_roles,
    unfenced,
    without_code,
)
from rag.types import Passage

Embed = Callable[[list[str]], np.ndarray]

_MARKER = re.compile(rf"\s*{MARK}(?:\s*{MARK})*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A claim runs up to the citation that closes it: "A [1]. B and C [2]." is two claims (B and C
# both rest on [2]); a quoted sentence with "i.e." inside stays whole, and so does one with a
# bracket that cites nothing (a quoted list, "['x', 'y', 'z'] and ...").
_CLAIM_END = re.compile(rf"({MARK}[.!?,;]?)(\s+)")
_NOT_CLAIMS = re.compile(
    r"^(based on your documents|the documents do not (say|seem)|sources?\b|offline mode)", re.IGNORECASE
)
WORDS_SUPPORTED = 0.6  # share of the sentence's content words in the passage: supported outright
MEANING_SUPPORTED = 0.6  # else: cosine to the passage's closest sentence (a paraphrase shares few words)


def claims(answer: str) -> list[tuple[str, tuple[int, ...]]]:
    """The answer's claims with the passage numbers each cites (markers removed): a claim
    ends at a citation, a list bullet or a line break; boilerplate lines are not claims. A
    code block goes on the line before it (the offline reply's "Run these commands:", its
    block, then its "[2]" on a line of its own), and what stands in code is never a
    citation mark ("sys.argv[1]")."""
    text = answer.replace(OFFLINE_NOTE, "\n")
    out: list[tuple[str, tuple[int, ...]]] = []
    for line, masked in _lines(text):
        # A list marker and bold's "**" before the text; none before code alone ("--prune").
        start = len(line) - len(line.lstrip(" \t-*•")) if masked.strip() else 0
        body, hidden = line[start:].rstrip(), masked[start:].rstrip()
        # the white space after a closing mark (`code_kept`: not code that stands after it)
        breaks = [code_kept(body, hidden, m.span(2)) for m in _CLAIM_END.finditer(hidden)]
        for piece, mask in zip(between(body, breaks), between(hidden, breaks), strict=True):
            cited = tuple(int(n) for group in CITATION.findall(mask) for n in group.split(","))
            sentence = "".join(between(piece, [code_kept(piece, mask, m.span()) for m in _MARKER.finditer(mask)]))
            sentence = sentence.strip().removesuffix(CUT_MARK).strip()  # a cut quote is a quote
            if cited and out and not sentence.strip(".!?,;…"):
                # Markers alone ("... Styles” [3]. [1]", a quote's own "[3]" and then the answer's
                # citation, or a reply's mark after its code block): they close the claim before;
                # dropped, its real source went unchecked.
                before, its = out[-1]
                out[-1] = (before, tuple(dict.fromkeys((*its, *cited))))
            elif sentence and not _NOT_CLAIMS.match(sentence):
                out.append((sentence, tuple(dict.fromkeys(cited))))
    return out


# A line whose last claim is closed: a citation mark at its end, not before a ":".
_CLOSED = re.compile(rf"{MARK}[.!?,;]?\s*$")


def _lines(text: str) -> list[tuple[str, str]]:
    """The text's non-blank lines, each with its code blanked (`rag.text.without_code`). A
    code block's lines are joined onto the line before the block, past the end of its blanked
    copy, when that line's last claim is open: "Run this [2]:" or the reply's lead-in and
    the block are one claim (a blank line between them or not); after "... by default [1]."
    the block is a claim of its own. So is a block opening a list item ("- ```"). A code
    line stands as it is written, without its item's marker or indent."""
    out: list[tuple[str, str]] = []
    block = False  # the line before was a code block's, or its fence
    lines = text.split("\n")
    for line, masked, role in zip(lines, without_code(text).split("\n"), line_roles(lines, fence_line), strict=True):
        if not line.strip():
            continue
        code = not masked.strip()  # a fence or a code line: nothing left unblanked
        joined = " ".join(line.split()) if role in ("text", "code") else ""
        opens_item = role == "open" and LIST_MARK.match(line) is not None
        if code and out and not opens_item and (block or not _CLOSED.search(out[-1][1])):
            out[-1] = (f"{out[-1][0]} {joined}".rstrip(), out[-1][1])
        elif code:
            out.append((joined, ""))
        else:
            out.append((line, masked))
        block = code
    return out


def states_a_fact(sentence: str) -> bool:
    """A figure, or a clause of some length: what needs a source. Short connective phrases
    ("In short:") do not."""
    return bool(_NUMBER.search(sentence)) or len(content_words(sentence)) >= 5


def _flat(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class _Pending:
    """A claim that the words alone did not settle: its meaning decides."""

    sentence: str
    cited: tuple[int, ...]
    units: tuple[str, ...]  # the cited passages' sentences


class CitationChecker:
    """Checks every claim of an answer. The meaning test is the only costly part (the local
    model's CPU, paid by every answer a server streams): it runs once per answer over the
    distinct texts of all the claims that need it, and the vectors of texts seen before (a
    popular passage's sentences, a repeated claim) come from a small cache."""

    def __init__(self, embed: Embed, cache_size: int = 4096) -> None:
        self.embed = embed
        self.cache_size = cache_size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, answer: str, passages: Sequence[Passage]) -> list[SentenceCheck]:
        by_n = {p.n: p for p in passages}
        out: list[SentenceCheck | _Pending] = []
        for sentence, cited in claims(answer):
            known = [by_n[n] for n in cited if n in by_n]
            if not cited:
                if states_a_fact(sentence):
                    out.append(SentenceCheck(sentence, (), "uncited", 0.0, "states a fact without a citation"))
                continue
            if not known:
                out.append(SentenceCheck(sentence, cited, "unsupported", 0.0, "cites a source that was not shown"))
                continue
            out.append(self._by_words(sentence, cited, known))
        pending = [c for c in out if isinstance(c, _Pending)]
        vectors = self._vectors_of([t for c in pending for t in (c.sentence, *c.units)])
        return [self._by_meaning(c, vectors) if isinstance(c, _Pending) else c for c in out]

    def _by_words(self, sentence: str, cited: tuple[int, ...], passages: list[Passage]) -> SentenceCheck | _Pending:
        if any(_flat(sentence) in _flat(unfenced(p.text)) for p in passages):
            return SentenceCheck(sentence, cited, "supported", 1.0, "quoted")
        numbers = set(_NUMBER.findall(sentence))
        pool_numbers = {n for p in passages for n in _NUMBER.findall(p.text)}
        if numbers - pool_numbers:
            missing = ", ".join(sorted(numbers - pool_numbers))
            return SentenceCheck(sentence, cited, "unsupported", 0.0, f"{missing} not in the cited passage")
        words = set(content_words(sentence))
        share = max(
            (len(words & set(content_words(f"{p.heading} {p.text}"))) / len(words) for p in passages),
            default=0.0,
        ) if words else 1.0
        if share >= WORDS_SUPPORTED:
            return SentenceCheck(sentence, cited, "supported", share, "its words are in the cited passage")
        units = [u for p in passages for u in split_units(p.text, marks_headings(p.source))] or [
            p.text for p in passages]
        return _Pending(sentence, cited, tuple(units))

    def _by_meaning(self, claim: _Pending, vectors: dict[str, np.ndarray]) -> SentenceCheck:
        meaning = max(float(vectors[u] @ vectors[claim.sentence]) for u in claim.units)
        verdict: Verdict = "supported" if meaning >= MEANING_SUPPORTED else "unsupported"
        why = f"closest sentence of the passage at cosine {meaning:.2f}"
        return SentenceCheck(claim.sentence, claim.cited, verdict, meaning, why)

    def _vectors_of(self, texts: list[str]) -> dict[str, np.ndarray]:
        """One embedding call for the texts not in the cache (none when all are)."""
        wanted = list(dict.fromkeys(texts))
        with self._lock:
            found = {t: self._vectors[t] for t in wanted if t in self._vectors}
        missing = [t for t in wanted if t not in found]
        if missing:
            found.update(zip(missing, self.embed(missing), strict=True))
        with self._lock:
            for text in wanted:
                self._vectors[text] = found[text]
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.cache_size:
                self._vectors.popitem(last=False)
        return found


def supported_share(checks: Sequence[SentenceCheck]) -> float | None:
    """Share of the cited sentences that their citation supports; None without any."""
    cited = [c for c in checks if c.verdict != "uncited"]
    return sum(c.verdict == "supported" for c in cited) / len(cited) if cited else None
