"""Turn a file's bytes into text sections that keep where the text came from.

A section is the unit chunking never crosses: one PDF page (with its 1-based number), one
slide, one Markdown or Word section (with its heading path), one figure's description, or
a whole plain-text file. A file we cannot read raises `LoadError` with a reason a user can
act on; the run reports it and goes on. `Unreadable` is the same for a file nothing here can
read (an image offline, a scan without OCR): listed as skipped, not failed.

Images and scans are read through an `ingest.vision.Vision` when one is given: figures in
PDFs and image files are described (with a key), pages without a text layer transcribed or
OCR'd; pages no one could read are named in `Reading.note`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from io import BytesIO
from itertools import accumulate, islice, pairwise
from typing import TYPE_CHECKING

from rag.filetypes import SUPPORTED
from rag.text import FENCE, closes_fence, line_roles, rejoined
from rag.types import ChunkKind, PageUnit

if TYPE_CHECKING:
    from bs4 import BeautifulSoup, Tag
    from bs4.element import PageElement
    from pptx.shapes.base import BaseShape
    from pypdf import PdfReader
    from pypdfium2 import PdfBookmark, PdfDocument, PdfPage, PdfTextPage

    from ingest.vision import Image, Vision

logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings would garble the progress bar

# PDFium is not thread-safe: every call into it in this process holds this lock (ingest's
# readers, and the UI's page previews, which import it from here).
PDFIUM = threading.Lock()
# The most pixels a rendered page may hold (about 100 MB as RGBA): a larger page is drawn at a
# lower scale. A PDF states its page size itself: a 1,720-byte file with a 7,200-point page,
# rendered at 200 dpi, made a 2.7 GB bitmap in the worker, and in the server on each click of
# a citation (security walkthrough). An A0 poster at 150 dpi is 35 million.
MAX_RENDER_PIXELS = 25_000_000
# PDFium puts U+FFFE for a word hyphenated across a line end, in place of the hyphen and the
# break (the word is written whole again, `pdfium_text`), and for a glyph it has no Unicode
# for (dropped).
_PDFIUM_MARK = "\ufffe"
# Control characters a PDF's fonts map glyphs to (a bullet as U+0088, a drawn arrow as U+000F,
# a footnote mark as U+0084, "©" as a lone CR before "c"): no text, and each one printed as
# "\x0f" in a terminal's quote. A vertical tab or form feed parts lines.
_PDF_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_PDF_LINE_BREAKS = re.compile(r"[\x0b\x0c]")
# TeX's math symbol fonts (Computer Modern's cmsy, Latin Modern's MathSymbols) hold the
# angle brackets of a syntax's placeholders at the codes of "h" and "i", and TeX-made PDFs
# often map those glyphs to nothing else: PDFium read "linewidth=hdimensioni" and
# "\lstnewenvironment{hnamei}", 345 times in the development and blind sets' LaTeX manuals
# (`_tex_brackets`). An "h" at a word's start is looked at, then an "i" ending a word after it
# on its line.
_TEX_SYMBOL_FONT = re.compile(r"(?i)(?:^|\+)(?:cmsy\d|lmmathsymbols)")
_PLACEHOLDER_OPENING = re.compile(r"(?<![A-Za-z])h(?=\S)")
_PLACEHOLDER_CHARS = 60  # between the brackets, at most
_PLACEHOLDER_ENDS = 3  # an "i" ending a word after the opening, looked at in its font at most (a hostile page)
# A gap between two characters of one line wider than this share of their box's height, and
# wider by `_GAP_OVER_NEIGHBOURS` than the narrower gap beside it, is a space the PDF draws by
# position only. groff's PDFs (man pages) space justified words that way, and PDFium reads
# them run together: "awk.Itcopies input graphs", "anundeclared". Within a word, PDFium's
# loose boxes (advance widths) meet; a space is about 0.25 em, a box about 1.2 em high. The
# neighbours' test leaves letter-spaced text whole ("A N N U A L" was read from a heading
# tracked by 0.16 em: review), whose every gap is as wide.
_WORD_GAP = 0.12
_GAP_OVER_NEIGHBOURS = 0.08
# Placing each character costs about 2 µs, 5 ms a page: a document is read so only when its
# first page with text (within `_GAP_PROBE_PAGES`) shows `_GAP_PROBE_HITS` such gaps where
# PDFium's text runs a stop, a comma, a bracket or a minus into a letter or bracket
# ("awk.It", "][ −o"), the places groff's spacing shows first; only those are measured. Every
# groff PDF of graphviz-doc showed them; none of the development sets' TeX manuals did, nor
# did a TeX logo's kerning or a contents page's dot leaders.
_GAP_PROBE_PAGES = 5
_CLOSING_MARKS = frozenset(")]}\u27e9,.;:!?")
_GAP_PROBE_HITS = 2
_GLUED_AFTER_STOP = re.compile(r"(?<=[.,;:!?)\]\u2212])(?=[A-Za-z(\[])")  # and groff's minus: "libgvc −Graphviz"
# TeX draws "\_" in a roman font as a short rule on the baseline, not a character, so PDFium
# read "glp create prob" for glp_create_prob and "YY BREAK" for YY_BREAK: 937 times in GLPK's
# manual, 685 in Octave's, 5,195 in GNU Prolog's (a blind set's), while a typewriter font's
# underscore is a character and reads right. A path lying on the baseline (from
# `_RULE_BELOW` of the font size under it to `_RULE_ABOVE` over it: every such rule of
# seven TeX manuals ran from -0.02 to 0.05-0.08), `_RULE_WIDTH` wide, that fills the gap
# between two letters or digits of one line (within `_RULE_GAP` of each, over either by
# `_RULE_OVERLAP` at most) is written as the "_" it draws (`_drawn_underscores`). An
# underline lies lower, a strikeout or a fraction bar higher; a table's rule or a plot's
# axis is longer than the gap. Looked at on the first `_RULES_PER_PAGE` short thin paths of
# a page (a plot draws thousands).
_RULE_BELOW = 0.06
_RULE_ABOVE = 0.12
_RULE_WIDTH = (0.2, 1.0)
_RULE_GAP = 0.3
_RULE_OVERLAP = 0.06
_RULES_PER_PAGE = 500
_MAX_SPAN = 50  # columns one HTML cell may span (a hostile colspan=100000 is no 100,000 cells)
_TITLE_CHARS = 200  # of an outline title: a heading, not a paragraph
# Bounds for a hostile outline: entries read, and bookmarks looked for on one page (each is a
# search of the page's text; the rest still carry their path on to the next pages).
_OUTLINE_ENTRIES = 10_000
_PAGE_HEADINGS = 64
# A manual's section number ("2.8.1", "C.7", "A"), and what a line may print before a
# heading's title: such a number and an opening quote.
SECTION_NUMBER = r"(?:[A-Z]|\d+)(?:\.\d+)*\.?"
_HEADING_PREFIX = rf"^[ \t]*(?:{SECTION_NUMBER}[ \t]+)?[\"“‘'(«]?"
_BINARY_SNIFF = 8_192
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# What python-docx and python-pptx raise on a damaged file, besides their own errors.
_OFFICE_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, KeyError, ValueError, SyntaxError, AttributeError,
                                               TypeError, IndexError, OSError)


class LoadError(Exception):
    """The file cannot be indexed; the message says why, for the failure list."""


class Unreadable(LoadError):
    """Nothing in the file can be read with what this run has (an image offline, a scan
    without OCR): skipped with the reason, not a failure."""


@dataclass(frozen=True)
class Section:
    text: str
    offset: int = 0  # where `text` starts in the document's text (per page for PDFs)
    page: int | None = None  # PDF page, or slide number when `unit` is "slide"
    heading: str = ""
    kind: ChunkKind = "text"
    unit: PageUnit = "page"
    # Words the embedder reads before each of the section's chunks because its text lacks
    # them: a PDF section's outline path (or numbered headings' path, for a PDF without an
    # outline). A PDF section runs over pages that never print its
    # title, and its printed title can lose what the outline keeps ("glp add rows" for
    # glp_add_rows). Markdown, HTML and Word sections print their heading at their top and are
    # short; embedding their paths too lowered nDCG@10 on the Python docs and the sample
    # (README: Document structure).
    context: str = ""


@dataclass(frozen=True)
class Reading:
    """A file's sections, and what in it was left unread (said next to its outcome)."""

    sections: list[Section]
    note: str = ""


def load(data: bytes, kind: str, vision: Vision | None = None) -> list[Section]:
    """Sections with text, in document order; raises LoadError when there are none."""
    return read(data, kind, vision).sections


def read(data: bytes, kind: str, vision: Vision | None = None) -> Reading:
    """Sections with text and the note on what was left out; raises LoadError (Unreadable
    when only what this run lacks stands in the way) when there is no text."""
    if not data and kind != "pdf":  # a PDF says so itself ("not a readable PDF: ...")
        raise LoadError("the file is empty (0 bytes)")  # "no text to index" read like a fault of ours
    if kind == "pdf":
        reading = read_pdf(data, vision)
    elif kind == "image":
        reading = read_image(data, vision)
    else:
        reading = Reading(_LOADERS[kind](data))
    sections = [s for s in reading.sections if s.text.strip()]
    if not sections:
        if reading.note:
            raise Unreadable(reading.note)
        raise LoadError("no text to index")
    return Reading(sections, reading.note)


def read_pdf(data: bytes, vision: Vision | None) -> Reading:
    """Each page's text layer, read by PDFium; a page without one but with images is a scan,
    read by `vision` (rendered by PDFium) when it can. With a key, images on text pages become
    figure sections, each distinct image once per file. A PDF with an outline (bookmarks) is
    cut into its sections too (`outline_sections`); one without, at its numbered headings
    (`numbered_starts`). A running header or footer is read once, not on every page
    (`without_running_lines`).

    PDFium rather than pypdf: it reads text faster (0.12 s against 0.43 for the bench's 65
    PDFs, 0.17 against 2.44 for the four GLPK manuals: CPU a 2-core ingest cannot hide behind
    the embedder) and gives TeX ligatures and dashes as printed ("fi" and "—" where pypdf gave
    "\\x0c" and "|")."""
    pages, outline = _pdf_pages(data)
    texts = without_running_lines([text for text, _ in pages])
    embedded = _embedded_images(data) if vision is not None and vision.describes else None
    sections: list[Section] = []
    unread: list[int] = []
    described: set[str] = set()
    numbered = None if outline else numbered_starts(texts)
    heading = ""
    for n, (text, (printed, has_images)) in enumerate(zip(texts, pages, strict=True), start=1):
        if numbered is None:
            bookmarks = outline.get(n, [])
            starts = heading_starts(text, bookmarks)
            last = bookmarks[-1].path if bookmarks else heading  # the section going on at the page's end
        else:
            starts = numbered[n - 1]
            last = starts[-1][1] if starts else heading
        if text.strip():
            sections += outline_sections(text, n, heading, starts)
            if vision is not None and embedded is not None and has_images:
                sections += _figures(embedded, n, vision, described)
        elif has_images and not printed.strip():  # a scan; not a picture page with its page number
            picture = _render(data, n, vision.settings.scan_dpi) if vision else None
            scanned = vision.read_page(picture) if vision and picture else None
            if scanned is None:
                unread.append(n)
            else:
                sections.append(Section(scanned, page=n, heading=last, context=last))
        heading = last
    if not unread:
        return Reading(sections)
    reason = vision.unread_reason if vision else "no text layer"
    return Reading(sections, f"{_pages(unread)} skipped: {reason}")


# A page number printed alone: "12", "- 12 -", "Page 3", "3 / 10", "page 3 of 10".
_PAGE_NUMBER = re.compile(r"^\W*(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?\W*$", re.IGNORECASE)
_RUNNING_CHARS = 120  # a header or footer is one short line
_RUNNING_PAGES = 3  # pages of a run that print it
_RUNNING_GAPS = (1, 2)  # a run's pages follow one another, or every other one (a two-sided book)


def without_running_lines(texts: list[str]) -> list[str]:
    """The pages' texts without their running headers and footers.

    A running line is a page's first or last line printed in the same place on at least
    three pages in a row, or on every other page, the same but for a page number counting
    up: a page number alone, "Chapter 6: Programming 37" atop a Texinfo manual's pages,
    "Pricing - page 2 of 5" below a report's; a two-sided book's left and right pages each
    have their own ("736 GNU Octave (version 7.3.0)" over the even pages, "Chapter 35:
    Numerical Integration 707" over the odd ones: 1,012 of the Octave manual's 4,837
    chunks carried one). Left in, it runs into the sentence it stands above or below
    ("Chapter 6: Programming 42 The default line cap ...") in every chunk and quote of the
    page; with its page number it goes from every page, since kept where it first appeared
    it ran into that page's first sentence ("dot User's Manual, January 5, 2015 2 1 Basic
    Graph Drawing dot draws directed graphs."), and the title it gives is its file's and
    its outline's already. One without a page number, the same on each page, is kept where
    it first appears (a slide's title, a table's header row). A line repeated on pages
    apart ("Example 1" heading two routines' examples), whose other figures change ("Total
    1,234"), or a one-word label counting up ("Question 2", "Step 3": a page number stands
    alone or beside a title) is content and stays."""
    edges = [_edges(text) for text in texts]
    runs: dict[tuple[int, str], list[list[tuple[int, _Edge]]]] = {}
    for n, page in enumerate(edges):
        for edge in page:
            same = runs.setdefault(edge.where, [])
            gap = n - same[-1][-1][0] if same else 0
            if gap in _RUNNING_GAPS and edge.repeats(same[-1][-1][1], gap):
                same[-1].append((n, edge))
            else:
                same.append([(n, edge)])
    dropped: dict[int, set[int]] = {}  # page -> indexes of its lines to drop
    printed: dict[tuple[int, int], int] = {}  # (page, place) -> the page number its running line prints
    for found in runs.values():
        for run in found:
            if len(run) >= _RUNNING_PAGES:
                # A line with its page number goes from every page; one the same on each page
                # (a slide's title, a table's header row) stays where it first appears.
                first, last = run[0][1].numbers, run[-1][1].numbers
                counting = first != last  # its page number went up
                at = next((i for i, (a, b) in enumerate(zip(first, last, strict=True)) if a != b), None)
                for n, edge in run if counting else run[1:]:
                    dropped.setdefault(n, set()).add(edge.index)
                    if at is not None:
                        printed[n, edge.where[0]] = edge.numbers[at]
    # A page number alone on a page whose neighbours print theirs in a running line, one
    # less before it or one more after it: a Texinfo chapter's first page has no header, only
    # its number, which ran into its title ("54 19 Reentrant C Scanners flex has the ability").
    for n, page in enumerate(edges):
        for edge in (e for e in page if e.where[1] == "#"):
            place, number = edge.where[0], edge.numbers[0]
            if printed.get((n - 1, place)) == number - 1 or printed.get((n + 1, place)) == number + 1:
                dropped.setdefault(n, set()).add(edge.index)
    return [
        "\n".join(line for i, line in enumerate(text.split("\n")) if i not in dropped[n]) if n in dropped else text
        for n, text in enumerate(texts)
    ]


@dataclass(frozen=True)
class _Edge:
    """A page's first or last line: its index among the page's lines, its place (0 top, 1
    bottom) with its text in lower case and each number as "#", those numbers, and whether
    one of them may be the page number (the line is a page number alone, has two words or
    more beside its numbers, or one word and a version: `_titled_number`)."""

    index: int
    where: tuple[int, str]
    numbers: tuple[int, ...]
    paged: bool

    def repeats(self, before: _Edge, gap: int) -> bool:
        """Whether this line, `gap` pages after `before`'s, is `before` again: the same
        numbers (on the next page only: "Example 1" heading every other page is content), or
        one of them, the page number, up by `gap`."""
        if len(self.numbers) != len(before.numbers):  # "12" and "3 / 7" are both page numbers
            return False
        changed = [(a, b) for a, b in zip(before.numbers, self.numbers, strict=True) if a != b]
        counted = self.paged and len(changed) == 1 and changed[0][1] == changed[0][0] + gap
        return counted or (not changed and gap == 1)


def _titled_number(line: str, numbers: tuple[int, ...]) -> bool:
    """Whether a line of one word may carry a page number: it has other figures beside it,
    a version ("gnuplot 5.4 101" over the odd pages, "102 gnuplot 5.4" over the even: 283
    of gnuplot's 311 pages kept theirs), and a number standing alone at either end.
    "Question 2" or "Step 2.3" is a label counting up, content."""
    return len(numbers) >= 2 and bool(re.match(r"\d+\s", line) or re.search(r"\s\d+$", line))


def _edges(text: str) -> list[_Edge]:
    """A page's first and last lines (the same line twice on a page of one line); a line with
    fewer than three letters (unless it is a page number alone), or a long one, is no header."""
    lines = text.split("\n")
    filled = [i for i, line in enumerate(lines) if line.strip()]
    out: list[_Edge] = []
    for place, index in ((0, filled[0]), (1, filled[-1])) if filled else ():
        line = " ".join(lines[index].split())
        alone = bool(_PAGE_NUMBER.match(line))
        if alone or (len(line) <= _RUNNING_CHARS and sum(c.isalpha() for c in line) >= 3):
            key = "#" if alone else re.sub(r"\d+", "#", line.lower())
            words = len(re.findall(r"[^\W\d_]{2,}", line))
            numbers = tuple(int(d) for d in re.findall(r"\d+", line))
            out.append(_Edge(index, (place, key), numbers, alone or words >= 2 or _titled_number(line, numbers)))
    return out


def page_texts(sections: list[Section]) -> dict[int, str]:
    """A PDF's text per page, its sections (a page is cut where outline sections start)
    joined back in order."""
    pages: dict[int, str] = {}
    for section in sections:
        if section.page is not None:
            pages[section.page] = pages.get(section.page, "") + section.text
    return pages


@dataclass(frozen=True)
class Bookmark:
    """An outline entry: the title printed where its section starts, and the path of titles
    from its chapter down ("Basic API Routines > Problem object > Problem segment")."""

    title: str
    path: str


def outline_sections(text: str, page: int, heading: str, starts: list[tuple[int, str]]) -> list[Section]:
    """A page cut where its outline's sections start; the text before the first start
    continues the section of the page before (`heading`), so a parameter list running across a
    page break keeps the name of the routine it belongs to. A lone line before a start (a
    heading with no body of its own, "1.2 Graph routines" right above "1.2.1 glp_create_graph",
    or a page number above a heading) joins the next section, as headings do in Markdown."""
    cuts = [(0, heading), *starts, (len(text), "")]
    sections: list[Section] = []
    carried: int | None = None  # where a heading line without a body starts
    for n, ((start, path), (end, _)) in enumerate(pairwise(cuts)):
        begin = start if carried is None else carried
        if n < len(cuts) - 2 and "\n" not in text[start:end].strip():
            carried = begin
            continue
        carried = None
        if text[begin:end].strip():
            sections.append(Section(text[begin:end], offset=begin, page=page, heading=path, context=path))
    return sections


def heading_starts(text: str, bookmarks: list[Bookmark]) -> list[tuple[int, str]]:
    """Where on the page its bookmarks' sections start, in page order, with their paths. Each
    title is looked for after the one before it (two "Examples" sections on one page are two
    places), then anywhere on the page (an outline out of page order). A bookmark whose title
    the page does not print opens the page when no heading was found above it (a chapter
    whose printed title differs from the outline's), else cuts nothing: its place is
    unknown, though its path still names the pages after (`read_pdf`). Only a page's first
    `_PAGE_HEADINGS` bookmarks are looked for."""
    starts: dict[int, str] = {}
    floor = 0
    for bookmark in bookmarks[:_PAGE_HEADINGS]:
        found = _heading_line(text, bookmark.title, floor)
        if found is None and floor:
            found = _heading_line(text, bookmark.title, 0)
            if found is not None and found[0] in starts:
                continue
        if found is None:
            if not starts:  # nothing above it either: its section most likely opens the page
                starts[0] = bookmark.path
            continue
        starts[found[0]] = bookmark.path
        floor = found[1]  # the next bookmark is looked for below this one
    return sorted(starts.items())


# A numbered heading printed on a line of its own: "2 Installation", "2.5 Search paths", "1.1.
# Scope" (a single number with a dot, "1. Click Save", is a list item), its title capitalised;
# or a chapter as LaTeX's book and report classes print it, "Chapter 2" over its title.
_NUMBERED_HEADING = re.compile(
    r"^[ \t]*(?:(\d{1,3}(?:\.\d{1,3}){0,5})(\.?)[ \t]+|Chapter[ \t]+(\d{1,3})[ \t]*\n[ \t]*)([A-Z][^\n]{0,79})$",
    re.MULTILINE,
)
_HEADING_WORDS = 12
_NUMBERED_ROW = re.compile(r"[ \t]*(\d{1,3}(?:\.\d{1,3})*)\.?[ \t]+([A-Z].*)")  # as a heading would be printed


def numbered_starts(texts: list[str]) -> list[list[tuple[int, str]]]:
    """For a PDF without an outline: where each page's numbered headings start, with their
    paths ("Installation > Search paths"), as `heading_starts` gives them from an outline.

    A heading counts only when its number comes next after the heading before it: one up at
    some level, and 1 below that ("2.6", "3" or "3.1" after "2.5"), or the first one below
    ("2.5.1"); the document's first heading ends in 1. That sequence is what tells a manual's
    "2.5 Search paths" from a list's "3 Retry later", and a heading missed costs no more than
    its own section (one taken wrongly costs more: the headings until the numbering meets
    it again). A line right above or below a line numbered at the same depth is a row of a
    table or list ("1 Free variable" over "2 Lower bound"), not a heading; nor is a title
    that ends in a number (a table of contents: "2.5 Search paths . . . 6") or a full stop,
    holds more than one figure, or runs past twelve words. The first 64 headings of a page
    are looked at, as with an outline's bookmarks."""
    number: tuple[int, ...] = ()
    titles: list[str] = []  # by level; "" where a level's heading was not seen
    out: list[list[tuple[int, str]]] = []
    for text in texts:
        starts = []
        for match in islice(_NUMBERED_HEADING.finditer(text), _PAGE_HEADINGS):
            digits, dot, chapter, printed = match.groups()
            found = tuple(int(part) for part in (digits or chapter).split("."))
            title = " ".join(printed.split())
            if ((dot and len(found) == 1) or not _heading_title(title) or not _follows(number, found)
                    or _in_numbered_rows(text, match, len(found))):
                continue
            same = zip(number, found, strict=False)
            kept = next((level for level, (a, b) in enumerate(same) if a != b), len(number))  # levels unchanged
            titles = [*(titles[:kept] + [""] * len(found))[: len(found) - 1], title]
            number = found
            starts.append((match.start(), " > ".join(t for t in titles if t)))
        out.append(starts)
    return out


def _in_numbered_rows(text: str, match: re.Match[str], depth: int) -> bool:
    """Whether the line above or below the heading-like line `match` is heading-like too, at
    the same depth: rows of a table or a list, where headings have their text between them.
    (A table of contents right above the first heading ends its lines in page numbers.)"""
    above = text[: match.start()].rstrip().rpartition("\n")[2]
    below = text[match.end() :].lstrip().partition("\n")[0]
    return any((row := _NUMBERED_ROW.match(line)) is not None and row.group(1).count(".") + 1 == depth
               and _heading_title(" ".join(row.group(2).split())) for line in (above, below))


def _heading_title(title: str) -> bool:
    """A heading's title is short and ends in a word: a table of contents ends its lines in
    page numbers, a sentence in a full stop, a table row holds figures."""
    return (len(title.split()) <= _HEADING_WORDS and not re.search(r"[\d.,;:]$", title)
            and len(re.findall(r"\S*\d\S*", title)) <= 1)


def _follows(before: tuple[int, ...], number: tuple[int, ...]) -> bool:
    """Whether `number` may be the heading after `before`: the first below it, or one up at
    some level with every level below that at 1 (a chapter whose own heading was missed
    still starts at "3.1")."""
    if not before:
        return number[-1] == 1
    if number == (*before, 1):
        return True
    for level in range(1, min(len(before), len(number)) + 1):
        if (number[: level - 1] == before[: level - 1] and number[level - 1] == before[level - 1] + 1
                and all(part == 1 for part in number[level:])):
            return True
    return False


def _heading_line(text: str, title: str, floor: int) -> tuple[int, int] | None:
    """The start of the first line at or after `floor` that prints `title`, and the end of the
    title there: its words in order with anything but letters and digits between them (PDF
    text loses the underscores TeX draws as rules: "glp_add_rows" prints as "glp add rows"),
    after nothing on the line but a section number ("2.8.1", "C.7") and an opening quote. A
    title of four words or more is sometimes glued in the outline where the printed one broke
    a line ("DIMACS clique/coloringformat"), so its shorter prefixes are tried, down to half
    its words and at least three. One anchored search per try: linear in the page's length."""
    words = re.findall(r"[^\W_]+", title)
    shortest = max(3, (len(words) + 1) // 2) if len(words) >= 4 else max(1, len(words))
    for size in range(len(words), shortest - 1, -1):
        printed = r"[\W_]*".join(map(re.escape, words[:size]))
        pattern = re.compile(f"{_HEADING_PREFIX}(?i:{printed})(?![^\\W_])", re.MULTILINE)  # "draw", not "Drawing"
        match = pattern.search(text, floor)
        if match:
            return match.start(), match.end()
    return None


def _pdf_pages(data: bytes) -> tuple[list[tuple[str, bool]], dict[int, list[Bookmark]]]:
    """Each page's text (line ends as "\\n", as printed) and whether it draws an image; and
    the outline's bookmarks by 1-based page, in outline order."""
    import pypdfium2 as pdfium

    if not data:  # PDFium calls it a "Data format error", as it does a damaged file
        raise LoadError("not a readable PDF: the file is empty (0 bytes)")
    with PDFIUM:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if exc.err_code == pdfium.raw.FPDF_ERR_PASSWORD:
                raise LoadError("encrypted PDF: it needs a password, which ingest does not take") from exc
            said = str(exc).rstrip(".")  # "Failed to load document (PDFium: Data format error)."
            raise LoadError(f"not a readable PDF: {said[:1].lower()}{said[1:]}") from exc
        try:
            spaced = _spaced_by_position(document)
            pages = [_pdf_page(document[index], spaced) for index in range(len(document))]
        except Exception as exc:  # a page PDFium (or pypdfium2's checks) cannot read: damaged
            raise LoadError(f"not a readable PDF: a page cannot be read ({type(exc).__name__}: {exc})") from exc
        else:
            outline = _outline(document)
        finally:
            document.close()
    # Out of the lock: PDFium is done with the text, and other readers need not wait for this.
    return [(pdfium_text(raw), image) for raw, image in pages], outline


def _outline(document: PdfDocument) -> dict[int, list[Bookmark]]:
    """The outline's entries by the page they point to. A damaged outline is no outline: the
    pages are still read, without section headings."""
    marks: dict[int, list[Bookmark]] = {}
    path: list[str] = []
    try:
        for entry in islice(document.get_toc(), _OUTLINE_ENTRIES):
            title = " ".join(entry.get_title().split())[:_TITLE_CHARS]
            del path[entry.level :]
            if not title:
                continue
            path.append(title)
            dest = entry.get_dest() if _goes_within(entry) else None
            index = dest.get_index() if dest is not None else None
            if index is not None and 0 <= index < len(document):
                marks.setdefault(index + 1, []).append(Bookmark(title, " > ".join(path)))
    except Exception:  # pypdfium2 or PDFium on a broken outline: whatever it raises
        return {}
    return marks


def _goes_within(entry: PdfBookmark) -> bool:
    """Whether a bookmark points into this document: one that opens another file (a GoToR
    action) has a page number of that file, which PDFium would give as if it were ours."""
    import pypdfium2 as pdfium

    action = pdfium.raw.FPDFBookmark_GetAction(entry.raw)
    return not action or pdfium.raw.FPDFAction_GetType(action) == pdfium.raw.PDFACTION_GOTO


def _pdf_page(page: PdfPage, spaced: bool = False) -> tuple[str, bool]:
    """One page's text as PDFium gives it (`pdfium_text` reads it), with the underscores TeX
    draws as rules (`_drawn_underscores`) and, in a `spaced` document, the spaces drawn by
    position only (`_word_gaps`) put back, and whether it has an
    image; the page is closed after (a long PDF would otherwise keep every page in memory
    until the end)."""
    try:
        textpage = page.get_textpage()
        text = _tex_brackets(textpage, textpage.get_text_range())
        drawn = _Drawn.of(page)
        underscores = _drawn_underscores(textpage, text, drawn.rules)
        return _with_drawn(text, underscores, _word_gaps(textpage, text) if spaced else ()), drawn.image
    finally:
        page.close()  # and its text page


@dataclass(frozen=True)
class _Drawn:
    """What a page draws besides its text, read in one walk over its objects (each one
    wrapped by pypdfium2 whatever the filter, hundreds of text runs on a TeX page): whether
    one is an image, and the bounds (left, bottom, right, top) of the first
    `_RULES_PER_PAGE` short thin paths, the rules `_drawn_underscores` looks at."""

    image: bool
    rules: list[tuple[float, float, float, float]]

    @classmethod
    def of(cls, page: PdfPage) -> _Drawn:
        import pypdfium2 as pdfium

        image = False
        rules: list[tuple[float, float, float, float]] = []
        for obj in page.get_objects(filter=(pdfium.raw.FPDF_PAGEOBJ_IMAGE, pdfium.raw.FPDF_PAGEOBJ_PATH)):
            if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE:
                image = True
            elif len(rules) < _RULES_PER_PAGE:
                x0, y0, x1, y1 = obj.get_bounds()
                if y1 - y0 <= 1.5 and 0.5 <= x1 - x0 <= 15:
                    rules.append((x0, y0, x1, y1))
        return cls(image, rules)


def _spaced_by_position(document: PdfDocument) -> bool:
    """Whether the document spaces words by position only (`_WORD_GAP`), as its first page
    with text shows (a page of under 200 characters is a title or a blank): at
    `_GAP_PROBE_HITS` of the places PDFium ran a stop into a letter (`_GLUED_AFTER_STOP`)."""
    for index in range(min(len(document), _GAP_PROBE_PAGES)):
        page = document[index]
        try:
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            if len(text.strip()) >= 200:
                places = (m.start() - 1 for m in _GLUED_AFTER_STOP.finditer(text))
                return len(_word_gaps(textpage, text, places, enough=_GAP_PROBE_HITS)) >= _GAP_PROBE_HITS
        finally:
            page.close()
    return False


def _word_gaps(textpage: PdfTextPage, text: str, places: Iterable[int] | None = None,
               enough: int | None = None) -> list[int]:
    """The positions in `text` (the page's text as PDFium read it; all of them, or those of
    `places`) after which a space is drawn by position only: two characters of one line, no
    space between them, parted by more than `_WORD_GAP` of their height and by
    `_GAP_OVER_NEIGHBOURS` more than the narrower gap beside (`_gap`); the first `enough`
    found, if given. None where the text does not line up with PDFium's characters one for
    one (a character outside the Basic Multilingual Plane counts twice there)."""
    import pypdfium2.raw as pdfium_c

    if len(text) != pdfium_c.FPDFText_CountChars(textpage.raw):
        return []
    boxes: dict[int, tuple[float, float, float, float] | None] = {}
    rect = pdfium_c.FS_RECTF()

    def box(index: int) -> tuple[float, float, float, float] | None:
        """The character's loose box (left, right, bottom, top); None for a space, a mark or
        a character without one."""
        if index not in boxes:
            boxes[index] = None
            if 0 <= index < len(text) and not text[index].isspace() and text[index] != _PDFIUM_MARK:
                pdfium_c.FPDFText_GetLooseCharBox(textpage.raw, index, rect)
                if rect.top > rect.bottom:
                    boxes[index] = (rect.left, rect.right, rect.bottom, rect.top)
        return boxes[index]

    def gap(index: int) -> float | None:
        """The gap after character `index`, in its height, when the next one is on its line."""
        one, two = box(index), box(index + 1)
        if one is None or two is None:
            return None
        height = min(one[3] - one[2], two[3] - two[2])
        if min(one[3], two[3]) - max(one[2], two[2]) < 0.5 * height:
            return None  # not one line
        return (two[0] - one[1]) / (one[3] - one[2])

    gaps: list[int] = []
    for index in range(len(text) - 1) if places is None else places:
        if text[index + 1] in _CLOSING_MARKS:
            continue  # no word starts there: TeX's italic correction before "⟩" is no space
        width = gap(index)
        if width is None or width <= _WORD_GAP:
            continue
        beside = [g for g in (gap(index - 1), gap(index + 1)) if g is not None]
        if not beside or width - min(beside) > _GAP_OVER_NEIGHBOURS:
            gaps.append(index)
            if enough is not None and len(gaps) >= enough:
                break
    return gaps


def _with_drawn(text: str, underscores: Collection[int], gaps: Iterable[int]) -> str:
    """`text` with "_" after each position of `underscores`, in place of the space PDFium
    put there if any, and a space after each of `gaps` where no underscore goes."""
    after = {i: " " for i in gaps} | dict.fromkeys(underscores, "_")
    if not after:
        return text
    pieces, start = [], 0
    for index in sorted(after):
        pieces += [text[start : index + 1], after[index]]
        start = index + 1 + (after[index] == "_" and text[index + 1 : index + 2] == " ")
    return "".join([*pieces, text[start:]])


def _drawn_underscores(textpage: PdfTextPage, text: str, rules: Iterable[tuple[float, float, float, float]]
                       ) -> set[int]:
    """The positions in `text` (the page's text as PDFium read it) after which TeX drew an
    underscore as one of `rules` (`_RULE_BELOW`): the letter or digit before the rule, when the
    next one, or the one after PDFium's space, starts the rest of the word on the same
    baseline. None where the text does not line up with PDFium's characters one for one."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    count = pdfium_c.FPDFText_CountChars(textpage.raw)
    if len(text) != count:
        return set()
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))

    def box(index: int) -> tuple[float, float]:
        """The character's left and right edges."""
        pdfium_c.FPDFText_GetCharBox(textpage.raw, index, left, right, bottom, top)
        return left.value, right.value

    def baseline(index: int) -> float:
        pdfium_c.FPDFText_GetCharOrigin(textpage.raw, index, left, bottom)
        return bottom.value

    found: set[int] = set()
    for x0, y0, x1, y1 in rules:
        before = pdfium_c.FPDFText_GetCharIndexAtPos(textpage.raw, x0 - 0.8, y1 + 2.0, 1.5, 2.5)
        if not 0 <= before < count - 1 or not text[before].isalnum():
            continue
        after = before + 1 + (text[before + 1] == " ")
        if after >= count or not text[after].isalnum():
            continue
        size = pdfium_c.FPDFText_GetFontSize(textpage.raw, before)
        (_, ends), (starts, _) = box(before), box(after)
        line = baseline(before)
        if (size > 0 and line - _RULE_BELOW * size <= y0 and line < y1 <= line + _RULE_ABOVE * size
                and _RULE_WIDTH[0] * size <= x1 - x0 <= _RULE_WIDTH[1] * size
                and abs(baseline(after) - line) <= 0.05 * size
                and all(-_RULE_OVERLAP * size <= gap <= _RULE_GAP * size for gap in (x0 - ends, starts - x1))):
            found.add(before)
    return found


def _tex_brackets(textpage: PdfTextPage, text: str) -> str:
    """The page's text with each placeholder's brackets as TeX drew them, "⟨dimension⟩",
    where PDFium read a symbol font's "h" and "i" (`_TEX_SYMBOL_FONT`); a letter of any
    other font is left as it is. PDFium counts a character outside the Basic Multilingual
    Plane (a math italic "𝑥") as its two UTF-16 halves, so a position in the text is
    the character's index on the page plus the number of such characters before it; when
    the text does not line up with PDFium's characters that way, it is left as it is."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    if "h" not in text:
        return text
    count = pdfium_c.FPDFText_CountChars(textpage.raw)
    if len(text.encode("utf-16-le")) // 2 != count:
        return text
    on_page: Sequence[int] = (range(count) if len(text) == count
                              else list(accumulate((1 + (ord(ch) > 0xFFFF) for ch in text), initial=0)))
    name = ctypes.create_string_buffer(64)

    def symbol(index: int) -> bool:
        size = pdfium_c.FPDFText_GetFontInfo(textpage.raw, on_page[index], name, len(name), None)
        return 0 < size <= len(name) and bool(_TEX_SYMBOL_FONT.search(name.value.decode("latin-1")))

    chars: list[str] | None = None
    for opening in _PLACEHOLDER_OPENING.finditer(text):
        start = opening.start()
        if not symbol(start):
            continue
        reach = min(start + 2 + _PLACEHOLDER_CHARS, len(text))
        line_end = text.find("\n", start, reach)  # bounded: a page of one hostile line is read once, not per "h"
        end = reach if line_end < 0 else line_end
        ends = (i for i in range(start + 2, end) if text[i] == "i" and not text[i + 1 : i + 2].isalpha())
        close = next((i for i in islice(ends, _PLACEHOLDER_ENDS) if symbol(i)), None)
        if close is not None:
            chars = chars or list(text)
            chars[start], chars[close] = "\u27e8", "\u27e9"
    return text if chars is None else "".join(chars)


def pdfium_text(raw: str) -> str:
    """A page's text as PDFium gives it, with line ends as "\\n" and its U+FFFE marks undone.
    A word hyphenated across a line end is written whole on the first line (`rejoined`:
    "configuration", "integer-valued"), its line end moved after it: "con- figuration" was
    two words that neither keyword search, the embedder, a quote nor a reference answer
    read as the one word (112 of them in Asymptote's 196 pages). Lines stay lines, for the
    line index and for lists. Elsewhere the mark is dropped, and so are control characters
    (`_PDF_CONTROLS`: 28 of 7,881 chunks of the development sets' manuals held some)."""
    text = _PDF_LINE_BREAKS.sub("\n", _PDF_CONTROLS.sub("", raw.replace("\r\n", "\n")))
    return rejoined(text, _PDFIUM_MARK).replace(_PDFIUM_MARK, "")


def _embedded_images(data: bytes) -> PdfReader | None:
    """The file as pypdf reads it, for its embedded images (handed over as the files they
    are); None when pypdf cannot open it (the text PDFium read is still indexed)."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        return PdfReader(BytesIO(data))
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
        return None


def _figures(reader: PdfReader, n: int, vision: Vision, described: set[str]) -> Iterator[Section]:
    """Page `n`'s images at least `figure_min_pixels` large, described; a damaged image is
    passed over (the page's text is still indexed)."""
    from pypdf.errors import PyPdfError

    from ingest.vision import image_of

    try:
        images = reader.pages[n - 1].images
        count = len(images)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
        return
    for index in range(count):
        try:
            image = image_of(images[index].data)
        except (PyPdfError, OSError, ValueError, NotImplementedError, KeyError):
            continue
        digest = hashlib.sha256(image.blob.data).hexdigest()
        if not vision.worth_describing(image) or digest in described:
            continue
        described.add(digest)
        text = vision.describe(image)
        if text:
            yield Section(f"Figure: {text}", page=n, kind="figure")


def render_scale(page: PdfPage, scale: float) -> float:
    """`scale`, lowered where the page's bitmap would hold more than `MAX_RENDER_PIXELS`."""
    width, height = page.get_size()  # in points
    area = max(width * height, 1.0)
    return min(scale, math.sqrt(MAX_RENDER_PIXELS / area))


def _render(data: bytes, n: int, dpi: int) -> Image | None:
    """Page `n` as a PNG at `dpi`, drawn by PDFium (pypdfium2, already the UI's renderer);
    None when PDFium cannot draw it (the page is then listed as unread)."""
    import pypdfium2 as pdfium

    from ingest.vision import png_of

    with PDFIUM:
        document = pdfium.PdfDocument(data)
        try:
            page = document[n - 1]
            picture = page.render(scale=render_scale(page, dpi / 72)).to_pil()
        except pdfium.PdfiumError:
            return None
        finally:
            document.close()
    return png_of(picture)


def _pages(numbers: list[int]) -> str:
    """"page 3" or "pages 2, 5-7"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"page{'s' if len(numbers) > 1 else ''} {text}"


def read_image(data: bytes, vision: Vision | None) -> Reading:
    """An image file is one figure: described with a key. Offline, its printed words are read
    by Tesseract when it is installed (a screenshot, a diagram's labels), only those it reads
    with confidence: a photo has none and is skipped, as is every image without Tesseract.
    The reason says how to get it read."""
    from ingest.vision import GEMINI_INLINE_BYTES, image_of

    if vision is None or not vision.describes:
        return _read_words(data, vision)
    if len(data) > GEMINI_INLINE_BYTES:
        raise LoadError(f"an image of {len(data) / 1024 / 1024:.1f} MB: over Gemini's 20 MB inline limit")
    try:
        image = image_of(data)
    except (OSError, ValueError) as exc:
        raise LoadError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    text = vision.describe(image)
    if not text:
        return Reading([], "Gemini gave no description")
    return Reading([Section(f"Figure: {text}", kind="figure")])


def _read_words(data: bytes, vision: Vision | None) -> Reading:
    """An image file offline: its legible printed words, as one section, or why none."""
    from ingest.ocr import INSTALL_HINT, OcrError
    from ingest.vision import NO_KEY

    try:
        words = vision.read_words(data) if vision is not None else None
    except (OSError, ValueError) as exc:
        raise LoadError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    except OcrError as exc:
        raise LoadError(str(exc)) from exc
    if words is None:
        raise Unreadable(f"an image: offline it has no text to index ({NO_KEY}, or {INSTALL_HINT})")
    if not words:
        raise Unreadable(f"an image with no printed words Tesseract can read (a photo?): {NO_KEY}")
    return Reading([Section(words)])


def load_text(data: bytes) -> list[Section]:
    return [Section(decode(data))]


_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")


def load_markdown(data: bytes) -> list[Section]:
    return markdown_sections(unseen_markdown(decode(data)), setext=True)


# What a Markdown file holds that its reader never sees: HTML comments (Node.js's API docs
# open each method with "<!-- YAML added: v0.1.16 -->") and link reference definitions
# ("[`setTimeout()`]: #settimeout"): 100 and 109 of this machine's Markdown files under
# /usr/share/doc have them, and both were quoted as if they were text. As CommonMark reads
# them: a comment that opens a line (up to three spaces in, so not indented code, nor a
# "`<!--`" in a sentence) runs to its "-->"; a definition is a label (not a footnote's "[^1]"),
# a destination and an optional title, alone on its line, not inside a paragraph.
_COMMENT_OPENS = re.compile(r" {0,3}<!--")
_LINK_DEFINITION = re.compile(
    r" {0,3}\[(?!\^)[^\]\n]+\]:[ \t]*\S+"  # [label]: destination
    r"(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?[ \t]*"  # "title", 'title' or (title)
)


def unseen_markdown(text: str) -> str:
    """`text` with its comments and link definitions blanked out, outside code fences (an
    HTML sample's comment is code), line breaks kept, so every other character stays where it
    was (a section's offset is where the viewer finds it)."""
    out: list[str] = []
    fence = ""
    in_comment = False
    paragraph = False  # the line before holds text: a definition cannot interrupt it
    for line in text.splitlines(keepends=True):
        marker = FENCE.match(line)
        body = line.rstrip("\r\n")
        if fence:
            if marker and closes_fence(fence, marker.group(1), line[marker.end() :]):
                fence = ""
        elif in_comment or (not marker and _COMMENT_OPENS.match(line)):
            in_comment = "-->" not in body
            line = _blank(line)
        elif marker:
            fence = marker.group(1)
        elif not paragraph and _LINK_DEFINITION.fullmatch(body):
            line = _blank(line)
            out.append(line)
            continue  # definitions may follow one another
        paragraph = bool(line.strip()) and not fence and not marker
        out.append(line)
    return "".join(out)


def _blank(line: str) -> str:
    return re.sub(r"[^\r\n]", " ", line)


# A setext heading's underline: "Title" over "=====" (level 1) or "-----" (level 2). Three
# dashes at least, so a lone "-" (an empty list item) is none.
_SETEXT = re.compile(r" {0,3}(?:=+|-{3,})[ \t]*")
_NOT_A_TITLE = re.compile(r"\s*(?:[-*+>|]|\d+[.)]\s|#|```|~~~)")  # a list item, quote, table row, heading, fence


def markdown_sections(text: str, setext: bool = False) -> list[Section]:
    """Split at ATX headings outside code fences, and with `setext` (Markdown files) at
    setext ones, a title line alone over its underline: 92 of the 379 Markdown files under
    this machine's /usr/share/doc have them, and their sections had no heading path, one
    chunk starting with the underline. A heading with no body of its own joins the section
    below it, so no chunk is a bare title. YAML front matter ("---" first) is no heading."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    start, has_body = 0, False
    heading = ""
    offset = 0
    lines = text.splitlines(keepends=True)
    underlines = _setext_underlines(lines) if setext else {}
    for i, (line, role) in enumerate(zip(lines, line_roles(lines), strict=True)):
        match = _HEADING.match(line.rstrip("\r\n")) if role == "text" else None
        titled = (len(match.group(1)), match.group(2).strip()) if match else None
        if titled is None and role == "text" and i + 1 in underlines:
            titled = (underlines[i + 1], line.strip())
        if titled:
            if has_body:
                sections.append(Section(text[start:offset], offset=start, heading=heading))
                start, has_body = offset, False
            level, name = titled
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, name)]
            heading = " > ".join(title for _, title in path)
        elif line.strip() and not (i in underlines and role == "text"):
            has_body = True
        offset += len(line)
    if has_body or not sections:
        sections.append(Section(text[start:], offset=start, heading=heading))
    return sections


def _setext_underlines(lines: Sequence[str]) -> dict[int, int]:
    """The lines that underline a setext heading, with its level: under a line of text alone
    (a blank line or the start before it) that is no list item, quote, table row, heading or
    fence. Fences are told apart by the caller: an underline inside one is code."""
    found: dict[int, int] = {}
    first = 0
    if lines and lines[0].strip() == "---":  # YAML front matter, up to its closing "---"
        first = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), len(lines))
    for i in range(max(first, 1), len(lines)):
        title, before = lines[i - 1], lines[i - 2] if i >= 2 else ""
        if (_SETEXT.fullmatch(lines[i].rstrip("\r\n")) and title.strip() and not _NOT_A_TITLE.match(title)
                and (i - 1 == first or not before.strip())):
            found[i] = 1 if lines[i].strip()[0] == "=" else 2
    return found


def load_html(data: bytes) -> list[Section]:
    """Visible text only, of the page's main content when it marks one. Headings become
    Markdown headings so the page splits into sections with heading paths, like a Markdown
    file; code blocks become fenced code as laid out (a "# comment" in them is no heading),
    table rows Markdown table rows (the offline answerer labels each cell with its column);
    block elements end lines, inline ones (links, code, emphasis) stay within their sentence."""
    from bs4 import BeautifulSoup

    markup: str | bytes | None = utf16_without_bom(data)
    if markup is None:
        sniff_binary(data)
        markup = data  # bytes: BeautifulSoup reads the page's own charset declaration
    soup = BeautifulSoup(markup, "html.parser")
    title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    body = _main_content(soup)
    for tag in body.find_all(_chrome):
        tag.decompose()
    for string in body.find_all(string=lambda text: _MARK in text or _TERM_END in text):
        string.replace_with(string.replace(_MARK, "").replace(_TERM_END, ""))
    for sup in body.find_all("sup"):  # "2<sup>64</sup>" is 2^64, not 264
        before = sup.find_previous(string=True)
        power = sup.get_text(strip=True)
        if before and before.rstrip().endswith(tuple("0123456789")) and re.fullmatch(r"[-+−]?\w{1,6}", power):
            sup.replace_with(f"^{power}")
    for term in body.find_all("dt"):
        if _runs_on(term):
            term.append(_TERM_END)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(_markdown_lines(_page_text(body)))).strip()
    text = re.sub(r"(?<=\|)\n\n(?=\|)", "\n", text)  # a table's rows, one per line
    if _TERM_END in text:
        text = _TERM_BREAK.sub("\n", text)
    return _titled(markdown_sections(text), title)


def _page_text(body: Tag | BeautifulSoup, separator: str = "", rows: bool = True) -> str:
    """The text of `body` as `get_text` reads it, with a block element's text on lines of
    its own and some elements read whole (`_whole_text`), in one walk of the tree. Rewriting
    the tree instead (a line break inserted before and after each block, each heading, code
    block and row replaced by its text) cost a scan of the element's siblings, or of its last
    descendants, at every step: a page of 20,000 paragraphs took 214 s to load, one of 10,000
    nested <div>s 16 s. `separator` joins the pieces, as `get_text`'s does: a table cell's
    words are read apart; `rows`: a row is read as a row, which a table inside a cell is not
    (its rows are words of the cell)."""
    from bs4.element import NavigableString, Tag

    kept = body.interesting_string_types or body.MAIN_CONTENT_STRING_TYPES  # what get_text reads
    out: list[str] = []
    pending: list[PageElement | str] = list(reversed(body.contents))
    while pending:
        node = pending.pop()
        if isinstance(node, NavigableString):
            if type(node) is kept if isinstance(kept, type) else type(node) in kept:
                out.append(node)
        elif isinstance(node, str):  # the line break ending a block, pushed when it began
            out.append(node)
        elif isinstance(node, Tag):
            whole = _whole_text(node, rows)
            if whole is not None:
                out.append(whole)
                continue
            if node.name in _BLOCKS:
                out.append("\n")
                pending.append("\n")
            pending.extend(reversed(node.contents))
    return separator.join(out)


def _whole_text(tag: Tag, rows: bool) -> str | None:
    """An element read whole rather than walked: code as a fenced block as laid out (its
    fence longer than any run of backticks inside), a heading as a Markdown heading, a table
    row as a Markdown row (with `rows`); None for any other. Marked (`_MARK`), so that
    `_markdown_lines` keeps them as written."""
    if tag.name == "pre":
        code = tag.get_text()
        fence = "`" * max(3, 1 + max(map(len, re.findall("`+", code)), default=0))
        return f"\n\n{_MARK}{fence}\n{code}\n{_MARK}{fence}\n\n"
    if tag.name in _HEADINGS:
        return f"\n\n{_MARK}{'#' * int(tag.name[1])} {tag.get_text(' ', strip=True)}\n\n"
    if tag.name == "tr" and rows:
        cells = tag.find_all(("td", "th"), recursive=False)
        texts = [text for cell in cells for text in _spanned(cell, _page_text(cell, " ", rows=False))]
        row = table_row(texts)
        return f"\n{row}\n{table_rule(len(texts))}\n" if _header_row(tag) else f"\n{row}\n"
    return None


def _spanned(cell: Tag, text: str) -> list[str]:
    """A cell as the columns it spans: a header's name over each (a <th colspan=2> "Name"
    labelled one cell of two, and every cell after it with the wrong name), a data cell's text
    in its first and empty ones after it."""
    given = str(cell.get("colspan", ""))
    span = int(given) if given.isdigit() else 1
    return [text] + [text if cell.name == "th" else ""] * (min(span, _MAX_SPAN) - 1)


def _header_row(tr: Tag) -> bool:
    """Whether a table row is its table's header, which its rule marks (`table_row`): the
    last of the rows of <th> cells the table starts with. A second header row or a <th> row
    further down (a section's title) gets none: a rule after each made one a row of "---"
    and the answerer labelled the rows under it with a section title's cells (review)."""
    if not _all_th(tr):
        return False
    table = tr.find_parent("table")

    def rows(step: Callable[[Tag], Tag | None]) -> Iterator[Tag]:
        """This table's rows, one way from `tr`, up to its edge: walked on through the rest of
        the page, a page of 400 small tables took 2.6 s instead of 0.1."""
        row = step(tr)
        while row is not None and any(parent is table for parent in row.parents):
            if row.find_parent("table") is table:  # not a row of a table inside this one
                yield row
            row = step(row)

    following = next(rows(lambda row: row.find_next("tr")), None)
    return (following is None or not _all_th(following)) and all(
        _all_th(row) for row in rows(lambda row: row.find_previous("tr")))


_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def table_row(cells: Iterable[str]) -> str:
    """A row of an HTML, Word or PowerPoint table as a Markdown table row, the form the
    offline answerer reads as a table: cells on one line, and a "|" in a cell ("x | y")
    escaped, so it makes no column. A header row is followed by its rule (`table_rule`): an
    HTML row of <th> cells, a Word or PowerPoint table's first row. The answerer labels each
    cell with its column's header only under a rule, so a table without one (the Python
    docs' "pstdev() | Population standard deviation of data." summaries, a passage starting
    mid-table) is not read as pairs of its first row's cells with the others'."""
    return "| " + " | ".join(" ".join(cell.split()).replace("|", "\\|") for cell in cells) + " |"


def _all_th(tr: Tag) -> bool:
    cells = tr.find_all(("td", "th"), recursive=False)
    return bool(cells) and all(cell.name == "th" for cell in cells)


def table_rule(columns: int) -> str:
    return "|" + " --- |" * max(1, columns)


def headed_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """A Word or PowerPoint table's lines: its first row is its header, as those tables lay out."""
    lines = [table_row(cells) for cells in rows]
    return [*lines[:1], table_rule(len(rows[0])), *lines[1:]] if rows else []


def _titled(sections: list[Section], title: str) -> list[Section]:
    """The sections under the page's `<title>` when no heading of the page says it: SQLite's
    "Write-Ahead Logging" page titles itself in a styled `<div>` and numbers its sections
    "1. Overview", "3. Activating And Configuring WAL Mode", so no heading path named WAL's
    long name. A title that a heading holds (the Python docs' "json — JSON encoder and
    decoder — Python 3.11 documentation" over the heading "json — JSON encoder and decoder")
    adds nothing. Only the title's first part: what follows a dash or a parenthesis names the
    site or the manual ("Invoking diff (Comparing and Merging Files)")."""
    lead = re.split(r"\s+[—–|-]\s+|\s+\(", title, maxsplit=1)[0].strip()  # not the site's or manual's name
    if not lead or any(lead.casefold() in " ".join(s.heading.split()).casefold() for s in sections):
        return sections
    return [replace(s, heading=f"{lead} > {s.heading}" if s.heading else lead) for s in sections]


# Marks the lines load_html writes as Markdown (headings and code fences), so that every
# other line that would read as such is escaped (`_markdown_lines`); private use, so no page
# prints it (any it holds is dropped).
_MARK = "\ue000"


def _markdown_lines(text: str) -> Iterator[str]:
    """The lines of a page's text as Markdown: the marked ones as written, code as laid out,
    every other line stripped and escaped when it would read as a heading or a fence ("# 1 is
    the default", or a "#" and its words from separate elements)."""
    in_code = False
    for line in text.splitlines():
        if line.startswith(_MARK):
            in_code ^= bool(FENCE.match(line[1:]))
            yield line[1:]
        elif in_code:
            yield line.rstrip().replace(_MARK, "")
        else:
            yield _literal(line.strip().replace(_MARK, ""))


# Ends a definition list's term (`<dt>`) followed by its description (`<dd>`) or an alias
# term: the blank line after it is taken out, so the term and the description's first line are
# one sentence ("-q, --quiet" over "Run silently, and only print error messages."), unless the
# description opens with a block of its own (code, a list, a table, a heading). Before, a term
# under 20 characters was no quotable unit at all, and its description was quoted without
# naming the option or word it describes (new-user walkthrough, Valgrind's manual). Private
# use, as `_MARK`.
_TERM_END = "\ue001"
# A term's own line breaks go too: git's pages write "<dt class="hdlist1">\nTERM\n</dt>". From
# the start of a run of white space only: tried inside a long one (a <pre> of 20,000 spaces),
# each position rescanned the rest of it.
_TERM_BREAK = re.compile(rf"(?<![ \t\n])[ \t\n]*{_TERM_END}[ \t]*(?:\n[ \t]*)*")
# What a description may open with that is a block of its own, not the term's sentence.
_BLOCK_OPENERS = frozenset({"ul", "ol", "dl", "table", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"})


def _runs_on(term: Tag) -> bool:
    """Whether a <dt>'s text runs on into what follows it: an alias <dt>, or a <dd> whose
    first content is text, not a list, a table, code or a nested list of terms (nor an empty
    <dd>, after which the next term is no description)."""
    from bs4.element import NavigableString, Tag

    after = term.find_next_sibling(True)
    if not term.get_text(strip=True) or after is None or not after.get_text(strip=True):
        return False
    if after.name != "dd":
        return after.name == "dt"
    first = next((node for node in after.descendants
                  if (isinstance(node, Tag) and node.name in _BLOCK_OPENERS)
                  or (type(node) is NavigableString and node.strip())), None)
    return isinstance(first, NavigableString) and _MARK not in first


# Elements that end a line of text; all others (links, code, emphasis) run on in it.
_BLOCKS = ("address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div", "dl", "dt",
           "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "ol", "p",
           "section", "summary", "table", "ul")


# Landmarks that frame a page rather than say anything: menus, search boxes, breadcrumbs.
_CHROME_TAGS = frozenset({"nav"})
_CHROME_ROLES = frozenset({"navigation", "search"})
# The same, marked only by a class or id, as hand-written sites do ('<div class="menu
# mainmenu">', SQLite's '<div class=nosearch>' around its banner, tagline and menus): a
# whole word of the name, so "menuselection" (Sphinx's GUI menu path) is text; not "sidebar",
# which Sphinx gives an aside of the page's own ("This page contains the API reference").
_CHROME_NAME = re.compile(r"(?:^|[-_])(?:nav|navbar|navigation|menu|mainmenu|submenu|breadcrumbs?"
                          r"|nosearch|noindex|skip-?link)(?:$|[-_])", re.I)
# What a documentation generator appends to a heading or definition to link to it.
_PERMALINKS = frozenset({"¶", "§", "#", "🔗", "link"})
_NAMED_CHROME = frozenset({"div", "ul", "ol", "header", "footer", "aside", "section", "table", "td", "span"})


def _main_content(soup: BeautifulSoup) -> Tag | BeautifulSoup:
    """The page's one `<main>` (or `role="main"`) element when it has exactly one: a
    generated documentation page repeats its sidebar, table of contents and neighbours'
    titles on every page (Sphinx, MkDocs), which would otherwise be indexed as sections of
    their own, with the page's heading, on every page. Else (none, several, or an empty one)
    the whole page."""
    mains = soup.select("main") or soup.select('[role="main"]')
    return mains[0] if len(mains) == 1 and mains[0].get_text(strip=True) else soup


def _chrome(tag: Tag) -> bool:
    """Navigation and search landmarks, menus named so by their class or id, DocBook's
    tables of contents (`<div class="toc">` atop each chapter of Valgrind's manual: its
    entries were quoted as answers, new-user walkthrough; a class of that one word, so
    Sphinx's "toc-backref" heading links stay), and permalink anchors ("¶" after each heading)."""
    if tag.name in _CHROME_TAGS or tag.get("role") in _CHROME_ROLES:
        return True
    names = [*tag.get_attribute_list("class"), *tag.get_attribute_list("id")]
    if tag.name in _NAMED_CHROME and any(_CHROME_NAME.search(name) for name in names if isinstance(name, str)):
        return True
    if tag.name == "div" and "toc" in tag.get_attribute_list("class"):  # DocBook's table of contents
        return True
    href = tag.get("href")
    return tag.name == "a" and isinstance(href, str) and href.startswith("#") and (
        tag.get_text(strip=True) in _PERMALINKS)


def decode(data: bytes) -> str:
    """UTF-8 first (the common case, and never a wrong guess when it succeeds), then the
    most likely encoding by charset detection; text no encoding explains is refused."""
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:  # a byte-order mark, then bytes no UTF-16 text holds
            raise LoadError(f"starts as UTF-16 text but is not UTF-16 ({exc.reason} at byte {exc.start})") from None
    utf16 = utf16_without_bom(data)
    if utf16 is not None:
        return utf16
    sniff_binary(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes  # only for the rare file that is not UTF-8

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise LoadError("not UTF-8 and no text encoding fits: is it really a text file?")
    # Short Western text fits several code pages equally well; cp1252 is the likely one.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return str(next((m for m in tied if m.encoding == "cp1252"), best))


def utf16_without_bom(data: bytes) -> str | None:
    """Text saved as UTF-16 with no byte-order mark (some Windows tools): mostly Latin text
    then has a NUL in every other byte, always on the same side. None when it is not that."""
    sample = data[:_BINARY_SNIFF]
    pairs = len(sample) // 2
    if pairs == 0 or len(data) % 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= pairs * 0.3 and even == 0:
        encoding = "utf-16-le"
    elif even >= pairs * 0.3 and odd == 0:
        encoding = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in text[:_BINARY_SNIFF])
    return text if printable >= 0.95 * min(len(text), _BINARY_SNIFF) else None


def sniff_binary(data: bytes) -> None:
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise LoadError("binary content (NUL bytes) in a file with a text extension")


def load_docx(data: bytes) -> list[Section]:
    """Paragraphs and tables in body order; paragraphs in Word's heading styles (and Title)
    become Markdown headings, so the document splits into sections with heading paths."""
    from docx import Document
    from docx.opc.exceptions import OpcError
    from docx.table import Table

    try:
        document = Document(BytesIO(data))
        blocks: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                blocks.append("\n".join(headed_table([[c.text for c in row.cells] for row in block.rows])))
                continue
            style = block.style.name if block.style is not None else ""
            level = _heading_level(style)
            text = block.text.strip()
            if level and text:
                blocks.append(f"{'#' * level} {' '.join(text.split())}")
            elif text and style.startswith("List"):  # "List Bullet", "List Number 2": an item, no heading
                blocks.append(f"- {' '.join(text.split())}")
            elif text:
                blocks.append(_literal(text))
    except (OpcError, *_OFFICE_ERRORS) as exc:  # type: ignore[misc]  # mypy cannot star-unpack exception tuples
        raise _office_refusal(data, "Word document", exc) from exc
    return markdown_sections("\n\n".join(blocks))


def _heading_level(style: str) -> int:
    """Word's built-in heading styles: "Title" is level 1 and "Heading n" level n + 1 (at
    most 6), so the title heads the path: "Travel Policy > Booking"."""
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(int(match.group(1)) + 1, 6) if match else 0


def _literal(text: str) -> str:
    """Body text that would read as a Markdown heading or code fence, escaped."""
    return "\n".join("\\" + line if _HEADING.match(line) or FENCE.match(line) else line for line in text.splitlines())


def load_pptx(data: bytes) -> list[Section]:
    """One section per slide, numbered like pages (cited "slide n"), headed by the slide's
    title: text of every shape in order (groups and tables included), then speaker notes."""
    from pptx import Presentation
    from pptx.exc import PythonPptxError

    try:
        sections = []
        for n, slide in enumerate(Presentation(BytesIO(data)).slides, start=1):
            title = slide.shapes.title
            texts = [t for shape in slide.shapes for t in _shape_texts(shape, title)]
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text.strip()
                texts += [f"\nNotes: {notes}"] if notes else []
            heading = " ".join(title.text_frame.text.split()) if title is not None and title.has_text_frame else ""
            sections.append(Section("\n".join(texts), page=n, heading=heading, unit="slide"))
    except (PythonPptxError, *_OFFICE_ERRORS) as exc:  # type: ignore[misc]  # as above
        raise _office_refusal(data, "PowerPoint file", exc) from exc
    return sections


# An Office file's main part, by what it is and the name ending that says so.
_OFFICE_PARTS = {"word/document.xml": ("Word document", ".docx"), "ppt/presentation.xml": ("PowerPoint file", ".pptx"),
                 "xl/workbook.xml": ("Excel workbook", ".xlsx")}


def _office_refusal(data: bytes, wanted: str, exc: Exception) -> LoadError:
    """Why an Office file named a `wanted` one cannot be read: another kind of Office file
    under the wrong name ending says so ("a PowerPoint file named as a Word document: rename
    it .pptx"), where the library said "file '<_io.BytesIO object at 0x7f...>' is not a Word
    file, content type is 'application/vnd...presentationml...'"; else the library's reason."""
    try:
        parts = set(zipfile.ZipFile(BytesIO(data)).namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        parts = set()
    for part, (kind, suffix) in _OFFICE_PARTS.items():
        if part in parts and kind != wanted:
            fix = f"rename it {suffix}" if suffix in SUPPORTED else f"ingest does not read {suffix} files"
            return LoadError(f"a {kind} named as a {wanted}: {fix}")
    reason = re.sub(r"'<_io\.BytesIO object at 0x[0-9a-f]+>'", "it", str(exc))
    return LoadError(f"not a readable {wanted} ({type(exc).__name__}: {reason})")


def _shape_texts(shape: BaseShape, title: BaseShape | None) -> Iterator[str]:
    """Only a table's frame has a table and only an autoshape (placeholders included) a text
    frame: the classes python-pptx overrides has_table and has_text_frame on. A text frame's
    paragraphs are bullets, written as Markdown list items: a bullet seldom ends in a full
    stop, and a short line without one reads as a heading, so "The Q3 cloud budget is 48,000
    USD" was never quoted, only the notes under it. The title is the slide's heading."""
    from pptx.shapes.autoshape import Shape
    from pptx.shapes.graphfrm import GraphicFrame
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        for inner in shape.shapes:
            yield from _shape_texts(inner, title)
    elif isinstance(shape, GraphicFrame) and shape.has_table:
        yield from headed_table([[c.text for c in row.cells] for row in shape.table.rows])
    elif isinstance(shape, Shape) and shape.text_frame.text.strip():
        if title is not None and shape.shape_id == title.shape_id:
            yield " ".join(shape.text_frame.text.split())
            return
        for paragraph in shape.text_frame.paragraphs:
            if text := " ".join(paragraph.text.split()):
                yield f"- {text}"


_LOADERS: dict[str, Callable[[bytes], list[Section]]] = {
    "markdown": load_markdown, "text": load_text, "html": load_html, "docx": load_docx, "pptx": load_pptx,
}
