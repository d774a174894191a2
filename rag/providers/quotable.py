"""A passage as the units an extractive answer may quote: sentences, list items, table rows
and a manual's entries, each with what it must be quoted with.

The offline answerer (rag.providers.extractive) scores units, not passages, so where a unit
ends decides what a reply can say: a sentence cut at "e.g." quotes half a thought, a table
row without its header quotes bare figures, an FAQ's question without its answer quotes
nothing. This module reads a passage's text alone (no question, no model); the citation
check and the UI's evidence view split text the same way, so a quote and the sentence it is
checked against are the same unit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from rag.sentences import heading_line, setext_underline
from rag.text import (
    CELL_BREAK,
    MARK,
    STOPWORDS,
    TABLE_ROW,
    TABLE_RULE,
    between,
    code_kept,
    fence_language,
    line_roles,
    without_code,
)

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
# groff's man pages write an attribute's entry as its setting, a period, then what it does
# ("epsilon=n. Sets the cutoff for the solver. The default is 0.1." in neato(1)): the
# setting is the entry's label (`_LABEL`), which ends no sentence, and the line it opens
# starts an entry whatever ends the line before ("(twopi-specific attributes)" over
# "ranksep=val. Specifies ...").
_SETTING = rf"{_TERM}=[^\s=]*\."
_SETTING_ENTRY = rf"{_SETTING}[ \t]+[A-Z]"
_ENTRY = rf"(?:{_TERM} (?:\(|[A-Z])|{_SETTING_ENTRY})"
_LABEL = re.compile(_SETTING)
# Abbreviations that end no sentence before a capital or a figure, as written: "e.g.
# Windows", "approx. 5 m", "Sec. 2", "Knuth et al. 1984". Before, ". " cut each from what
# followed. Listed as written, case and all, and standing alone (not the end of
# "sendmail.cf"): "p." and "fig." in lower case end sentences as variables in these manuals
# ("the path p. If p is cyclic"), and "etc.", "resp." and "ms." often end one. Those that end
# nothing at a line's end either come first (`_NEVER_END`).
_NEVER_END = ("e.g.", "E.g.", "i.e.", "I.e.", "cf.", "Cf.", "vs.", "al.", "approx.", "Sec.", "Fig.", "Eq.")
_ABBREVIATIONS = (*_NEVER_END, "Figs.", "Eqs.", "Vol.", "viz.", "incl.", "Dr.", "Mr.", "Mrs.", "Prof.")
# Octave's "fontsize: scalar, def. 10" (444 in its manual) is a default before its value;
# the Python docs' "the function containing the def. See section ..." ends a sentence.
_DEFAULT_BEFORE_VALUE = r"(?<!(?<![\w.])def\.(?=\s+[\d\"'\[{(-]))"
# At a line end, more end nothing: a manual's next line is read as its next entry only after
# a sentence that ends there.
_LINE_END_ABBREVIATIONS = (*_NEVER_END, "etc.", "Etc.", "sec.", "fig.", "eq.", "resp.", "p.", "pp.")
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
    rf"|\n(?={_FLAG})|\n(?={_SETTING_ENTRY})"
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
    if _LABEL.fullmatch(text, text.rfind("\n", 0, end.start()) + 1, end.start()):
        return False  # "epsilon=n." opening its line: the entry's label
    if end.group() != "\n":
        return True
    if _OPTION_LINE.match(after):  # an option's line (`_FLAG`); "- item" is a list's next item
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
_REFERENCE_MARK = re.compile(rf"\s+{MARK}")
# A web page's footnote marks (in group 1), glued to the word they note: a figure, with its
# percent, plural or degrees ("in 2019[4]", "3.11[2]", "50%[3]", "the 1990s[2]", "40°C[1]"),
# or a word's punctuation ("styles.[3]"), and a Markdown reference link's label ("see [the
# guide][1]"), after link text no name stands before; followed by white space, a stop or the
# end, never "[0]". Glued to any other word a mark is a subscript, quoted as code
# (`subscripts_as_code`), as after a capitalised word: "Paris[3]" may be "Items[0]" or
# Mathematica's "Prime[5]", whose text must not be lost.
_FOOTNOTE = re.compile(rf"(?:(?<![\w.`(\[-])(?:\d+(?:[.,]\d+)*(?:%|s|°[CF]?)?|[\w-]+[.,;!?\"”’]+)"
                       rf"|(?<![\w\]])\[[^\[\]]*[A-Za-z][^\[\]]*\])((?!\[0\])(?:{MARK})+)(?=[\s.,;:!?]|$)")
THEN_CHARS = 300  # a code block, a list or an answer up to this long is quoted with the sentence before it
# A code block up to this long is one unit, quoted whole; a longer one is quoted in parts (up
# to a blank line), and a part longer still in runs of whole lines up to this long.
CODE_CHARS = 600


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
    reach: int = 0  # how many of the units after it its `then` quotes (a cut-off one ends the quote)
    # A code block (or part of one): its lines as written, quoted as code; its `text` is them
    # joined, which is what is scored. "" for prose.
    code: str = ""
    lang: str = ""  # the code block's language, as its fence names it ("python"; `fence_language`)
    # Quoted before it: the sentence introducing the short code block it is (whose `then` it
    # is), so the code a question matched comes with what it shows. Not scored.
    lead: str = ""
    # A short sentence of a manual's entry, quoted with the entry (its `then`), never alone:
    # "The default is 0.75." names nothing, and was quoted for another attribute's default.
    entry_part: bool = False

    @property
    def said(self) -> str:
        """The text as it is quoted after the unit before it (`then`), among other units' text:
        code as inline code, and without its lead, which is that unit."""
        return inline_code(self.text) if self.code else self.text


def _ticks(code: str, least: int = 1) -> str:
    """A run of backticks longer than any the code holds (a Markdown sample's "```"), so that
    it cannot close the reply's span or fence; `least` long at least."""
    return "`" * max(least, max((len(run) for run in re.findall(r"`+", code)), default=0) + 1)


def inline_code(code: str) -> str:
    """Code on one line as a reply quotes it: in backticks (`_ticks`), spaced when it starts or
    ends in one."""
    ticks = _ticks(code)
    pad = " " if code.startswith("`") or code.endswith("`") else ""
    return f"{ticks}{pad}{code}{pad}{ticks}"


def as_code(code: str, lang: str = "") -> str:
    """A code block's lines as a reply quotes them: one line as inline code; several as a
    fenced block after a line end, so a session, a script or a run of shell commands keeps
    its lines (joined, "git add ." and "git commit" read as one command), its fence naming
    the block's language (`lang`) for the reader to highlight it. A reply ends its quote
    with it (`reply_item`)."""
    lines = [line.rstrip() for line in code.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    if len(lines) <= 1:
        return inline_code(_joined_code(lines))
    fence = _ticks(code, least=3)
    return "\n".join(["", fence + lang, *lines, fence])


def spoken(*parts: str) -> str:
    """Parts of a quote one after the other: a space between them, none before a code
    block's line end (`as_code`)."""
    return "".join(part if part.startswith("\n") or not i else f" {part}"
                   for i, part in enumerate(p for p in parts if p))


def reply_item(quote: str, cited: str) -> str:
    """A reply's list item for a quote and its citation mark ("[2]"): after the quote, or,
    when the quote ends in a code block (`as_code`), after the block, on a line of its own,
    the block indented into the item, so that the mark closes the claim the citation check
    reads (prose and code together)."""
    prose, _, block = quote.partition("\n")
    if not block:
        return f"- {quote} {cited}"
    cut = block.endswith(CUT_MARK)  # the passage ends inside the block (`cut_short`): said before the mark
    lines = [f"  {line}" if line else "" for line in block.removesuffix(CUT_MARK).splitlines()]
    head = f"- {prose.rstrip()}" if prose.strip() else f"- {lines.pop(0).lstrip()}"
    return "\n".join([head, *lines, f"  {CUT_MARK.strip() + ' ' if cut else ''}{cited}"])


# groff writes an option's dash as a minus sign (U+2212): "−Tpng", "−o outfile", "−−help".
_MINUS_BEFORE_NAME = re.compile("\u2212(?=[A-Za-z\u2212])")


def typed_dashes(quote: str) -> str:
    """The quote with a minus sign before a letter as the hyphen a shell takes: "−Tpng",
    quoted from a man page, was pasted into a terminal as an unknown option (blind set on
    graphviz-doc)."""
    return _MINUS_BEFORE_NAME.sub("-", quote)


def without_reference_marks(quote: str) -> str:
    """The quote without the document's own reference marks and footnotes outside its code
    spans (`_REFERENCE_MARK`, `_FOOTNOTE`): only the reply's marks may name passages."""
    masked = without_code(quote)
    marks = [m.span() for m in _REFERENCE_MARK.finditer(masked)] + [m.span(1) for m in _FOOTNOTE.finditer(masked)]
    return "".join(between(quote, sorted(code_kept(quote, masked, span) for span in marks)))


# A name with a subscript ("sys.argv[1]", "a[0][2]", "matrix[i][1]", "f()[1]") in a quote's
# prose, which a reply would read as the name and a citation of passage 1; and any other
# mark glued to what stands before it ("{"ids":[1,2]}", "f(x, y,[1])", "1955)[1]"), which is
# no reply's: the reply puts a space before its own.
_INDEX = r"\[[^\[\]\s]*\]"  # a subscript without white space: "[i]", "[1]", "[:2]"
_SUBSCRIPT = re.compile(rf"(?<![\w`.])[A-Za-z_][\w.]*(?:\([^()\s]*\))?(?:{_INDEX})*{MARK}(?:{MARK}|{_INDEX})*"
                        rf"|(?<=[^\s`])(?:{MARK})+")


def subscripts_as_code(quote: str) -> str:
    """The quote with a subscripted name in its prose as inline code ("`sys.argv[1]`"): it is
    code, and outside code its "[1]" read as the reply citing source 1 (a chip in the UI, a
    source marked cited, the sentence's claim cut there)."""
    spans = [m.span() for m in _SUBSCRIPT.finditer(without_code(quote))]
    prose = between(quote, spans)
    return prose[0] + "".join(inline_code(quote[a:b]) + after for (a, b), after in zip(spans, prose[1:], strict=True))


def quotable_sentences(text: str, heading: str, marked: bool = False) -> tuple[list[Quotable], str]:
    """Sentences with their line wraps undone, and the heading in force after them. Heading
    lines (Markdown `#`, or a short line without punctuation, as PDF extraction leaves them)
    end a sentence and become the heading of those after them, unless the sentence runs on
    into the next line in lower case ("To implement a queue, use" over "collections.deque
    which was designed to", as HTML extraction wraps lines at inline code). `heading`: the
    one in force where `text` starts; `marked`: the text marks its headings (`heading_line`)."""
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
            out[lead] = replace(out[lead], then=said, reach=len(out) - 1 - lead)  # items long enough are units too
        lead, listed = None, []

    previous = ""  # the line before ("" after a heading), which a numbered title follows at a sentence's end
    underline = False  # the line is a setext title's underline ("Introduction" over "====="): no text
    for line, nxt in [*zip(lines, following, strict=True), ("", "")]:
        if underline:
            underline = False
            continue
        title = heading_line(line, nxt, marked, previous)
        underline = title and marked and setext_underline(nxt)
        previous = "" if title else line
        if line and not title:
            block.append(line)
            continue
        numbered = False  # "1. Install it." splits after "1.", as after a sentence
        opened = len(out)  # the units of this block start here
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
            elif (quoted and len(out) > opened and _entry_head(out[-1]) and not number_only
                  and not _ENTRY_HEAD.match(quoted)):
                # too short to be a unit, and part of the entry before: "The default is 0.1."
                # (not the next entry's flags: "-v6 -V6 -6" over "-mat -mat-binary ...")
                out[-1] = replace(out[-1], text=f"{out[-1].text} {quoted}")
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


def split_units(text: str, marked: bool = False) -> list[str]:
    """The quotable units of a passage, in order (`quotable_units`), as plain text."""
    return [q.text for q in quotable_units(text, marked)]


def quotable_units(text: str, marked: bool = False) -> list[Quotable]:
    """The quotable units of a passage, in order: sentences of prose, and each table row
    labelled with its header ("Model: gemini-2.5-pro; RPM: 5; ..."), since a row means
    nothing without its column names and holds the figures questions ask about. A code
    block's sentences never run into the prose around it, but a short code block goes with
    the sentence that introduces it ("change out of WAL mode using a pragma such as this:"
    and "PRAGMA journal_mode=DELETE;", `Quotable.then`): the sentence is what a question
    matches and what is scored, the code what it asks for; the code stays a unit of its own
    too, quoted once, whole (`CODE_CHARS`): split at ". " and ":" like prose, a session's
    lines were quoted as "sentences" ("File "<stdin>", line 1, in <module>"), an error line
    took the prose after it as its own ("IndexError: string index out of range However, out
    of range slice indexes are handled gracefully"), and a "# comment" in it read as a
    heading. Each carries the heading line it stands under in the passage. `marked`: the text
    marks its headings, as HTML's and Markdown's do (`rag.sentences.heading_line`)."""
    units: list[Quotable] = []
    prose: list[str] = []
    code: list[str] | None = None  # the lines of the code block being read
    header: list[str] | None = None
    heading = ""
    lead_in = ""  # the prose's last sentence, when it introduces the code block after it ("For example:")
    lang = ""  # the open code block's language

    def close_prose() -> None:
        nonlocal heading, lead_in
        read = "\n".join(prose).rstrip()
        found, heading = quotable_sentences(read, heading, marked)
        units.extend(found)
        prose.clear()
        lead_in = _unit_text(_sentence_parts(read)[-1]) if found and read.endswith(":") else ""

    def close_code(lines: list[str]) -> None:
        nonlocal lead_in
        block = _joined_code(lines)
        introduces = bool(lead_in) and 0 < len(block) <= THEN_CHARS
        introduction = said = ""
        if introduces:
            # A lead-in too short to be a unit ("For example:") is quoted after the sentence before it
            # ... unless it is that sentence, or that sentence after a line read as its heading
            # ("PurePath.suffix" over "The file extension of the final component, if any:").
            said = "" if units[-1].text.endswith(lead_in) or lead_in.endswith(units[-1].text) else lead_in
            introduction = spoken(units[-1].text, said)
        # The code is also a unit of its own, a question may match it alone; quoted after the
        # sentence introducing it, as that sentence is quoted with it.
        parts = [lines] if len(block) <= CODE_CHARS else _code_parts(lines)
        coded = [Quotable(_joined_code(part), heading, code="\n".join(part), lang=lang, lead=introduction)
                 for part in parts if len(_joined_code(part)) >= 20]
        if introduces:  # its `then` reaches the code's units (none when the code is too short for one)
            units[-1] = replace(units[-1], then=spoken(said, as_code("\n".join(lines), lang)), reach=len(coded))
        units.extend(coded)
        lead_in = ""

    lines = [*text.splitlines(), ""]
    for at, (line, role) in enumerate(zip(lines, line_roles(lines), strict=True)):
        # Code is a block of its own, and a fence is no text to quote (a fence line that does
        # not close the open block is a line of its code, as the chunker reads it).
        if role == "open":
            close_prose()
            code, header, lang = [], None, fence_language(line)
            continue
        if code is not None:
            if role == "close":
                close_code(code)
                code, header = None, None
            else:
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
        if not any(cells):
            continue  # a spacer row: nothing to quote, and no header for the rows after it
        if header is None:
            if at + 1 < len(lines) and TABLE_RULE.match(lines[at + 1]):
                header = cells
                continue
            # A table whose header row is not in the passage (a chunk starting mid-table): its
            # first row named the others' cells ("os.path.join(): os.path.samefile()", UI
            # walkthrough), so its rows are quoted unlabelled, the first one too.
            header = []
        names = [*header, *[""] * (len(cells) - len(header))]
        units.append(Quotable(
            "; ".join(f"{name}: {cell}" if name else cell for name, cell in zip(names, cells, strict=False)),
            heading,
        ))
    if code is not None:  # the passage ends inside a code block
        close_code(code)
    close_prose()
    return _answered(_entries(units))


def _joined_code(lines: Sequence[str]) -> str:
    """A code block's lines on one line, as it is scored and quoted among prose (a shell's "\\"
    continuations dropped)."""
    return " ".join(" ".join(line.rstrip().removesuffix("\\") for line in lines).split())


def _code_parts(lines: Sequence[str]) -> list[list[str]]:
    """A long code block's parts, split at its blank lines, and a part longer than
    `CODE_CHARS` (joined) into runs of whole lines up to that long (a longer line alone)."""
    parts: list[list[str]] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if line.strip() and len(_joined_code([*run, line])) <= CODE_CHARS:
            run.append(line)
            continue
        if run:
            parts.append(run)
        run = [line] if line.strip() else []
    return parts


# A unit ending in a letter or a comma: its sentence goes on (a figure, a page number or a
# contents line's ". . . 81" ends no sentence either way, and is left unmarked).
_ENDS_CLAUSE = re.compile(r"(?:[^\W\d_]|,)$")
CUT_MARK = " …"  # after a quote whose sentence the passage cuts off (`cut_short`)


def cut_short(text: str, marked: bool = False) -> int | None:
    """The position of the passage's last unit when the passage ends in the middle of its
    sentence (a PDF's chunk ends at a line end, and the sentence goes on in the next chunk),
    so the reply marks its quote "…" rather than pass a fragment off as the sentence. None
    when the passage ends a sentence or a list item, a table row or a heading, or when its
    last line is not the end of its last unit (a page number, a line too short to quote)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    before = lines[-2] if len(lines) > 1 else ""
    if (not lines or _LIST_ITEM.match(lines[-1]) or TABLE_ROW.match(lines[-1])
            or heading_line(lines[-1], "", marked, before)):
        return None
    units = quotable_units(text, marked)
    if not units:
        return None
    last, line = " ".join(units[-1].text.split()), " ".join(lines[-1].split())
    # The unit ends the last line, or starts within it after another sentence ("... each
    # record. This example handles an almost", as HTML runs a paragraph on one line).
    if not _ENDS_CLAUSE.search(last) or not (last.endswith(line) or line.endswith(f" {last}")):
        return None
    return len(units) - 1


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
    a user asking "is that a bug?" needs after the sentence that matched; with what is quoted
    after that one in turn, the code its lead-in introduces ("It understands about plus and
    minus signs:" and its example, after "str.zfill() pads a numeric string on the left with
    zeros."). Not a question in
    an FAQ's list of its questions, between two others: there the next line is the next
    question, however it ends (SQLite's "What datatypes does SQLite support?" took "SQLite lets
    me insert a string into a database column of type integer!" as its answer). So is, by the
    same sign, an answered question right after that list whose answer is one sentence before
    the next question."""
    asks = [unit.text.endswith("?") for unit in units]
    listed = [0 < i < len(units) - 2 and asks[i - 1] and asks[i + 2] for i in range(len(units))]
    return [
        replace(unit, then=spoken(as_code(after.code, after.lang) if after.code else after.said, after.then),
                reach=1 + after.reach) if (
            ((asks[i] and not listed[i])
             or (not after.code and (_DOES_THAT.match(after.text) or _REFERS_BACK.match(after.text))))
            and not unit.then and not unit.code and not asks[i + 1]
            and len(after.text) <= THEN_CHARS and after.heading == unit.heading
        ) else unit
        for i, (unit, after) in enumerate(pairwise(units))
    ] + units[-1:]


# A numbered section's start.
_SECTION_START = re.compile(r"\d+(?:\.\d+)* [A-Z]")


def _entry_head(unit: Quotable) -> bool:
    """Whether the unit opens a manual's entry (`_ENTRY_HEAD`): not a list item, code, or a
    sentence a chunk starts in the middle of ("the LaTeX kernel ...")."""
    return (not unit.item and not unit.code and _ENTRY_HEAD.match(unit.text) is not None
            and not _function_word_first(unit.text))


# A line in brackets between entries ("(twopi-specific attributes)" in neato(1)): the title
# of the entries after it, no part of the one before.
_BRACKETED_TITLE = re.compile(r"\([^()]*\)(?=\s|$)")
ENTRY_PART_CHARS = 40  # an entry's sentence this short is quoted with it only (`Quotable.entry_part`)


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
        if head.then or not _entry_head(head):
            continue
        rest = units[at + 1 :]
        end = next((i for i, u in enumerate(rest)
                    if _ENTRY_HEAD.match(u.text) or _SECTION_START.match(u.text) or u.heading != head.heading
                    or _BRACKETED_TITLE.match(u.text)),
                   None if rest and not rest[-1].code and _ENDS_CLAUSE.search(rest[-1].text) else len(rest))
        if not end:
            continue  # no entry after it, or the passage cuts its last sentence off
        said = " ".join(u.said for u in rest[:end])
        if said and len(said) <= THEN_CHARS:
            out[at] = replace(head, then=said, reach=end)
            for i, part in enumerate(rest[:end], start=at + 1):
                if not part.code and len(part.text) < ENTRY_PART_CHARS:
                    out[i] = replace(out[i], entry_part=True)
    return out


def section(heading: str) -> str:
    """The innermost heading of a heading path: the context a bare sentence or row lacks."""
    return heading.rsplit(">", 1)[-1].strip()
