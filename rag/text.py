"""Words that carry meaning: the one list of stop words (BM25 adds bm25s' English list to it)
and the content-word tokenisation that the offline answerer, the citation checks and the UI's
evidence highlighting share. BM25 tokenises on its own (rag.bm25.Terms: words of two or more
characters, stemmed), as keyword matching across word forms wants. Also the one pattern of a
Markdown code fence, which ingest writes and splits at and the answerer never quotes, and
a text with its code blanked in place (`without_code`), where the chain, the citation check
and the UI read citation marks, so none is read in code; a
question's literal tokens ("429", "os.path.join") and the share of them a text holds, which
the second ranking stage and the offline answerer both score by; the one English stemmer,
which BM25 and the answerer's test of whether a sentence shares a word with the question
use; the reading of a model's JSON reply, which the second ranking stage and the judge
share; whether a question asks for a whole document, which the router and the offline
follow-up rewrite read; and the one way a count is written with its noun ("1 chunk", "1,200
chunks"), which the CLIs, ingest's notes and the UI all print."""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from spellchecker import SpellChecker

WORD = re.compile(r"[a-z0-9][a-z0-9\-']*")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")  # a code block's first or last line; its marker in group 1


# A fence's language: its info string's first word ("```python", "~~~ c++"), or in braces
# the first class ("```{#lst:main .python}").
_INFO = re.compile(r"^\s*(?:`{3,}|~{3,})\s*(?:\{[^}]*?\.([\w+#-]+)|([\w+#-]+))")


def fence_language(line: str) -> str:
    """The language an opening fence line names ("```python", "~~~ bash", "```{.ini}"), or
    "": what a quote of its block keeps, so the reply shows the code highlighted as the
    document did."""
    named = _INFO.match(line)
    return (named.group(1) or named.group(2)) if named else ""


def closes_fence(fence: str, marker: str, rest: str) -> bool:
    """Whether a fence line (its `marker`, then `rest`) closes the open `fence`: the same
    character, at least as many of them, nothing after (a ``` line inside a ```` block is
    code, as in CommonMark)."""
    return marker[0] == fence[0] and len(marker) >= len(fence) and not rest.strip()


LineRole = Literal["text", "open", "code", "close"]


def line_roles(
    lines: Iterable[str], fence_of: Callable[[str], re.Match[str] | None] = FENCE.match
) -> Iterator[LineRole]:
    """Each line's part in fenced code blocks: prose, a block's opening fence, a line of its
    code, or its closing fence. A fence line that does not close the open block ("```"
    inside "~~~", "```ini") is a line of its code, as in CommonMark; a block left open runs
    to the end. The one reading of fences for the chunker, the quoting and the reply's
    checks (`fence_of` finds a line's fence, `fence_line` also after a list marker)."""
    fence = ""
    for line in lines:
        marker = fence_of(line)
        if not fence:
            fence = marker.group(1) if marker else ""
            yield "open" if marker else "text"
        elif marker and closes_fence(fence, marker.group(1), marker.string[marker.end() :]):
            fence = ""
            yield "close"
        else:
            yield "code"


# A citation mark, "[2]" or "[1, 3]": MARK to build patterns with, CITATION with its numbers
# in group 1. The one spelling the chain, the citation check, the evaluation and the UI read.
MARK = r"\[\d+(?:\s*,\s*\d+)*\]"
CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")

# An inline code span, within a line: a run of backticks, its code, and a run of as many
# ("`a[1]`", "``x`y``"). A lone backtick ("a backtick (`) on each side") pairs with none on
# another line: a span across lines blanked a reply's line end, and its citation with it.
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)([^\n]+?)(?<!`)\1(?!`)")
# What may stand before a fence on its line: a list item's or a quote's marker ("- ```").
_BLOCK_MARKS = re.compile(r"^\s*(?:(?:[-*+•>]|\d+[.)])\s+)*")
LIST_MARK = re.compile(r"^\s*[-*•]\s")  # a bullet item's marker, as replies write them


def fence_line(line: str) -> re.Match[str] | None:
    """The fence a line is (its marker in group 1), also after a list item's or a quote's
    marker ("- ```", "1. ```"), as a reply quoting code alone opens its item with one."""
    return FENCE.match(_BLOCK_MARKS.sub("", line, count=1))


def without_code(text: str) -> str:
    """`text` with its code blanked character for character, line ends kept: fenced blocks,
    their fence lines too, and inline code spans. What reads a reply's citation marks reads
    this, so "sys.argv[1]" in quoted code is no citation of passage 1; positions stay those
    of `text` (`code_kept` maps a span found in it back). A fence may open a list item
    ("- ```", "1. ```"), as a reply quoting code alone does."""
    lines = text.split("\n")
    for i, role in enumerate(line_roles(lines, fence_line)):
        if role != "text":
            lines[i] = " " * len(lines[i])
    return _INLINE_CODE.sub(lambda m: " " * len(m.group()), "\n".join(lines))


def code_kept(text: str, masked: str, span: tuple[int, int]) -> tuple[int, int]:
    """A span found in `masked` (`without_code(text)`) cut back to the white space `text` has
    at its ends: a pattern's white space ("\\s*\\[1\\]") also matches blanked code, and
    removing " `--no-cache` [2]" took the code with the mark. A span of white space only
    keeps the text's own white space at its start (the break after a mark)."""
    a, b = span
    own = masked[a:b]
    if not own.strip():
        return a, a + len(text[a:b]) - len(text[a:b].lstrip())
    start, end = a + len(own) - len(own.lstrip()), a + len(own.rstrip())
    return a + len(text[a:start].rstrip()), end + len(text[end:b]) - len(text[end:b].lstrip())


def unfenced(text: str) -> str:
    """The text without its code blocks' fence lines: how a reader sees the block, and how a
    quote of it (its lines, joined onto the sentence introducing it) reads it."""
    return "\n".join(fenceless(text.splitlines()))


def fenceless(lines: Sequence[str], fence_of: Callable[[str], re.Match[str] | None] = FENCE.match) -> list[str]:
    """The lines but the fences of their code blocks (`line_roles`): prose and code."""
    return [line for line, role in zip(lines, line_roles(lines, fence_of), strict=True) if role in ("text", "code")]


def between(text: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The parts of `text` around `spans` (in order, not overlapping): what a split at them
    leaves. Read off a blanked copy (`without_code`), the spans cut the text itself."""
    ends = [0, *(i for span in spans for i in span), len(text)]
    return [text[a:b] for a, b in zip(ends[::2], ends[1::2], strict=True)]


# A Markdown table's row (its cells in group 1), its delimiter row ("|---|:-:|"), and the
# pipe between two cells: a "|" escaped as "\|" is inside its cell.
TABLE_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
# A table's rule: a dash or more in each cell ("| --- | :-: |"), so a row of empty cells (an
# HTML table's spacer row) is no rule, nor does it make the row above a header.
TABLE_RULE = re.compile(r"^\s*\|(?:\s*:?-+:?\s*\|)+\s*$")
CELL_BREAK = re.compile(r"(?<!\\)\|")
# English function words, plus the words of a request that say nothing about its subject
# ("tell", "explain", "document"): a question is matched on what it asks about.
STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would
    you your yours tell explain describe please say says according document documents""".split()
)


def content_words(text: str) -> list[str]:
    """The lower-cased words of `text` that are not stop words, in order, accents folded
    (`folded`): "crème" was read as "cr" and "me"."""
    return [w for w in WORD.findall(folded(text).lower()) if w not in STOPWORDS and len(w) > 1]


def in_some_form(word: str, words: Container[str]) -> bool:
    """Whether `words` hold `word` as it is, or its plural or singular by a final "s":
    "limits" is found in a passage saying "limit", and "key" in one saying "keys"."""
    return word in words or word.rstrip("s") in words or f"{word}s" in words


# A Greek letter standing alone, not in a word of Greek letters: a symbol or a variable
# ("the correction γ", "α=0.5", "2π", TeX's math italic "𝛾" once NFKD has made it "γ").
_GREEK_LETTER = re.compile(r"(?<![^\W\d_])[\u0391-\u03a9\u03b1-\u03c9\u03d0-\u03d6\u03f0-\u03f5](?![^\W\d_])")


def folded(text: str) -> str:
    """`text` without accents and other combining marks ("crème brûlée" → "creme brulee",
    "naïve" → "naive"), for comparing words only, never for what is shown: users type
    loanwords and names without their accents, and a question about "creme brulee" was
    refused because the passages "never mention brulee". Letters that are not a base letter
    with a mark ("ß", "ø", "æ") stay as they are. A Greek letter standing alone is spelled
    by its name (`_GREEK_LETTER`: "γ" → "gamma"), as users type it: a question about the
    "gamma" of a colour model was refused as no document "mentions gamma", in a manual that
    writes γ; a Greek word keeps its letters. ASCII text comes back at once."""
    if text.isascii():
        return text
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _GREEK_LETTER.sub(_greek_name, plain)


def _greek_name(letter: re.Match[str]) -> str:
    """" gamma " for "γ" or "Γ", " phi " for "ϕ" (GREEK PHI SYMBOL), " sigma " for "ς"."""
    words = unicodedata.name(letter.group(), "").split()
    name = next((w for w in reversed(words) if w not in ("SYMBOL", "GREEK")), "")
    return f" {name.lower()} " if name else letter.group()


@cache
def _stemmer() -> Any:  # PyStemmer ships no type information
    import Stemmer

    return Stemmer.Stemmer("english")


_STEMMING = threading.Lock()  # a Snowball stemmer object is not thread-safe


def stem_words(words: Iterable[str]) -> list[str]:
    """Snowball (English) stems of lower-cased `words`, in order: "retries" and "retrying"
    both give "retri"."""
    listed = list(words)  # outside the lock: a generator's own work never runs holding it
    with _STEMMING:
        return list(_stemmer().stemWords(listed))


# The first two alternatives start where a token starts: tried from every position inside a
# long word, each scanned to its end and back, and a 8,000-character word took 9-14 s.
_ANCHOR = re.compile(
    r"(?<![\w.:/=-])[\w.:/=-]*\d[\w.:/=-]*"  # numbers and codes: 429, 2.5, 2025-09, v1beta
    r"|(?<!\w)\w+(?:[._:/=]\w+)+"  # dotted, slashed or assigned names: os.path.join, alt=sse
    r"|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"  # constants: RESOURCE_EXHAUSTED
    r"|\b[a-z]+[A-Z]\w*"  # camelCase: embedContent
    r"|(?<![\w-])--?[a-z][\w-]+"  # command-line flags: --prune
)


def anchors(text: str) -> set[str]:
    """The tokens a question means literally: numbers and codes ("429", "2.5"), dotted or
    slashed names ("os.path", "alt=sse"), constants and camelCase identifiers, flags."""
    return {a.strip(".:/-").lower() for a in _ANCHOR.findall(text) if len(a.strip(".:/-")) > 1}


def share_present(terms: set[str], text: str) -> float:
    """The share of `terms` (lower case, as `anchors` gives them) found in `text`, 0 for none."""
    lowered = text.lower()
    return sum(t in lowered for t in terms) / len(terms) if terms else 0.0


TYPO_MIN_CHARS = 5  # a word a typo is read as: in a shorter one, one edit makes another word ("gpu", "cpu")


# A question's words are read several times an answer (its key terms are taken by the
# refusal, the keyword ranking and the collection lookups), and they recur across questions:
# each word is judged once (about 0.9 ms for a word neither list holds, 2.7 ms a question before).
WORDS_JUDGED = 65_536


# "-ise" and "-yse" and their forms, as British English spells what American spells "-ize"
# and "-yze" ("optimise", "initialised", "serialisable", "visualisation", "paralysed").
_BRITISH = re.compile(r"(?<=\w{3})([iy])s(e|es|ed|ing|ation|ations|er|ers|able|ability)$")

# Function words of the languages a user most often asks in besides English, none of them an
# English word ("de" is, in names; "die", "come" and "a" are English): two of them, and at
# most one English function word, make a question another language's (`another_language`).
_OTHER_FUNCTION_WORDS = frozenset(
    """el los las del por para con una qué cómo cuál cuándo dónde cuánto puedo hay también pero
    les des une est dans pour avec quelle quel comment faut sont mon mes aux sur qui pourquoi
    der das und ist nicht ein eine mit von den wie sollten werden wird ich kann oft warum wo
    uma com não quanto custa onde porque
    il che della sono dove perché
    het een van ik hoe vaak moet mijn wat niet""".split()
)


def another_language(text: str) -> bool:
    """Whether a question is asked in another language than English (Spanish, French,
    German, Portuguese, Italian, Dutch, or a script without spaces: Chinese, Japanese,
    Korean): its words say nothing to English word lists, so none of them is read as a name
    the documents lack ("the passages found never mention claves, con, deben")."""
    lowered = text.lower()
    if len(re.findall(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", lowered)) >= 4:
        return True
    words = re.findall(r"[^\W\d_]+", lowered)
    theirs = sum(w in _OTHER_FUNCTION_WORDS for w in words)
    return theirs >= 2 and sum(w in STOPWORDS for w in words) <= 1


@lru_cache(maxsize=WORDS_JUDGED)
def english(word: str) -> bool:
    """Whether a lower-case `word` reads as English: a word of an English dictionary
    (`_dictionary`, some 160,000 words: "clutters", "recursion"), a whole word of the offline
    model's vocabulary (`rag.providers.minilm.vocabulary`), another form of one (the same
    Snowball stem: "swapping", "declarations"), or two of them of three letters or more
    joined ("throwaway"; "redis" is not "red" and "is"). Either list alone misses words: the
    model's 23,700 lack "clutter", the dictionary "colour". A British spelling in -ise or
    -yse counts as the American one in -ize or -yze (`_BRITISH`): both lists are American
    there, and "serialise" or "summarises" read as names. Names are in neither: "jupyter",
    "tracemalloc", "glpk"."""
    if _listed(word) or _halves(word) is not None:
        return True
    american = _BRITISH.sub(r"\1z\2", word)
    return american != word and english(american)


def joined_words(word: str) -> tuple[str, str] | None:
    """The two words of the offline model's vocabulary, of three letters or more each, that a
    lower-case `word` no dictionary lists is made of ("dataset": "data" and "set"), or None.
    Such a word reads as English, and is often a name: "minizinc", "libreoffice", "einsum",
    "tensorflow" (`rag.keyterms.lower_case_names`)."""
    return None if _listed(word) else _halves(word)


def _listed(word: str) -> bool:
    """A word of the dictionary or of the model's vocabulary, or another form of one."""
    dictionary, known, stems = word_lists()
    return word in dictionary or word in known or stem_words([word])[0] in stems


def _halves(word: str) -> tuple[str, str] | None:
    """The first split of `word` into two vocabulary words of three letters or more."""
    known = word_lists()[1]
    return next(((word[:i], word[i:]) for i in range(3, len(word) - 2) if word[:i] in known and word[i:] in known),
                None)


def everyday(word: str) -> bool:
    """Whether `word` is one of the thousand commonest English words (`EVERYDAY_WORD_COUNT`)."""
    return word_lists()[0].word_frequency[word] >= EVERYDAY_WORD_COUNT


def closed_up(first: str, second: str, seen: frozenset[str] = frozenset()) -> str:
    """A word a PDF hyphenated across a line end, written whole again: "con" and
    "figuration" are "configuration", as a reader and a search for the word see it, while
    "integer" and "valued" stay "integer-valued". Joined when the dictionary (`_dictionary`)
    or the text it came from (`seen`, lower-cased: "namespace" elsewhere on the page) holds
    the whole word; kept hyphenated when both halves are words of the dictionary or the
    second starts with a capital ("CNF-SAT"); joined otherwise, as a fragment ("portabil")
    is no word. The model's vocabulary is not asked: it holds "integer" and "valued" and so
    would join them."""
    with _WORD_LISTS:
        dictionary = _dictionary()
    whole = first + second
    if whole.lower() in dictionary or whole.lower() in seen:
        return whole
    if second[:1].isupper() or (first.lower() in dictionary and second.lower() in dictionary):
        return f"{first}-{second}"
    return whole


_LETTERS = r"[^\W\d_]+"  # a word's letters: a number broken at a line end ("10-" over "20") is a range


def rejoined(text: str, break_mark: str) -> str:
    """`text` with each word hyphenated across a line end (`break_mark` between its halves of
    letters: PDFium's U+FFFE, or "-\\n" in an OCR reading) written whole on the first line
    (`closed_up`, with the text's own words to go by), the line end moved after it, so
    lines stay lines. A text without the mark comes back at once, and a half starts where
    its word does: tried from every letter of a long run, the pattern took seconds a page."""
    if break_mark not in text:
        return text
    pattern = re.compile(rf"(?<!\w)({_LETTERS}){re.escape(break_mark)}({_LETTERS})(\S*)[ \t]*")
    seen = frozenset(w.lower() for w in re.findall(r"\w+", text))

    def whole(hyphenated: re.Match[str]) -> str:
        first, second, trailing = hyphenated.groups()
        ends_line = hyphenated.end() == len(text) or text[hyphenated.end()] == "\n"
        return closed_up(first, second, seen) + trailing + ("" if ends_line else "\n")

    return pattern.sub(whole, text)


EVERYDAY_WORD_COUNT = 100_000  # occurrences in the dictionary's corpus: its thousand commonest words, "main" the last


@lru_cache(maxsize=WORDS_JUDGED)
def everyday_typo(word: str) -> bool:
    """Whether a lower-case `word` is one typo from one of the thousand commonest English
    words (`EVERYDAY_WORD_COUNT`): two letters swapped, one changed or one left out, as in
    "jsut", "teh", "wiht". Such a word is a slip, not a name, however unknown it is; a name
    is rarely one letter from "just" or "with" ("lua", "gpu" and "dpi" are not)."""
    dictionary = word_lists()[0]
    counts = dictionary.word_frequency
    return any(
        len(other) >= len(word) and counts[other] >= EVERYDAY_WORD_COUNT
        for other in dictionary.edit_distance_1(word)
    )


def english_respellings(word: str) -> list[str]:
    """The dictionary's words that a lower-case `word` of more than `TYPO_MIN_CHARS` letters
    misspells (`_misspelling_of`): "automaticaly" gives "automatically", "seperately"
    "separately". Not a reading of the word on its own (names are often one letter from a
    word: "redis", "redid"; "systemd", "systems"), only what to look for in the documents
    before refusing on it (`rag.keyterms`)."""
    if len(word) <= TYPO_MIN_CHARS:
        return []
    dictionary = word_lists()[0]
    return sorted(w for w in dictionary.known(dictionary.edit_distance_1(word))
                  if w.isalpha() and w != word and _misspelling_of(word, w))


_VOWELS = frozenset("aeiouy")


def _misspelling_of(typed: str, word: str) -> bool:
    """Whether `typed` is `word` as people misspell words, its first and last letters kept: a
    letter left out ("automaticaly"), one doubled ("untill"), two neighbours swapped
    ("recieve") or a vowel written as another ("seperately"). Not another letter changed or
    added, as a name one letter from a word is ("bazel", "basel")."""
    if typed[0] != word[0] or typed[-1] != word[-1] or not one_edit_apart(typed, word):
        return False
    if len(typed) < len(word):
        return True
    if len(typed) > len(word):
        return any(typed[i] == typed[i + 1] and typed[:i] + typed[i + 1 :] == word for i in range(len(typed) - 1))
    changed = [i for i, (a, b) in enumerate(zip(typed, word, strict=True)) if a != b]
    return len(changed) == 2 or {typed[changed[0]], word[changed[0]]} <= _VOWELS


_WORD_LISTS = threading.Lock()


def word_lists() -> tuple[SpellChecker, frozenset[str], frozenset[str]]:
    """The dictionary, the model's vocabulary and its words' stems, loaded once (about
    0.3 s, `rag.backend.Backend.warm_up` does it at start): under a lock, since many server
    threads asking their first lower-case question at once would each load them."""
    from rag.providers.minilm import vocabulary

    with _WORD_LISTS:
        return _dictionary(), vocabulary(), _vocabulary_stems()


@cache
def _dictionary() -> SpellChecker:
    """pyspellchecker's English word list, read once (about 0.15 s)."""
    from spellchecker import SpellChecker

    return SpellChecker(language="en", distance=1)


@cache
def _vocabulary_stems() -> frozenset[str]:
    """The Snowball stems of the model's vocabulary: "declarations" is a form of "declaration"."""
    from rag.providers.minilm import vocabulary

    return frozenset(stem_words(vocabulary()))


def may_be_misspelt(term: str) -> bool:
    """Whether `term` may be read as a word one typo away (`one_edit_apart`): long enough
    that the word is `TYPO_MIN_CHARS` or more; no digit in it (a version or a quantity,
    where one character is another thing: "1.5" is not "2.5"); and not itself a word of the
    offline model's vocabulary (`rag.providers.minilm.vocabulary`), where a name one letter
    from a document's word is another thing: "studio" is not a typo of "stdio". A typo
    rarely makes a word ("gemni", "mathrog"), a name asked about that documents lack often
    is one ("java", "helm", "vertex")."""
    from rag.providers.minilm import vocabulary

    return len(term) >= TYPO_MIN_CHARS - 1 and not any(c.isdigit() for c in term) and term not in vocabulary()


def typo_of(typed: str, word: str) -> bool:
    """Whether `typed` is `word` with one typo (`one_edit_apart`) that leaves the first
    character of the word, and of each of its parts (after ".", "_", "-", ":", "/", "="), as
    it was, or swaps it with the next: "glp_smplex" is glp_simplex and "json.udmps"
    json.dumps, but "str.lstrip" is not str.rstrip, "str.strip" not str.lstrip, "np.hstack"
    not np.vstack, "getattr" not setattr. Names that differ at their start are other names,
    and a first letter is seldom mistyped. And a slip of a finger (`_slip_of_a_finger`): a
    changed or added letter is one next to it on the keyboard."""
    if not one_edit_apart(typed, word):
        return False
    start = next((i for i, (x, y) in enumerate(zip(typed, word, strict=False)) if x != y), min(len(typed), len(word)))
    swapped = len(typed) == len(word) and typed[start : start + 2] == word[start : start + 2][::-1]
    return swapped or (start > 0 and typed[start - 1] not in _PART_STARTS and _slip_of_a_finger(typed, word, start))


_PART_STARTS = "._-:/="
_KEY_ROWS = ("1234567890-=", "qwertyuiop[]", "asdfghjkl;'", "zxcvbnm,./")


@cache
def _keys_near() -> dict[str, frozenset[str]]:
    """Each key of a QWERTY keyboard and the keys around it: beside it in its row, and the
    two above and the two below (each row sits half a key to the right of the one above)."""
    near: dict[str, set[str]] = {}
    for r, row in enumerate(_KEY_ROWS):
        for i, key in enumerate(row):
            around = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            if r > 0:
                around += [_KEY_ROWS[r - 1][j] for j in (i, i + 1) if j < len(_KEY_ROWS[r - 1])]
            if r + 1 < len(_KEY_ROWS):
                around += [_KEY_ROWS[r + 1][j] for j in (i - 1, i) if 0 <= j < len(_KEY_ROWS[r + 1])]
            near[key] = set(around)
    return {key: frozenset(keys) for key, keys in near.items()}


def _slip_of_a_finger(typed: str, word: str, at: int) -> bool:
    """Whether the edit at `at` that makes `word` into `typed` is one a finger makes: a letter
    left out (any), a key struck instead of its neighbour ("mathprig" for mathprog), or a key
    struck twice or with its neighbour ("glp_simplexx", "mathprlog"). "manim" is not "maxim":
    n and x lie apart, and a user asking about Manim names another thing than the
    documents' word."""
    if len(typed) < len(word):
        return True
    near, typed, word = _keys_near(), typed.lower(), word.lower()
    if len(typed) == len(word):  # one key for another
        a, b = typed[at], word[at]
        return b in near.get(a, ()) or (a in _PART_STARTS and b in _PART_STARTS)
    extra, around = typed[at], {typed[at - 1], typed[at + 1] if at + 1 < len(typed) else ""}
    return extra in around or any(extra in near.get(c, ()) for c in around)


def one_edit_apart(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance exactly 1: one character dropped, added or changed, or two
    neighbours swapped."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    if len(a) < len(b):  # a letter added
        return a[start:] == b[start + 1 :]
    if start == len(a):
        return False  # the same string
    return a[start + 1 :] == b[start + 1 :] or (  # a letter changed, or two neighbours swapped
        a[start : start + 2] == b[start : start + 2][::-1] and a[start + 2 :] == b[start + 2 :]
    )


_JSON_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def model_json(text: str) -> object:
    """A model's JSON reply, without the ```json fence models often wrap it in even when
    asked for JSON; raises ValueError (json.JSONDecodeError) when it is no JSON."""
    return json.loads(_JSON_FENCE.sub("", text.strip()))


# A request for a summary, then a document named after it ("summarise the pricing guide");
# or a whole document named ("the entire handbook"). Read as the first cue, then a noun after
# it: one pattern with ".*" between them scanned the rest of the question from every cue, and
# "tl;dr " repeated to the 8,000-character cap took half a second per call.
_SUMMARY_CUE = re.compile(r"\b(summari[sz]e|summary of|overview of|outline of|key points of|tl;?dr)\b", re.I)
_DOCUMENT_NOUN = re.compile(r"\b(document|file|report|paper|pdf|handbook|manual|book|chapter|guide|article)\b", re.I)
_WHOLE_DOCUMENT = re.compile(
    r"\b(whole|entire|full|complete)\s+(document|file|report|paper|pdf|handbook|manual|text|book)\b", re.I)


def asks_for_whole_document(question: str) -> bool:
    """Whether a question asks about a whole document ("summarise the pricing guide"): the
    router sends it the document whole, and it stands on its own after other questions."""
    cue = _SUMMARY_CUE.search(question)
    return bool((cue and _DOCUMENT_NOUN.search(question, cue.end())) or _WHOLE_DOCUMENT.search(question))


def counted(n: int, noun: str) -> str:
    """"1 file", "0 files", "1,200 chunks": a count with its noun, in the plural unless it is
    one. For the nouns we count, all of which take an "s"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
