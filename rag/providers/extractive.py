"""The offline answerer: a grounded extractive summary of the retrieved passages.

With no model to write prose, the honest answer is the documents' own sentences: we score
every sentence of the numbered passages against the question (embedding similarity plus
word overlap), add a prior for the passages retrieval ranked first (it read the whole
corpus; the sentence score reads only the question and the sentence), quote the best in
document order with their `[n]`, and say plainly that this is the offline mode. Below a
support threshold it says the documents do not seem to answer, rather than quoting noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import pairwise
from typing import Literal

from rag.keyterms import as_typed, key_terms, missing_terms
from rag.providers.minilm import MiniLM
from rag.refusal import NOT_FOUND
from rag.sentences import heading_line
from rag.text import (
    CELL_BREAK,
    FENCE,
    STOPWORDS,
    TABLE_ROW,
    TABLE_RULE,
    anchors,
    another_language,
    content_words,
    in_some_form,
    share_present,
    stem_words,
)
from rag.types import Message, Passage

OFFLINE_NOTE = (
    "_Offline mode: no Gemini key is set, so this answer quotes the most relevant passages "
    "of your documents instead of writing a new one. Set GEMINI_API_KEY to get written answers._"
)
# After a refusal of a question in another language: the offline model matches English words.
ENGLISH_ONLY = " The offline model reads English: asked in English, the question may find its answer."

# A sentence ends at ". " before a capital, a digit or a quote; at a blank line; before a list
# item; and at a line's closing period before a line that opens with a call or a term and
# its description, as a reference manual's next entry does ("... specified by the elements
# of the vector." over "playblocking (player)"; "... are implemented as key/value options."
# over "skip With the package option skip ..."; "e.g.", "etc.", "et al." or "Sec." at a line
# end ends nothing, nor does a qualified name broken there, "numpy." over "linalg.norm(x)",
# nor "heapq." over "nsmallest(n, iterable)", nor a line opening with a function word,
# "in The TeXbook": `_sentence_parts`).
# A manual's entry opens a line with a term, then a call or what the term is ("playblocking
# (player)", "indent With the package option indent ..."): `_SENTENCE_END` and `_entries`.
_TERM = r"[a-z_][\w-]*"
# A command-line option opening a line ("--interior use interior point method", "-W Disable
# use of a windowing system"): a manual's list of options, one entry per flag, which ends
# no sentence (many an entry has no period) and was quoted as one run of them all.
_FLAG = r"[ \t]*--?[A-Za-z][\w-]*(?=[\s,=\[]|$)"
_FLAGS_ONLY = re.compile(rf"(?:{_FLAG},?)+[ \t]*")  # "--norc" over "-f Don't read ...": one entry
_ENTRY = rf"{_TERM} (?:\(|[A-Z])"
# Abbreviations that end no sentence before a capital or a figure, as written: "e.g.
# Windows", "approx. 5 m", "Sec. 2", "Knuth et al. 1984". Before, ". " cut each from what
# followed. Listed as written, case and all, and standing alone (not the end of
# "sendmail.cf"): "p." and "fig." in lower case end sentences as variables in these manuals
# ("the path p. If p is cyclic"), and "etc.", "resp." and "ms." often end one.
_ABBREVIATIONS = ("e.g.", "E.g.", "i.e.", "I.e.", "cf.", "Cf.", "vs.", "al.", "approx.", "Sec.", "Fig.", "Figs.",
                  "Eq.", "Eqs.", "Vol.", "viz.", "incl.", "Dr.", "Mr.", "Mrs.", "Prof.")
# Octave's "fontsize: scalar, def. 10" (444 in its manual) is a default before its value;
# the Python docs' "the function containing the def. See section ..." ends a sentence.
_DEFAULT_BEFORE_VALUE = r"(?<!(?<![\w.])def\.(?=\s+[\d\"'\[{(-]))"
# At a line end, more end nothing: a manual's next line is read as its next entry only after
# a sentence that ends there.
_LINE_END_ABBREVIATIONS = ("e.g.", "E.g.", "i.e.", "I.e.", "etc.", "Etc.", "cf.", "Cf.", "vs.", "al.", "approx.",
                           "sec.", "Sec.", "fig.", "Fig.", "eq.", "Eq.", "resp.", "p.", "pp.")
# A period inside a closing quote or bracket ends a sentence too: GLPK's "(This code may
# appear only if the presolver is disabled.) GLP_ENOPFS Unable to start the search". Only a
# period, and only after a sentence (`_encloses_a_sentence`): not "(on-screen!) 15 pixels",
# "'^' (Caret.) Matches", a quoted symbol ("given as a '.' (dot)"), nor an ellipsis closing a
# call's arguments ("and (x1, x2, . . .) Return the logical AND"), which heads its description.
_OPENER = {'"': '"', "”": "“", "’": "‘", "'": "'", ")": "(", "]": "["}  # each closer's opener
_CLOSERS = re.escape("".join(_OPENER))  # the closers, for a character class
_CLOSED_AFTER_STOP = (rf"(?<=\.[{_CLOSERS}])(?<!\.\.[{_CLOSERS}])(?<!\. \.[{_CLOSERS}])"
                      rf"(?<![\"'‘“]\.[{_CLOSERS}])")


def _not_after(words: Sequence[str]) -> str:
    """A lookbehind for each of `words`: none of them, standing alone, ends just before."""
    return "".join(rf"(?<!(?<![\w.]){re.escape(w)})" for w in words)


_SENTENCE_END = re.compile(
    rf"(?:(?<=[.!?]){_not_after(_ABBREVIATIONS)}{_DEFAULT_BEFORE_VALUE}|{_CLOSED_AFTER_STOP})\s+"
    r"(?=[A-Z0-9\"'(\[`*])"
    r"|\n{2,}|\n(?=\s*(?:[-*•]|\d+\.)\s)"
    rf"|(?<=\w\.){_not_after(_LINE_END_ABBREVIATIONS)}\n(?={_ENTRY})"
    rf"|\n(?={_FLAG})"
)
_ENTRY_HEAD = re.compile(rf"{_ENTRY}|{_FLAG}")  # a term's entry, or an option's
_LINE_WORD = re.compile(_TERM)

# A period inside a short parenthesis or square bracket ends no sentence: "(app. 5/18 ex)",
# "[see Sec. 2.3]". Round and square count alike, so a half-open interval ("(0, 1]") closes.
_BRACKET_CHARS = 40
_OPENING, _CLOSING = "([", ")]"
_CLOSES_FIRST = re.compile(r"[^()\[\]]*[)\]]")  # a closing bracket before any other bracket


def _sentence_parts(text: str) -> list[str]:
    """`text` cut at each `_SENTENCE_END` that ends something (`_ends_sentence`)."""
    parts: list[str] = []
    start = counted = depth = 0  # depth: brackets open in the sentence so far, counted up to `counted`
    for end in _SENTENCE_END.finditer(text):
        between = text[counted : end.start()]
        depth += sum(map(between.count, _OPENING)) - sum(map(between.count, _CLOSING))
        counted = end.start()
        if _ends_sentence(text, end, depth):
            parts.append(text[start : end.start()])
            start = counted = end.end()
            depth = 0
    return [*parts, text[start:]]


def _encloses_a_sentence(text: str, at: int) -> bool:
    """Whether the quote or bracket closing just before `at` (after a period) holds three
    words or more since it opened, within `_BRACKET_CHARS` * 4: an aside, not a label
    ("(Caret.)") or a word quoted ('"auto."')."""
    opened = text.rfind(_OPENER[text[at - 1]], max(0, at - 4 * _BRACKET_CHARS), at - 2)
    return opened >= 0 and len(text[opened + 1 : at - 2].split()) >= 3


def _ends_sentence(text: str, end: re.Match[str], depth: int) -> bool:
    """Not a period, "!" or "?" inside a bracket that closes within `_BRACKET_CHARS`: an
    abbreviation there ("the default rule thickness is equal to that of \\underbrace (app.
    5/18 ex)") cut the sentence before its figure. Nor a line end before a function word
    ("Knuth et al." over "in The TeXbook"), which opens no manual's entry."""
    closed = text[end.start() - 2 : end.start()]  # ".)" : the stop inside a closing quote or bracket
    if (len(closed) == 2 and closed[0] == "." and closed[1] in _OPENER and "\n\n" not in end.group()
            and not _encloses_a_sentence(text, end.start())):
        return False
    after = text[end.end() :]
    if (depth > 0 and text[end.start() - 1 : end.start()] in ".!?" and "\n\n" not in end.group()
            and _CLOSES_FIRST.match(after[:_BRACKET_CHARS])):
        return False
    if end.group() != "\n":
        return True
    if after.lstrip(" \t").startswith("-"):  # an option's line (`_FLAG`)
        lines = text[: end.start()].rsplit("\n", 2)  # the last two lines before it
        return _ends_entry(lines[-2] if len(lines) > 1 else "", lines[-1])
    return not _function_word_first(after)


_OPTION_LINE = re.compile(_FLAG)
_ENDS_ENTRY = re.compile(r"[.:;)\]][ \t]*$")
_LAST_WORD = re.compile(r"(\w+)[ \t]*$")  # a word ending the line, no stop after it


def _ends_entry(before: str, line: str) -> bool:
    """Whether the option's line after `line` (itself after `before`) starts an entry: `line`
    ends a sentence or an option's bracket ("--simplex use simplex method (default)"), or is
    an option's line or its description's next line ("--wfreemps filename" over "write
    problem to filename in free MPS format"); but not after a line naming only flags
    ("--norc" over "-f Don't read ...": its aliases), nor after one ending in a function
    word or a comma ("-c command is used, ... When" over "-m module is used": prose whose
    lines happen to start with flags). Otherwise a sentence wraps before a flag it names
    ("Compile it using gcc" over "-O2 for speed", "Unless the" over "-globalwrite (or
    -nosafe) option is enabled")."""
    last = _LAST_WORD.search(line)
    if _FLAGS_ONLY.fullmatch(line) or line.rstrip().endswith(",") or (
            last is not None and last.group(1).lower() in STOPWORDS):
        return False
    return (_ENDS_ENTRY.search(line) is not None or _OPTION_LINE.match(line) is not None
            or _OPTION_LINE.match(before) is not None)


def _function_word_first(line: str) -> bool:
    """Whether `line` opens with a function word in lower case ("in The TeXbook", "the LaTeX
    kernel ..."): a sentence going on, which no manual's entry opens with."""
    word = _LINE_WORD.match(line)
    return word is not None and word.group() in STOPWORDS


# Markdown bold around a word or phrase ("- **Traffic**: questions per minute"): quoted bare,
# since stripping the list marker left "Traffic**:". Not Python's "**kwargs" nor "2**10".
_BOLD = re.compile(r"(?<![\w*])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])")
# A blank line between a block that ends mid-sentence and one that goes on in lower case: HTML
# extraction puts inline code on lines of its own ("use\n\ncollections.deque\n\nwhich").
_RUN_ON_BREAK = re.compile(r"(?<=[^.!?:;\s])[ \t]*\n(?:[ \t]*\n)+[ \t]*(?=[a-z_])")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s*$")
_NUMBER_MARK = re.compile(r"^\d+[.)]\s+")  # "3. /var/tmp": a numbered item's number
_MARKER = re.compile(r"^(?:[-*•#]+(?:\s+|$))+")  # list markers and heading hashes before a unit's text
# A document's own reference mark after a word ("... Styles” [3].", a paper's "[12, 14]"):
# quoted as it is, it reads as the reply's citation of passage 3, which the sources list
# then marks cited and whose chip opens it. Code spans keep theirs ("`argv [1]`").
_REFERENCE_MARK = re.compile(r"\s+\[\d+(?:\s*,\s*\d+)*\]")
_CODE_SPAN = re.compile(r"(`[^`]*`)")
THEN_CHARS = 300  # a code block, a list or an answer up to this long is quoted with the sentence before it


@dataclass(frozen=True)
class Quotable:
    """A unit of a passage as the answerer may quote it: the text, the heading line it stands
    under inside the passage ("" when none), and whether it was a list item, which often
    names nothing but a label and a figure ("- Input: $0.30 per 1M tokens") and means
    nothing without that heading ("Gemini 2.5 Flash")."""

    text: str
    heading: str = ""
    item: bool = False
    # Quoted after it: the short code block it introduces ("... such as this:"), or the
    # answer to the question it is (an FAQ's "How do I ...?"). Not scored.
    then: str = ""


def _without_reference_marks(quote: str) -> str:
    """The quote without the document's own reference marks outside its code spans (see
    `_REFERENCE_MARK`): only the reply's marks may name passages."""
    parts = _CODE_SPAN.split(quote)  # prose, code, prose, ...
    return "".join(part if i % 2 else _REFERENCE_MARK.sub("", part) for i, part in enumerate(parts))


def split_sentences(text: str) -> list[str]:
    """Sentences with their line wraps undone, heading lines dropped (`quotable_sentences`)."""
    return [q.text for q in quotable_sentences(text, "")[0]]


def quotable_sentences(text: str, heading: str) -> tuple[list[Quotable], str]:
    """Sentences with their line wraps undone, and the heading in force after them. Heading
    lines (Markdown `#`, or a short line without punctuation, as PDF extraction leaves them)
    end a sentence and become the heading of those after them, unless the sentence runs on
    into the next line in lower case ("To implement a queue, use" over "collections.deque
    which was designed to", as HTML extraction wraps lines at inline code). `heading`: the
    one in force where `text` starts."""
    lines = _RUN_ON_BREAK.sub("\n", text).splitlines()
    following = [*lines[1:], ""][: len(lines)]
    out: list[Quotable] = []
    block: list[str] = []
    lead: int | None = None  # the unit ending in ":" whose list may follow, in blocks of their own
    listed: list[str] = []

    def list_ends() -> None:
        """The items of a short list quoted after the sentence introducing it ("directories
        are searched in the following order:" and "/var/tmp; /usr/tmp; /tmp"): items too
        short to be units of their own are what such a question asks for."""
        nonlocal lead, listed
        said = "; ".join(listed)
        if lead is not None and said and len(said) <= THEN_CHARS and not out[lead].then:
            out[lead] = replace(out[lead], then=said)
        lead, listed = None, []

    for line, nxt in [*zip(lines, following, strict=True), ("", "")]:
        if line and not heading_line(line, nxt):
            block.append(line)
            continue
        numbered = False  # "1. Install it." splits after "1.", as after a sentence
        for part in _sentence_parts("\n".join(block)):
            quoted = _unit_text(part)
            item = numbered or _LIST_ITEM.match(part) is not None
            number_only = _NUMBERED.match(part) is not None
            if lead is not None and not number_only:
                if item and quoted:
                    listed.append(_NUMBER_MARK.sub("", quoted))
                else:
                    list_ends()
            if len(quoted) >= 20:
                out.append(Quotable(quoted, heading, item))
                if quoted.endswith(":"):
                    list_ends()
                    lead = len(out) - 1
            numbered = number_only
        block = []
        if line:  # a heading line ends the list
            list_ends()
            heading = _bare(line).strip(" *#")
    list_ends()
    return out, heading


def _unit_text(part: str) -> str:
    """A sentence or list item as quoted: one line, without its list marker or heading
    hashes: a marker followed by a space, so "-DSQLITE_ENABLE_FTS4", "--skip 1" and "-1" keep
    their dashes, and a sentence ending "in C#" its hash."""
    return _MARKER.sub("", _bare(part))


def _bare(text: str) -> str:
    """One line of text, its runs of white space single spaces, Markdown bold removed."""
    return " ".join(_BOLD.sub(r"\1", text).split())


def split_units(text: str) -> list[str]:
    """The quotable units of a passage, in order (`quotable_units`), as plain text."""
    return [q.text for q in quotable_units(text)]


def quotable_units(text: str) -> list[Quotable]:
    """The quotable units of a passage, in order: sentences of prose, and each table row
    labelled with its header ("Model: gemini-2.5-pro; RPM: 5; ..."), since a row means
    nothing without its column names and holds the figures questions ask about. A code
    block's sentences never run into the prose around it, but a short code block goes with
    the sentence that introduces it ("change out of WAL mode using a pragma such as this:"
    and "PRAGMA journal_mode=DELETE;", `Quotable.then`): the sentence is what a question
    matches and what is scored, the code what it asks for; the code stays a unit of its own
    too, quoted once. Each carries the heading line it stands under in the passage."""
    units: list[Quotable] = []
    prose: list[str] = []
    code: list[str] | None = None  # the lines of the code block being read
    header: list[str] | None = None
    heading = ""
    lead_in = ""  # the prose's last sentence, when it introduces the code block after it ("For example:")

    def close_prose() -> None:
        nonlocal heading, lead_in
        read = "\n".join(prose).rstrip()
        found, heading = quotable_sentences(read, heading)
        units.extend(found)
        prose.clear()
        lead_in = _unit_text(_sentence_parts(read)[-1]) if found and read.endswith(":") else ""

    def close_code(lines: list[str]) -> None:
        nonlocal lead_in
        block = " ".join(" ".join(line.rstrip().removesuffix("\\") for line in lines).split())
        if lead_in and 0 < len(block) <= THEN_CHARS:
            # A lead-in too short to be a unit ("For example:") is quoted after the sentence before it.
            introduced = units[-1]
            said = "" if introduced.text.endswith(lead_in) else f"{lead_in} "
            units[-1] = replace(introduced, then=f"{said}`{block}`")
        prose.extend(lines)  # the code is also a unit of its own: a question may match it alone
        close_prose()
        lead_in = ""

    for line in [*text.splitlines(), ""]:
        if FENCE.match(line):  # code is a block of its own, and the fence is no text to quote
            if code is None:
                close_prose()
                code = []
            else:
                close_code(code)
                code = None
            header = None
            continue
        if code is not None:
            code.append(line)
            continue
        row = TABLE_ROW.match(line)
        if row is None:
            header = None
            prose.append(line)
            continue
        close_prose()
        if TABLE_RULE.match(line):
            continue
        cells = [_BOLD.sub(r"\1", cell.strip().replace("\\|", "|")) for cell in CELL_BREAK.split(row.group(1))]
        if header is None:
            header = cells
            continue
        units.append(Quotable(
            "; ".join(f"{name}: {cell}" if name else cell for name, cell in zip(header, cells, strict=False)),
            heading,
        ))
    if code is not None:  # the passage ends inside a code block
        close_code(code)
    close_prose()
    return _answered(_entries(units))


# A unit ending in a letter or a comma: its sentence goes on (a figure, a page number or a
# contents line's ". . . 81" ends no sentence either way, and is left unmarked).
_ENDS_CLAUSE = re.compile(r"(?:[^\W\d_]|,)$")
CUT_MARK = " …"  # after a quote whose sentence the passage cuts off (`cut_short`)


def cut_short(text: str) -> int | None:
    """The position of the passage's last unit when the passage ends in the middle of its
    sentence (a PDF's chunk ends at a line end, and the sentence goes on in the next chunk),
    so the reply marks its quote "…" rather than pass a fragment off as the sentence. None
    when the passage ends a sentence or a list item, a table row or a heading, or when its
    last line is not the end of its last unit (a page number, a line too short to quote)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or _LIST_ITEM.match(lines[-1]) or TABLE_ROW.match(lines[-1]) or heading_line(lines[-1], ""):
        return None
    units = quotable_units(text)
    if not units:
        return None
    last = " ".join(units[-1].text.split())
    if not _ENDS_CLAUSE.search(last) or not last.endswith(" ".join(lines[-1].split())):
        return None
    return len(units) - 1


def marked_cut(s: Scored, cut: int | None) -> str:
    """The quote, with `CUT_MARK` when it ends in the passage's cut-off sentence: the unit
    itself, or the unit it is quoted with (an FAQ question's answer, `Quotable.then`)."""
    ends_cut = cut is not None and (s.position == cut or (bool(s.then) and s.position == cut - 1))
    return f"{s.quoted}{CUT_MARK}" if ends_cut else s.quoted


# A sentence that says how to do what the one before it asks for, pointing back to it or
# starting its steps: "In mathtools this can be done by setting the key showonlyrefs ...",
# "To do this, use ...", "First we define a brand new tag form: ...".
_DOES_THAT = re.compile(
    r"^(?:\S+\s+){0,3}?(?:this|that)\s+(?:can|could|may|is|will)\s+(?:(?:easily|also)\s+)?(?:be\s+)?"
    r"(?:done|achieved|accomplished|obtained)\b"
    r"|^(?:to|for)\s+(?:do|doing|achieve|achieving|get)\s+(?:this|that|so)\b"
    r"|^for\s+(?:this|that)\s+purpose\b"
    r"|^first(?:,|\s+(?:we|you|one)\b)", re.I)


# A sentence that goes on from the one before it, opening by pointing back: "round(2.675,
# 2) gives 2.67 instead of the expected 2.68." then "This is not a bug: ...", "This routine
# ..." after the sentence naming it, or the exception to it: "Attempting to use an index
# that is too large will result in an error" then "However, out of range slice indexes are
# handled gracefully when used for slicing"; or a note or a case of it ("Note that ...", "In
# this case ...", "If not, ..."); or what the thing it named does ("It creates an oct-file"),
# or an example of it ("For example, ...").
_REFERS_BACK = re.compile(
    r"(?:This|That|These|Those|Such|Otherwise|Therefore|Thus|Hence|However|But|Instead|Nevertheless"
    r"|Note|In (?:this|that|such an?|either|both) cases?|If so|If not|Also|It|They|Its|Their"
    r"|For (?:example|instance))\b")


def _answered(units: list[Quotable]) -> list[Quotable]:
    """Each question the document asks quoted with the sentence after it, its answer: an FAQ's
    "How do I use a string literal that contains an embedded single-quote (') character?"
    matches a user's question best, and says nothing; "The SQL standard specifies that
    single-quotes in strings are escaped by putting two single quotes in a row." does. So
    is a need a manual states, with the sentence saying how (`_DOES_THAT`): "Another
    problem sometimes faced is the need for showing the equation numbers for only those
    equations actually referenced." matches the question, "In mathtools this can be done by
    setting the key showonlyrefs ..." answers it. And so is a sentence with the one after it
    when that one opens by pointing back (`_REFERS_BACK`): "This is not a bug: ..." is what
    a user asking "is that a bug?" needs after the sentence that matched."""
    return [
        replace(unit, then=after.text) if (
            (unit.text.endswith("?") or _DOES_THAT.match(after.text) or _REFERS_BACK.match(after.text))
            and not unit.then and not after.text.endswith("?")
            and len(after.text) <= THEN_CHARS and after.heading == unit.heading
        ) else unit
        for unit, after in pairwise(units)
    ] + units[-1:]


# A numbered section's start.
_SECTION_START = re.compile(r"\d+(?:\.\d+)* [A-Z]")


def _entries(units: list[Quotable]) -> list[Quotable]:
    """Each manual's entry (`_ENTRY_HEAD`) quoted with the rest of it, when short
    (`THEN_CHARS`): its first sentence names the option and matches the question, the next
    ones say what a user asks of it ("indent With the package option indent it is possible
    to explicitly set the paragraph indentation." then "Using this option without a value
    keeps the document class indentation unchanged, ..."). It ends at the next entry, a
    numbered section or another heading, or with the passage, unless the passage ends in
    the middle of a sentence."""
    out = list(units)
    for at, head in enumerate(units):
        if head.then or head.item or not _ENTRY_HEAD.match(head.text) or _function_word_first(head.text):
            continue  # not "the LaTeX kernel ...", a sentence a chunk starts in the middle of
        rest = units[at + 1 :]
        end = next((i for i, u in enumerate(rest)
                    if _ENTRY_HEAD.match(u.text) or _SECTION_START.match(u.text) or u.heading != head.heading),
                   None if rest and _ENDS_CLAUSE.search(rest[-1].text) else len(rest))
        said = " ".join(u.text for u in rest[:end]) if end else ""
        if said and len(said) <= THEN_CHARS:
            out[at] = replace(head, then=said)
    return out


def section(heading: str) -> str:
    """The innermost heading of a heading path: the context a bare sentence or row lacks."""
    return heading.rsplit(">", 1)[-1].strip()


Kind = Literal["number", "date", "name", "steps", "other"]

_KIND_CUES: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    ("date", re.compile(r"^\s*when\b|\b(what|which) (year|date|day|month)\b|\bhow long ago\b", re.I)),
    ("number", re.compile(
        r"\bhow (many|much|long|big|large|often|far|fast|quickly|old|high|low)\b|\bwhat (is|are) the "
        r"(limit|maximum|minimum|size|number|price|cost|rate|default)|\b(percentage|price|cost)\b"
        r"|\bwhat(?:'s| is| are| was| were) (the|our|its|their) "
        r"(longest|shortest|largest|smallest|biggest|highest|lowest)\b"
        r"(?! (?:path|common|prefix|suffix|match)\b)", re.I)),
    ("steps", re.compile(r"\bhow (do|can|should|would) (i|you|we)\b|\bhow to\b|\bsteps?\b|\bwhat should\b", re.I)),
    ("name", re.compile(r"^\s*(who|which)\b|\bwhat (is|was) the name\b|\bwhich (model|one|function|command)\b", re.I)),
    # A bill, a fee, a charge: a figure, unless the question asks how to do something with it.
    ("number", re.compile(r"\b(bill|fees?|(?<!of )charges?)\b", re.I)),
)
_NUMBER = re.compile(r"\d")
_DATE = re.compile(
    r"\b(19|20)\d\d\b|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d|\b\d{1,2} "
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w.-]+|`[^`]+`|\b\w+[._]\w+")
_STEP = re.compile(
    r"^(?:\d+[.)]\s*)?(?:to \w+|use|set|call|run|add|wait|retry|stop|check|create|install|pass|make|keep|"
    r"send|read|open|choose|pick|enable|disable|turn|put|parse|avoid|never|always|do not|don't)\b", re.I)


def question_kind(question: str) -> Kind:
    """What sort of thing the question asks for; a sentence holding that sort of thing (a
    figure for "how many", an instruction for "how do I") is the likelier answer."""
    return next((kind for kind, cue in _KIND_CUES if cue.search(question)), "other")


def fits_kind(unit: str, kind: Kind) -> bool:
    if kind == "number":
        return bool(_NUMBER.search(unit))
    if kind == "date":
        return bool(_DATE.search(unit))
    if kind == "name":
        return bool(_NAME.search(unit))
    if kind == "steps":
        return bool(_STEP.search(unit)) or " should " in f" {unit.lower()} " or " must " in f" {unit.lower()} "
    return False


def rank_prior(weight: float, rank: int) -> float:
    """What a unit of the passage retrieval ranked `rank`-th (from 0) adds to its support
    when units are chosen: `weight / (rank + 1)`."""
    return weight / (rank + 1)


@dataclass(frozen=True)
class Scored:
    """A unit with its support (how well it answers the question by itself; the refusal
    reads it) and its passage's prior (`rank_prior` over the passage's retrieval rank);
    units are chosen by the sum."""

    passage: Passage
    sentence: str
    position: int
    score: float
    prior: float = 0.0
    label: str = ""  # the heading a list item is quoted under (`_Unit.label`)
    then: str = ""  # quoted after the sentence (`Quotable.then`)

    @property
    def ranking(self) -> float:
        return self.score + self.prior

    @property
    def said(self) -> str:
        """The sentence with what is quoted after it (`Quotable.then`)."""
        return f"{self.sentence} {self.then}" if self.then else self.sentence

    @property
    def quoted(self) -> str:
        """The sentence as the reply quotes it: a list item after its heading, a lead-in
        before its code, a question before its answer."""
        return f"{self.label} — {self.said}" if self.label else self.said


@dataclass(frozen=True)
class _Unit:
    passage: Passage
    text: str
    position: int
    context: str  # the innermost heading of the passage's heading path (`section`)
    overlap: float
    item: bool  # a list item (`Quotable.item`)
    heading: str = ""  # the heading line above it in the passage's text, when not `context`
    then: str = ""  # quoted after it, not scored (`Quotable.then`)

    @property
    def label(self) -> str:
        """The heading line a list item is quoted under, unless the item names it already:
        "Input: $0.30 per 1M tokens" means nothing in a reply without "Gemini 2.5 Flash" above
        it, and the items of two such lists may be quoted side by side. Only a line of the
        passage's own text: the citation check reads the quote against that text, and the
        heading path is shown with the source."""
        if not self.item or not self.heading:
            return ""
        return "" if set(content_words(self.heading)) <= set(content_words(self.text)) else self.heading

    @property
    def read_as(self) -> str:
        """What is embedded: the unit with its headings, which often name its subject."""
        head = " > ".join(h for h in (self.context, self.heading) if h)
        return f"{head}: {self.text}" if head else self.text


@dataclass(frozen=True)
class Support:
    """What the passages offer toward an answer: the scored units, and the signals the
    refusal reads. Kept as one object so the evaluation can study the same numbers the
    answerer decided on."""

    scored: tuple[Scored, ...]  # best first by support plus prior (`Scored.ranking`)
    missing: tuple[str, ...]  # key terms found in no passage
    unheard: tuple[str, ...]  # words no document holds that the question rests on (`ExtractiveAnswerer.unheard`)
    best: float  # the highest support of a unit (meaning, word overlap, kind, literal tokens), prior aside
    similarity: float  # the best cosine of a unit (read with its heading) to the question
    coverage: float  # share of the question's content words in the first passages
    kind_absent: bool  # asks for a number, date or name that no passage's units hold
    top_score: float  # the first passage's retrieval score
    margin: float  # ... minus the second's


COVERAGE_PASSAGES = 3  # the passages an answer is mostly quoted from
UNHEARD_PASSAGES = 6  # the passages whose words may mean a word no document holds (as measured: k = 6)


class ExtractiveAnswerer:
    """Composes answers from sentences; shares the offline embedder's model."""

    def __init__(
        self,
        model: MiniLM,
        *,
        max_sentences: int = 8,
        reply_chars: int = 1200,
        relative_floor: float = 0.6,
        min_support: float = 0.30,
        max_candidates: int = 32,
        kind_bonus: float = 0.08,
        anchor_bonus: float = 0.10,
        rank_prior: float = 0.2,
        unheard_weight: float = 0.10,
        unheard_near: float = 0.45,
        unheard_rarer_than: int = 8_000,
    ) -> None:
        self.model = model
        self.max_sentences = max_sentences
        self.reply_chars = reply_chars  # the reading budget: quoting stops once the units reach it
        self.relative_floor = relative_floor  # a unit quoted scores at least this share of the best
        self.min_support = min_support
        self.max_candidates = max_candidates  # units embedded per answer: one batch of the model
        self.kind_bonus = kind_bonus  # a unit holding what the question asks for
        self.anchor_bonus = anchor_bonus  # a unit holding the question's literal tokens ("429")
        # A unit of the passage retrieval ranked r-th (from 0) is chosen as if it scored
        # rank_prior / (r + 1) more: hybrid search, the line ranking and the second stage
        # read the whole corpus, the unit's score only the question and the unit. Chosen by
        # leave-one-set-out on the four test sets (README: Evaluation); refusals are
        # unchanged, since the support floor reads the units' own scores.
        self.rank_prior = rank_prior
        # min_support 0.30, measured on corpus/eval (51 answerable, 7 unanswerable cases):
        # 3 false refusals and 2 of 7 unanswerable refused; 0.35 gave 7 and 3, 0.40 gave 11 and 3.
        # Quoting the closest passages for an unanswerable question is the lesser harm.
        # A word no document holds (`AnswerTask.unheard_of`) is a reason to refuse when the
        # question rests on it (its vector moves by `unheard_weight` or more without the
        # word) and no word of the passages comes near it in meaning (cosine below
        # `unheard_near`): "gym" in "how much does the gym membership cost?" asked of a
        # handbook that prices parking. A user's word for what the documents word otherwise
        # has a neighbour there ("mac": macOS 0.78, "silence": 0.49, "stdlib": 0.56).
        # Chosen on the four test sets (README: Evaluation).
        self.unheard_weight = unheard_weight
        self.unheard_near = unheard_near
        # ... and only when the word is not an ordinary English word: the tokenizer's
        # vocabulary lists whole words by frequency (from id 1996, "the"), and one listed
        # before `unheard_rarer_than` (about the 6,000 commonest) is how a user phrases a
        # question ("happens", "measured"), not what it is about; a small collection that
        # never says "happen" still answers "what happens to hotel stays?". On the four test
        # sets no refusal rests on such a word (the commonest that did: "ram", 8,223; the
        # commonest word held nowhere that did not: "qualify", 7,515).
        self.unheard_rarer_than = unheard_rarer_than
        # reply_chars 1200: the answer was in the first three passages twice as often as in a
        # reply of 600 on a held-out set; 900 found more on each of the four test sets (750
        # did not), and 1200 more again on each of five (answers in reply 144 -> 156 of 452),
        # for replies 1-15% longer citing a few more passages (README: Evaluation).
        # relative_floor 0.6: 0.5 found one more sample answer but cited more unrelated passages.

    def answer(
        self,
        question: str,
        passages: Sequence[Passage],
        mentioned_elsewhere: frozenset[str] = frozenset(),
        unheard_of: frozenset[str] = frozenset(),
    ) -> str:
        """Quotes, or a refusal: for too little support, or naming the key terms no passage
        mentions, unless their documents hold it elsewhere (`mentioned_elsewhere`), or the
        words no document holds that the question rests on (`unheard`)."""
        support = self.support(question, passages, mentioned_elsewhere, unheard_of)
        if support.missing:
            missing = ", ".join(as_typed(t, question) for t in support.missing)
            return f"{NOT_FOUND.rstrip('.')}: the passages found never mention {missing}.\n\n{OFFLINE_NOTE}"
        if support.unheard:
            unheard = ", ".join(as_typed(w, question) for w in support.unheard)
            return f"{NOT_FOUND.rstrip('.')}: none of the documents mentions {unheard}.\n\n{OFFLINE_NOTE}"
        picked = self.pick(support.scored, passages)
        if not picked:
            return f"{NOT_FOUND}{ENGLISH_ONLY if another_language(question) else ''}\n\n{OFFLINE_NOTE}"
        cut = {s.passage.n: cut_short(s.passage.text) for s in picked}  # once per passage
        lines = [f"{_without_reference_marks(marked_cut(s, cut[s.passage.n]))} [{s.passage.n}]" for s in picked]
        return "Based on your documents:\n\n" + "\n".join(f"- {line}" for line in lines) + f"\n\n{OFFLINE_NOTE}"

    def units(self, question: str, passages: Sequence[Passage]) -> list[_Unit]:
        """Every quotable unit that shares a word with the question (itself or through its
        section heading), in any of its forms ("keys" meets "key", "translate" "translates"):
        a sentence that shares nothing is not evidence, however similar its embedding looks.
        Its overlap score counts the exact words only (stemmed, it cost two PDF sets answers:
        README, Evaluation). A question without content words (blank, or all stopwords)
        shares none: its passages are not split at all."""
        q_words = set(content_words(question))
        if not q_words:
            return []
        q_stems = set(stem_words(q_words))
        stems: dict[str, str] = {}  # each distinct word stemmed once per answer
        out = []
        for passage in passages:
            outer = section(passage.heading)
            for position, quotable in enumerate(quotable_units(passage.text)):
                unit, context = quotable.text, outer
                local = quotable.heading if quotable.heading != outer else ""
                words = set(content_words(f"{context} {local} {unit}"))
                overlap = len(q_words & words) / len(q_words)
                if not overlap:
                    new = [w for w in words if w not in stems]
                    stems.update(zip(new, stem_words(new), strict=True))
                if overlap or not q_stems.isdisjoint(stems[w] for w in words):
                    out.append(_Unit(passage, unit, position, context, overlap, quotable.item, local,
                                     quotable.then))
        return out

    def support(
        self,
        question: str,
        passages: Sequence[Passage],
        mentioned_elsewhere: frozenset[str] = frozenset(),
        unheard_of: frozenset[str] = frozenset(),
    ) -> Support:
        """Each unit is scored by meaning (cosine to the question, read with its section
        heading), by the share of the question's words it or its heading contains, and by
        whether it holds what the question asks for (a figure, a date, a name, an
        instruction) and the question's literal tokens. Only the lexically best
        `max_candidates` units are embedded (embedding is the cost), plus the best unit of
        the top passage, which is always considered. The words the question rests on that
        no document holds (`unheard`) are looked at when no key term is missing."""
        missing = tuple(missing_terms(question, passages, mentioned_elsewhere))
        unheard = () if missing else self.unheard(question, passages, unheard_of)
        units = self.units(question, passages)
        kind = question_kind(question)
        scores = [p.score for p in passages[:2]]
        retrieval = (scores[0] if scores else 0.0, scores[0] - scores[1] if len(scores) > 1 else 0.0)
        coverage = _coverage(question, passages[:COVERAGE_PASSAGES])
        kind_absent = kind in ("number", "date", "name") and not any(fits_kind(u.text, kind) for u in units)
        if not units:
            return Support((), missing, unheard, 0.0, 0.0, coverage, kind_absent, *retrieval)
        candidates = self.worth_embedding(units, passages)
        vecs = self.model.embed([question, *(u.read_as for u in candidates)])
        semantic = vecs[1:] @ vecs[0]
        literal = anchors(question)
        rank = {p.n: r for r, p in enumerate(passages)}
        scored = sorted((
            Scored(u.passage, u.text, u.position, float(
                0.6 * sim + 0.4 * u.overlap
                + self.kind_bonus * fits_kind(u.text, kind)
                + self.anchor_bonus * share_present(literal, u.text)
            ), rank_prior(self.rank_prior, rank[u.passage.n]), u.label, u.then)
            for u, sim in zip(candidates, semantic, strict=True)
        ), key=lambda s: s.ranking, reverse=True)
        return Support(tuple(scored), missing, unheard, max(s.score for s in scored), float(semantic.max()), coverage,
                       kind_absent, *retrieval)

    def unheard(self, question: str, passages: Sequence[Passage], words: frozenset[str]) -> tuple[str, ...]:
        """Those of `words` (which no document holds), but the `ordinary` ones, that the
        question rests on and the passages have no word for: without the word, the question's vector moves by
        `unheard_weight` or more, and no word of the passages (text and headings, three
        letters or more; a hyphenated word also closed up) is within `unheard_near` of it.
        The words of the first `UNHEARD_PASSAGES` passages are embedded, in one batch of short
        texts, and only when a word weighs enough: a request for 50 passages costs no more."""
        asked = sorted(w for w in words if not self.ordinary(w))
        if not asked or not passages:
            return ()
        vecs = self.model.embed([question, *(re.sub(rf"(?i)\b{re.escape(w)}\b", " ", question) for w in asked)])
        heavy = [w for w, v in zip(asked, vecs[1:], strict=True) if 1.0 - float(v @ vecs[0]) >= self.unheard_weight]
        if not heavy:
            return ()
        said = {w.replace("-", "") for p in passages[:UNHEARD_PASSAGES] for w in content_words(f"{p.heading} {p.text}")
                if len(w) >= 3 and w.replace("-", "").isalpha()}  # "multi-factor" says "multifactor"
        near = self.model.embed([*heavy, *sorted(said)])
        own, theirs = near[: len(heavy)], near[len(heavy) :]
        return tuple(
            w for w, v in zip(heavy, own, strict=True) if not said or float((theirs @ v).max()) < self.unheard_near
        )

    def ordinary(self, word: str) -> bool:
        """Among the commonest English words (`unheard_rarer_than`): too ordinary to refuse on."""
        return self._vocabulary.get(word.lower(), self.unheard_rarer_than) < self.unheard_rarer_than

    @cached_property
    def _vocabulary(self) -> dict[str, int]:
        return dict(self.model.loaded_tokenizer().get_vocab())

    def candidates(self, question: str, passages: Sequence[Passage]) -> list[_Unit]:
        """The units `support` embeds and scores for this question (scripts/answer_fit.py
        studies them)."""
        units = self.units(question, passages)
        return self.worth_embedding(units, passages) if units else []

    def worth_embedding(self, units: Sequence[_Unit], passages: Sequence[Passage]) -> list[_Unit]:
        """The lexically best `max_candidates` units, plus the best unit of the top passage."""
        ranked = sorted(units, key=lambda u: u.overlap, reverse=True)
        chosen = ranked[: self.max_candidates]
        top = [u for u in ranked if u.passage.n == passages[0].n][:1]
        return chosen + [u for u in top if u not in chosen]

    def pick(self, scored: Sequence[Scored], passages: Sequence[Passage]) -> list[Scored]:
        """Of the units `scored` (best first, by support plus prior), the best, each within
        `relative_floor` of the best and at `min_support` or above (support plus prior: a
        unit of the first passage may be quoted with less support than one of the sixth),
        no near-duplicates, until they fill the reading budget (`reply_chars`, the last unit
        whole) or number `max_sentences` (then only a unit replacing kept ones comes in); in
        document order. None when no unit's own support
        reaches `min_support`: the refusal reads no prior. Holding each unit's own support to
        `min_support` as well was measured and lost answers on every set (README:
        Evaluation). A budget in characters, not a count of sentences: three long PDF
        sentences say as much as six short ones."""
        if not scored or max(s.score for s in scored) < self.min_support:
            return []
        floor = max(self.min_support, scored[0].ranking * self.relative_floor)
        kept: list[Scored] = []
        grown: list[Scored] = []  # kept units that replaced shorter ones
        length = 0
        for s in scored:
            if s.ranking < floor or length >= self.reply_chars:
                break
            said = [k for k in kept if _near_duplicate(s.sentence, k.sentence) or _near_duplicate(s.sentence, k.then)]
            if not all(_says_more_than(s.sentence, k.sentence) and not k.then and k not in grown for k in said):
                continue  # said already, or quoted after the unit before it (a lead-in's code)
            if len(kept) == self.max_sentences and not said:
                continue  # full: only a unit replacing kept ones may still come in
            # What it says with a little more replaces what shorter units kept say (`MORE_WORDS`),
            # once: a unit that replaced one is not replaced in turn, or the reply would grow
            # by MORE_WORDS times at each step.
            if said:
                grown.append(s)
            kept = [k for k in kept if k not in said]
            length -= sum(len(k.sentence) for k in said)
            if s.then and any(_near_duplicate(s.then, k.sentence) for k in kept):
                s = replace(s, then="")  # what follows it is quoted already: the sentence alone
            kept.append(s)
            length += len(s.sentence)
        order = {p.n: rank for rank, p in enumerate(passages)}
        return sorted(kept, key=lambda s: (order[s.passage.n], s.position))


def _coverage(question: str, passages: Sequence[Passage]) -> float:
    """Share of the question's distinct content words found in the passages (text, heading
    or file name), a plural or singular form counting."""
    wanted = set(content_words(question))
    if not wanted:
        return 1.0
    pool = set(content_words(" ".join(f"{p.source} {p.heading} {p.text}" for p in passages)))
    return sum(in_some_form(w, pool) for w in wanted) / len(wanted)


def _near_duplicate(a: str, b: str) -> bool:
    wa, wb = set(content_words(a)), set(content_words(b))
    return bool(wa and wb) and len(wa & wb) / min(len(wa), len(wb)) > 0.8


# A unit holding every word of a shorter one kept (with nothing quoted after it,
# `Quotable.then`), and at most this many times as many words, says the same and more:
# "... restores the default colormap (the viridis map with 64 entries)." after "The default
# colormap is returned.". A much longer one (a PDF's run of function entries holding any
# sentence's words) is a near duplicate, skipped as before.
MORE_WORDS = 3


def _says_more_than(a: str, b: str) -> bool:
    wa, wb = set(content_words(a)), set(content_words(b))
    return bool(wb) and wb < wa and len(wa) <= MORE_WORDS * len(wb)


def rewrite_follow_up(question: str, history: Sequence[Message]) -> str:
    """Deterministic standalone rewrite: a follow-up that leans on earlier turns
    (`leans_back`) gets the previous user question's content words appended. A question that
    stands on its own is searched as it is: the previous topic's words would pull its search
    there (scripts/chat_check.py)."""
    previous = next((m.text for m in reversed(history) if m.role == "user"), "")
    if not previous or not leans_back(question):
        return question
    words = content_words(question)
    missing = [w for w in dict.fromkeys(content_words(previous)) if w not in words]
    return f"{question.rstrip(' ?')} ({' '.join(missing)})?" if missing else question


# A question that goes on from the last one says so at its start, perhaps after an "ok" or
# a "thanks" ("and for Pro?", "ok, what about 503?", "what if the file has no header?",
# "for Windows?"), points back at a thing of the last answer within its first words ("the
# other option", "does the same thing work", "which one"; further on, "exactly the same
# thing" is the question's own), or ends asking for more ("the difference?"). Not a name
# that starts with such a word ("OR-Tools", "so-called").
_ASIDE = r"(?:(?:ok|okay|thanks|thank you|great|cool|right|sure|nice|hmm|yes|no)\b\W*)*"
_GOES_ON = re.compile(
    rf"^{_ASIDE}(?:and|but|also|or|so|what about|how about|what if)(?![-\w])"
    rf"|^{_ASIDE}(?:for|on|in|with|at|under|without|per|via)(?![-\w])(?:\W+[\w.-]+){{0,2}}\W*$"
    r"|^(?:\S+\s+){0,4}(?:the (?:same|other)(?= (?:one|ones|thing|things|way|option|options|kind|case)\b|\W*$)"
    r"|the others\b|(?:which|the (?:first|second|third|last|latter|former|previous)) ones?\b)"
    r"|\b(?:the difference|an example|anything else|what else)\W*$"
)
# "What other methods can I pick?" asks for more of what the last answer named, in a word
# of kind ("ways", "options"), unless it says more (`OTHER_WORDS`) or names its own subject
# ("what other ways can I write s.t. in a constraint?": `key_terms`). "Are there other
# packages for tables?" or "which other key sets the space?" stand on their own.
_OTHER = re.compile(
    rf"^{_ASIDE}(?:what|which|any|(?:are|is) there(?: any)?)\s+(?:other|another)\s+"
    r"(?:ways?|methods?|options?|ones?|things?|ideas?|alternatives?|choices?|settings?|values?|kinds?|types?"
    r"|approach(?:es)?|possibilit(?:y|ies)|solutions?)\b")
OTHER_WORDS = 3  # content words at most, the word of kind included
_CONTRACTED = re.compile(r"n't\b|'(?:s|re|ve|ll|d|m)\b")
_PERSONAL = frozenset({"it", "its", "itself", "they", "them", "their", "theirs", "he", "him", "his", "she", "her"})
# After "it", words that make it stand for nothing: "is it possible to ...?", "how long does
# it take to ...?", "does it matter whether ...?".
_DUMMY_IT = frozenset({"possible", "ok", "okay", "safe", "true", "normal", "worth", "necessary", "recommended",
                       "wise", "allowed", "take", "takes", "matter", "matters"})
_DEMONSTRATIVE = frozenset({"this", "that", "these", "those"})
# After "that", a word that opens a clause: "check that a file exists" points at nothing.
_OPENS_CLAUSE = frozenset({"a", "an", "the", "my", "your", "our", "its", "his", "her", "their", "all", "no", "each",
                           "every", "some", "i", "you", "we", "they"})
# Before "that", a noun these open ("a library that ...", "any module that ...") or one of
# these words: "that" relates a clause to it and points at nothing.
_DETERMINER = frozenset({"a", "an", "the", "any", "some", "every", "each", "no", "another"})
# "every time", "each day": after "that", an adverb, not a clause ("do I have to do that every time?").
_EVERY = frozenset({"every", "each"})
_TIMES = frozenset({"time", "day", "night", "morning", "week", "month", "year"})
_INDEFINITE = frozenset({"something", "anything", "nothing", "everything", "someone", "anyone", "somewhere",
                         "anywhere"})
PRONOUN_REACH = 7  # words from a question's start within which a pronoun seldom has anything in it to point at
DEMONSTRATIVE_REACH = 3


def leans_back(question: str) -> bool:
    """Whether a question leans on the turns before it: it says it goes on or points back at
    a thing of the last answer (`_GOES_ON`), or asks for other things without naming its
    subject (`_OTHER`: "what other methods can i pick?"); it is one word or none, naming nothing ("why?",
    "Flash-Lite?", "what's the difference?"); a personal pronoun comes within its first
    `PRONOUN_REACH` words ("will it get deleted by itself?", "why is its concurrency
    lower?"), where a question has seldom named yet what it could stand for, unlike "how
    do I add a legend to my plot and change its font?"; or a demonstrative stands for a
    thing ("forget that and call ...", "does that work?") or opens the question ("that page
    says what?"). A short question is not a follow-up for being short: "what's the GIL?"
    or "how do I add a legend to my plot?", asked after a question on something else, was
    searched with that question's words and lost its page (chat_check: 84 of 296 questions
    asked after another were rewritten, hit@6 down on three sets of four); so was a request
    for a whole document by name ("summarise the pricing guide"). Apostrophes of either
    kind split words ("it's" holds "it"); "IT" in capitals is no pronoun, nor an "it" that
    stands for nothing ("is it possible to ...?", `_DUMMY_IT`), nor a "that" that opens a
    relative clause ("a library that parses dates?", `_relative`)."""
    typed = question.strip().replace("\u2019", "'")
    lowered = typed.lower()
    if _GOES_ON.search(lowered) or (
        _OTHER.search(lowered) and len(content_words(lowered)) <= OTHER_WORDS and not key_terms(typed)
    ):
        return True
    if len(content_words(_CONTRACTED.sub("", lowered))) <= 1 and not key_terms(typed) and not another_language(typed):
        return True
    words = re.findall(r"[A-Za-z0-9_]+", typed)
    for at, word in enumerate(words):
        lower = word.lower()
        after = words[at + 1].lower() if at + 1 < len(words) else ""
        then = words[at + 2].lower() if at + 2 < len(words) else ""
        if lower in _PERSONAL and at < PRONOUN_REACH and word != "IT" and not (lower == "it" and after in _DUMMY_IT):
            return True
        if lower in _DEMONSTRATIVE and not _relative(words, at) and (
            at < DEMONSTRATIVE_REACH
            or (at < PRONOUN_REACH and (not after or (after in STOPWORDS and after not in _OPENS_CLAUSE)
                                         or (after in _EVERY and then in _TIMES)))
        ):
            return True
    return False


def _relative(words: Sequence[str], at: int) -> bool:
    """Whether the "that" at `at` relates a clause to the noun before it: a noun a
    determiner opens ("a library that", "any module that") or an indefinite pronoun
    ("something that"). A "that" after a verb is the verb's object ("does that work?",
    "use that instead?")."""
    if words[at].lower() != "that" or at == 0:
        return False
    before = words[at - 1].lower()
    opened = at >= 2 and words[at - 2].lower() in _DETERMINER and before not in STOPWORDS
    return opened or before in _INDEFINITE


def lexical_support(answer: str, passages: Sequence[Passage]) -> float:
    """Share of the answer's content words found in the passages: a labelled offline proxy
    for faithfulness, not a judgement."""
    words = content_words(answer)
    if not words:
        return 0.0
    pool = set(content_words(" ".join(p.text for p in passages)))
    return sum(w in pool for w in words) / len(words)
