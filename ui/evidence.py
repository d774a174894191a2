"""Which sentence of a passage an answer used for its citation [n].

A chip, a popover and an opened source all highlight that sentence, so a reader checks the
claim against the words it rests on instead of skimming a whole passage. The answer's
sentences that cite [n] are compared with the passage's sentences by shared content words;
the offline answerer quotes passages verbatim, so there the match is exact, and a model's
paraphrase still shares most of its content words with its source.
"""

from __future__ import annotations

import re
from itertools import takewhile

from rag.providers.quotable import split_units
from rag.text import CITATION, LIST_MARK, between, content_words, fence_line, fenceless, without_code

_ANSWER_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def citation_marks(answer: str) -> list[tuple[set[int], str]]:
    """Each citation mark of the answer in order ("[2]", "[1, 3]"): the sources it names and
    the sentence it stands in, without citation marks. A mark standing alone after a
    sentence's full stop ("… floor. [2]") belongs to that sentence."""
    masked = without_code(answer)  # "sys.argv[1]" in quoted code is no mark
    breaks = [m.span() for m in _ANSWER_SENTENCE.finditer(answer)]
    pieces = [p for p in zip(between(answer, breaks), between(masked, breaks), strict=True) if p[0].strip()]
    marks: list[tuple[set[int], str]] = []
    for i, (piece, mask) in enumerate(pieces):
        bare = _without_marks(piece, mask).strip(" .;,*_…")
        sentence = bare if bare or i == 0 else _before(pieces[:i])
        marks += [(_numbers(group), sentence) for group in CITATION.findall(mask)]
    return marks


def _before(pieces: list[tuple[str, str]]) -> str:
    """What a mark standing alone closes: the sentence before it, or the code block before it
    (an offline reply's mark after its block) with the sentence introducing the block."""
    code = list(reversed(list(takewhile(lambda p: not p[1].strip(), reversed(pieces)))))  # all blanked
    if not code:
        return _without_marks(*pieces[-1])
    rest = pieces[: len(pieces) - len(code)]
    lines = [p[0].strip() for p in code]
    opens_item = LIST_MARK.match(code[0][0]) is not None  # "- ```": no lead-in above it
    if rest and not opens_item and not CITATION.search(rest[-1][1]):
        lines.insert(0, _without_marks(*rest[-1]).strip().lstrip("-*• "))  # the block's lead-in, citing nothing
    return " ".join(fenceless(lines, fence_line))


def _without_marks(piece: str, mask: str) -> str:
    """The piece without its citation marks (read off its blanked copy: those in code stay)."""
    return "".join(between(piece, [m.span() for m in CITATION.finditer(mask)]))


def used_sentence(answer: str, n: int, passage: str, mark: int | None = None, marked: bool = False) -> str | None:
    """The passage sentence (verbatim, so it can be found again) that best supports the
    answer's sentence holding its `mark`-th citation mark, or with no mark given all its
    sentences citing [n]; None when they do not cite n or share no word. An offline answer
    cites [1] after many sentences: each chip marks its own sentence's evidence, not one
    sentence for all of them. `marked`: the passage's file marks its headings
    (`rag.filetypes.marks_headings`), and is split as the answerer split it."""
    marks = citation_marks(answer)
    chosen = marks if mark is None else marks[mark : mark + 1]
    claims = {w for numbers, sentence in chosen if n in numbers for w in content_words(sentence)}
    if not claims:
        return None
    best, best_score = None, 0.0
    for unit in split_units(passage, marked):
        words = set(content_words(unit))
        if not words:
            continue
        shared = len(words & claims)
        score = shared / len(words) + shared / len(claims)  # precision and recall of the words
        if score > best_score:
            best, best_score = unit, score
    return best.strip() if best else None


def _numbers(group: str) -> set[int]:
    return {int(part) for part in group.split(",")}
