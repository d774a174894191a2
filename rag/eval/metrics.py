"""The metrics, as pure functions of what was retrieved or answered and what was expected.

Retrieval is scored at the level the chain works at, ranked chunks, but each relevant entry
is credited once: five chunks of the one relevant file are one hit, not five, so recall and
nDCG stay within [0, 1] and a mode is not rewarded for repeating itself.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rag.eval.testset import Relevant
from rag.providers.extractive import OFFLINE_NOTE
from rag.refusal import says_not_in_documents
from rag.text import MARK, content_words


@dataclass(frozen=True)
class Found:
    """Where a retrieved chunk or a citation points."""

    source: str
    page: int | None = None
    chunk_id: str = ""


# --- retrieval ---


def gains(ranked: Sequence[Found], relevant: Sequence[Relevant]) -> list[float]:
    """The gain of each ranked item: the grade of the first not-yet-credited entry it matches."""
    credited: set[int] = set()
    out: list[float] = []
    for item in ranked:
        gain = 0.0
        for i, entry in enumerate(relevant):
            if i not in credited and entry.matches(item.source, item.page, item.chunk_id):
                credited.add(i)
                gain = max(gain, entry.grade)
        out.append(gain)
    return out


def covered(items: Sequence[Found], relevant: Sequence[Relevant]) -> int:
    """How many relevant entries at least one of the items matches."""
    return sum(any(e.matches(f.source, f.page, f.chunk_id) for f in items) for e in relevant)


def hit_at(ranked: Sequence[Found], relevant: Sequence[Relevant], k: int) -> float:
    return float(covered(ranked[:k], relevant) > 0)


def recall_at(ranked: Sequence[Found], relevant: Sequence[Relevant], k: int) -> float:
    return covered(ranked[:k], relevant) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranked: Sequence[Found], relevant: Sequence[Relevant]) -> float:
    for rank, gain in enumerate(gains(ranked, relevant), start=1):
        if gain > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[Found], relevant: Sequence[Relevant], k: int = 10) -> float:
    """Graded nDCG with gain = grade (BEIR's convention), log2(rank + 1) discount."""
    dcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(gains(ranked[:k], relevant), start=1))
    ideal = sorted((e.grade for e in relevant), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


# --- answers ---

_CITATION = re.compile(MARK)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _without_punctuation(text: str) -> str:
    """`text` in NFC without any punctuation or symbol character (Unicode categories P and
    S). SQuAD strips ASCII punctuation only, and manuals print typographic quotes and dashes
    too ("‘SPLIT FILE’", "1–10"): a reply quoting them held its reference answer unrecognised.
    By category, not by "not a word character", which would also strip combining marks and
    vowel signs ("हिन्दी", a decomposed "Hà Nội")."""
    return "".join(c for c in unicodedata.normalize("NFC", text) if unicodedata.category(c)[0] not in "PS")


def without_note(answer: str) -> str:
    """The answer without the offline mode's disclaimer, which is not a claim about anything."""
    return answer.replace(OFFLINE_NOTE, " ").strip()


def answer_body(answer: str) -> str:
    """The answer without the disclaimer and the `[n]` markers: only what it claims."""
    return _CITATION.sub(" ", without_note(answer)).strip()


def normalize(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation (any script's, and symbols), no
    articles, single spaces."""
    text = _without_punctuation(answer_body(text).lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, reference: str) -> float:
    return float(normalize(answer) == normalize(reference))


def token_f1(answer: str, reference: str) -> float:
    predicted, expected = normalize(answer).split(), normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def contains_answer(text: str, reference: str, min_share: float = 0.8) -> float:
    """Whether `text` holds the reference answer: the reference, normalised, appears in it
    whole, or (for a reference longer than a phrase) at least `min_share` of its words do,
    every figure of it among them: "About 7 hours of ..." counted as given by a long reply
    that held its other words and never said 7 (since 2026-12-06: 187 of the development
    sets' answers in reply were 176 so). Scored on the reply it says whether the answer was
    given; on the top passages, whether it could have been quoted (the ceiling of an
    extractive answerer)."""
    body, expected = normalize(text), normalize(reference)
    if not expected:
        return 0.0
    if f" {expected} " in f" {body} ":
        return 1.0
    words = expected.split()
    if len(words) <= 3:
        return 0.0
    present = set(body.split())
    figures = set(_figures(reference)) <= set(_figures(text))
    return float(figures and sum(w in present for w in words) / len(words) >= min_share)


_FIGURE = re.compile(r"\d+(?:[.,]\d+)*")


def _figures(text: str) -> list[str]:
    """The numbers a text states, as written but for thousands separators ("2,048" is
    "2048"): read from the text itself, since normalising joins "512-token" into one word
    that a reply saying "512 tokens" does not hold."""
    return [f.replace(",", "") for f in _FIGURE.findall(answer_body(text))]


EVIDENCE_SHARE = 0.8  # of a quoted sentence's distinct content words, within one sentence of the text
EVIDENCE_MIN_WORDS = 3  # a shorter quoted sentence ("use set()") must appear whole
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n\s*\n|\n\s*[-*•]\s+")
_TOKEN = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> str:
    """Lower-case words and numbers with anything else as a space: "bisect.insort(scores"
    and "bisect . insort ( scores" read alike, and a PDF's hyphen at a line end ("con-
    figuration") reads the same quoted and replied."""
    return " ".join(_TOKEN.findall(text.lower()))


def holds_evidence(text: str, quote: str) -> bool:
    """Whether `text` holds the quote: its words in a row, or else every sentence of the
    quote matched by one sentence of the text holding at least `EVIDENCE_SHARE` of its
    distinct content words (a quoted sentence of under `EVIDENCE_MIN_WORDS` content words
    must appear whole). One sentence, not the whole text: words scattered over a long
    reply are not a quote. The share forgives what a reply changes at a sentence's edges
    (a clause cut at a chunk boundary, a list marker, a heading glued on)."""
    claims = answer_body(text)
    body, expected = f" {_tokens(claims)} ", _tokens(quote)
    if not expected:
        return False
    if f" {expected} " in body:
        return True
    sentences = [set(content_words(_tokens(s))) for s in _SENTENCE_BREAK.split(claims)]
    for part in _SENTENCE_BREAK.split(quote):
        wanted = set(content_words(_tokens(part)))
        if not wanted:
            continue
        if len(wanted) < EVIDENCE_MIN_WORDS:
            if f" {_tokens(part)} " not in body:
                return False
        elif not any(len(wanted & s) >= EVIDENCE_SHARE * len(wanted) for s in sentences):
            return False
    return True


def contains_evidence(text: str, quotes: Sequence[str], *, every: bool = False) -> float | None:
    """Whether `text` holds a case's evidence (`holds_evidence`): one of its quotes, or with
    `every` (multi-hop cases, whose quotes are the different facts the answer joins) all of
    them; None for a case without quotes. One is enough otherwise, since a single-hop case's
    quotes mostly state one fact on two pages. Scored on the reply it says whether the
    documents' answer was given; on the first three passages, whether it could have been
    quoted (the ceiling of an extractive answerer)."""
    if not quotes:
        return None
    found = [holds_evidence(text, q) for q in quotes]
    return float(all(found) if every else any(found))


def citation_precision(cited: Sequence[Found], relevant: Sequence[Relevant]) -> float | None:
    """Share of the cited places that are relevant; undefined (None) when nothing is cited."""
    places = list(dict.fromkeys(cited))
    if not places:
        return None
    return sum(covered([p], relevant) > 0 for p in places) / len(places)


def citation_recall(cited: Sequence[Found], relevant: Sequence[Relevant]) -> float | None:
    """Share of the relevant entries that some citation points to; undefined without any."""
    return covered(cited, relevant) / len(relevant) if relevant else None


# A list item ending in its citation ("- ... [2]"): what that passage says, in its words.
_CITED_ITEM = re.compile(rf"^[ \t]*(?:[-*•]|\d+[.)])[ \t].*{MARK}[ \t]*$", re.M)


def is_refusal(answer: str) -> bool:
    """Whether the answer says the documents do not answer (rag.refusal), judged on what it
    claims: the offline note and the `[n]` markers are not read, nor, in an offline reply,
    a list item citing a passage: the offline answerer quotes documents as such items, and
    a quoted sentence saying "we do not know ..." or "the manual does not cover ..." counted
    a reply full of quotes as a refusal. A model writes its own words as such items too
    ("- The documents do not say which timeout Tier 1 uses. [1]"), so its are read."""
    quoted = OFFLINE_NOTE in answer
    return says_not_in_documents(answer_body(_CITED_ITEM.sub(" ", answer) if quoted else answer))


# --- aggregates ---


def mean(values: Sequence[float | None]) -> float | None:
    """Mean over the defined values; None when no case defines the metric."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
