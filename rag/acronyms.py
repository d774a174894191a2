"""Acronyms a corpus defines, so that a question spelling one out finds where it is used.

A manual defines "requests per minute (RPM)" once and then writes RPM in every table; a
user asks "how many requests per minute does the free tier allow?" and keyword search,
which matches words, never finds the table. Where the documents themselves say what an
acronym stands for ("words (ACR)", "ACR (words)", "ACR, words" or "ACR: words", the
acronym's letters the words' initials), a question holding those words in that order is
searched for the acronym as well (`BM25Index.query_terms`). One way only: the acronym is a
rare term that names its subject, the words are common ones that would dilute a question
asking by the acronym.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence

# Two to six capitals or digits, starting with a capital, a plural "s" allowed: "RPM", "MIP",
# "LPs", "HTTP2". Not a word in capitals for emphasis: it must spell words out beside it.
_ACRONYM = r"[A-Z][A-Z0-9]{1,5}s?"
_MARK = r"[*_`]*"  # Markdown's emphasis or code around it: "- **RPM**, requests per minute: ..."
_BEFORE = re.compile(rf"\(\s*{_MARK}({_ACRONYM}){_MARK}\s*\)")  # "requests per minute (RPM)"
_AROUND = re.compile(rf"\b({_ACRONYM}){_MARK}\s*\(([^()]{{3,100}})\)")  # "RPM (requests per minute)"
_AFTER = re.compile(rf"\b({_ACRONYM}){_MARK}(?:,|:| -| –| —)\s+")  # "RPM, requests per minute: how many calls ..."
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9']*")
# Small words an acronym may skip ("Department of Energy (DOE)", "Bureau of the Census") or
# take ("requests per minute (RPM)").
_SKIPPABLE = frozenset({"of", "and", "the", "for", "to", "in", "on", "a", "an", "by", "with", "per", "&"})
MAX_DEFINITIONS = 10_000  # per corpus: a bound on what each question is compared with

Terms = Callable[[str], list[str]]


def definitions(text: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(acronym, the words it stands for) for each place `text` defines one."""
    for match in _BEFORE.finditer(text):
        acronym = match.group(1)
        before = _WORD.findall(text[max(0, match.start() - 120) : match.start()])
        if words := _spelled(acronym, before, from_end=True):
            yield acronym, words
    for match in _AROUND.finditer(text):
        if words := _spelled(match.group(1), _WORD.findall(match.group(2)), from_end=False, whole=True):
            yield match.group(1), words
    for match in _AFTER.finditer(text):
        after = _WORD.findall(text[match.end() : match.end() + 120])
        if words := _spelled(match.group(1), after, from_end=False):
            yield match.group(1), words


def _spelled(acronym: str, words: Sequence[str], *, from_end: bool, whole: bool = False) -> tuple[str, ...] | None:
    """The words next to the acronym (the last ones before it, or the first after) whose
    initials spell it, small words taken or skipped (`_SKIPPABLE`); `whole`: all of `words`.
    None when no such run of words spells it."""
    letters = (acronym[:-1] if acronym.endswith("s") else acronym).lower()
    for size in range(len(letters), len(letters) + 4):
        if size > len(words) or (whole and size != len(words)):
            continue
        run = tuple(words[-size:] if from_end else words[:size])
        if run[0].lower() in _SKIPPABLE or run[-1].lower() in _SKIPPABLE:
            continue
        if _initials_spell(letters, [w.lower() for w in run]):
            return run
    return None


def _initials_spell(letters: str, words: Sequence[str]) -> bool:
    """Whether the words' initials are `letters`, each small word's initial taken or not."""
    if not words:
        return not letters
    if not letters:
        return all(w in _SKIPPABLE for w in words)
    first, rest = words[0], words[1:]
    taken = first[0] == letters[0] and _initials_spell(letters[1:], rest)
    return taken or (first in _SKIPPABLE and _initials_spell(letters, rest))


def defined(texts: Iterable[str], terms: Terms) -> list[tuple[str, tuple[str, ...]]]:
    """Each acronym the texts define as a search term, with the terms of its words: the
    pairs a question is looked at for (`spelled_out`). Only definitions whose words leave at
    least two terms ("per minute" alone says nothing) and whose acronym is one term."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    for text in texts:
        for acronym, words in definitions(text):
            term, spelled = terms(acronym), tuple(terms(" ".join(words)))
            if len(term) == 1 and len(spelled) >= 2 and term[0] not in spelled:
                found.setdefault((term[0], spelled), None)
                if len(found) >= MAX_DEFINITIONS:
                    return list(found)
    return list(found)


def spelled_out(query: Sequence[str], acronyms: Iterable[tuple[str, tuple[str, ...]]]) -> list[str]:
    """The acronyms whose words `query` (a question's terms) holds in a row, not already in it."""
    held = set(query)
    return list(dict.fromkeys(
        acronym for acronym, words in acronyms
        if acronym not in held and held.issuperset(words) and _in_a_row(query, words)
    ))


def _in_a_row(query: Sequence[str], words: Sequence[str]) -> bool:
    n = len(words)
    return any(tuple(query[i : i + n]) == tuple(words) for i in range(len(query) - n + 1))
