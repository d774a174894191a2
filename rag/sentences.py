"""Passages that start on a whole sentence.

A chunk's overlap repeats the last lines of the chunk before it, and in a PDF a line seldom
starts a sentence, so many chunks begin mid-sentence ("output tokens, that is $25.00 per
day"). Shown as they are, such passages hand a model, the offline answerer and the reader a
fragment whose subject is in the text before. So ingest keeps, with each chunk, the words
before it that start its first sentence, when they are in the same section and under
`MAX_LEAD_CHARS` (`lead`); retrieval ranks the chunk on its own text and shows it with its
lead (`as_shown`). The lead is the document's own text, cut at the chunk's offsets; for a
chunk that starts inside a fenced code block, it is that block's opening fence line
(`fence_lead`), so the passage reads as the code it is.

Kept at ingest rather than read from the chunk before at question time: a metadata lookup
in Chroma scans the collection, 11 ms a question at 10k chunks and 27 ms at 30k (bench,
2026-12-04), where a stored lead costs nothing. A passage's end is left as it is:
completing it too, from the chunk after, was measured and lost evidence on three of the
four test sets (EVALUATION.md), since a longer last sentence takes the offline
answer's reading budget from other sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from rag.text import STOPWORDS, line_roles
from rag.types import Chunk

MAX_LEAD_CHARS = 300  # a longer missing start is a paragraph, not a sentence's edge: left out
# Where a sentence ends: a stop (with any closing quote or bracket) before white space, or a
# blank line. Not a colon: "billed per hour (as of 2025-09): $1.00 for Gemini" is one sentence.
# A text file may end its lines in "\r\n".
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+|\n[ \t\r]*\n")
_ENDED = re.compile(r"[.!?][\"'”’)\]]*\s*$|\n[ \t\r]*\n\s*$")
# A list item, a quote, a table row, a heading, code; and a line starting with "-" (a
# manual's option list: "-o,-outname name", though "-5 degrees" is read as one too).
_STARTS_BLOCK = re.compile(r"\s*(?:[-*•>|#]|\d+[.)]\s|```)")
_HEADING_LINE = re.compile(r"^\s*(#{1,6}\s.*|[A-Z][^!?:;]{0,60}[^.!?:;,\s])\s*$")
# A numbered section title as a PDF prints it: "3.6.2 Subscripted variables", "1 Basic Graph
# Drawing"; not a list item's "1. ", nor a line holding a comma or another figure (a
# sentence's wrap, a table row: "1 Flash 0.30 2.50"), nor one ending in a function word
# ("... than Flash and"). Only after a sentence's end (not a colon: "... one of these
# values:" over "0 No output at all"), a blank line or another heading: a wrapped line may
# start with a figure ("... for Gemini" over "2.5 Pro costs more").
_NUMBERED_TITLE = re.compile(r"^\s*(?:\d{1,3}(?:\.\d{1,3})+\.?|\d{1,2})\s+([A-Z][^!?:;,\d]{0,50}[^.!?:;,\s])\s*$")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s*$")
_MARKED_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s|$)")
_SETEXT = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")


def setext_underline(line: str) -> bool:
    """Whether `line` could underline the line above it as a setext heading ("=====", "---")."""
    return _SETEXT.match(line) is not None


def heading_line(line: str, next_line: str, marked: bool = False, previous: str = "") -> bool:
    """Whether `line` is a heading (Markdown `#`, or a short line without punctuation, as PDF
    extraction leaves them, or such a line after its section number, `_NUMBERED_TITLE`, when
    `previous`, the line before it, ends a sentence or is blank; "" after a heading), unless
    the text runs on into `next_line` in lower case ("To implement a queue, use" over
    "collections.deque which was designed to", as HTML extraction wraps lines at inline
    code). A heading ends the sentence before it: a numbered one ran into the sentence after
    it ("3.6.2 Subscripted variables The primary linear expression, ..." on 406 of GLPK's
    lines). In text whose headings are `marked` (HTML and Markdown, `rag.filetypes.marks_headings`), only a
    `#` line or a line over a setext underline is one: a line its author wrapped ("When using
    ZIP_DEFLATED integers 0 through 9 are accepted" over "(see zlib for more information).")
    is no heading there, and was cut from its sentence (85 such lines in the Python docs)."""
    if marked:
        return _MARKED_HEADING.match(line) is not None or (bool(line.strip()) and setext_underline(next_line))
    if next_line[:1].islower() or next_line[:1] == "_":
        return False
    if _HEADING_LINE.match(line):
        return True
    numbered = _NUMBERED_TITLE.match(line)
    return (numbered is not None and numbered.group(1).split()[-1].lower() not in STOPWORDS
            and (not previous.strip() or _SENTENCE_END.search(previous) is not None))


def code_blocks(text: str) -> list[tuple[int, int, str]]:
    """The fenced code blocks of `text`: where each one's first line starts, where its closing
    fence line starts (the text's end for a block left open), and its opening fence line. A
    text without a fence's characters (most of a PDF's pages) is not read line by line."""
    blocks: list[tuple[int, int, str]] = []
    if "```" not in text and "~~~" not in text:
        return blocks
    opened: tuple[int, str] | None = None  # the open block: where its code starts, its fence line
    pos = 0
    lines = text.splitlines(keepends=True)
    for line, role in zip(lines, line_roles(lines), strict=True):
        if role == "open":
            opened = (pos + len(line), line.rstrip("\r\n"))
        elif role == "close" and opened is not None:
            blocks.append((opened[0], pos, opened[1]))
            opened = None
        pos += len(line)
    if opened is not None:
        blocks.append((opened[0], len(text), opened[1]))
    return blocks


def fence_lead(blocks: Sequence[tuple[int, int, str]], start: int) -> str:
    """The lead of a chunk starting at `start` inside one of the section's `blocks`
    (`code_blocks`), at its closing fence line included: the block's opening fence line.
    Without it, the passage's first fence (the block's closing one) read as an opening one,
    and the prose after it as code; on the Python docs 592 of 2,350 chunks start inside a
    code block. "" outside code."""
    return next((f"{fence}\n" for first, closing, fence in blocks if first <= start <= closing), "")


def lead(section: str, start: int, marked: bool = False) -> str:
    """The text of `section` from the start of the sentence that `section[start:]` begins in
    the middle of, up to `start`; "" when it begins a sentence (or a list item, a table row,
    a heading), or when that sentence starts more than `MAX_LEAD_CHARS` before it. A heading
    line is not part of the sentence after it: the answerer would read it as the heading of
    what follows (rag.providers.quotable). `marked`: the file marks its headings
    (`heading_line`), so a short wrapped line of an HTML page does not cut the lead short."""
    window = section[max(0, start - MAX_LEAD_CHARS - 8) : start]
    if not window.strip() or _ENDED.search(window) or _STARTS_BLOCK.match(section, start):
        return ""
    stops = [m.end() for m in _BOUNDARY.finditer(window)]
    begin = start - len(window) + (stops[-1] if stops else 0)  # in `section`
    lines = section[begin:start].split("\n")  # lines, then the part of a line before `start`
    # The first is a whole line only where a line starts: the tail of a longer line, or a
    # sentence after a full stop on its line, is no heading however it looks.
    first = 0 if begin == 0 or section[begin - 1] == "\n" else 1
    after_heading = 0
    following = begin  # where the text after each line starts
    # the line before ("" after a heading), which a numbered title follows at a sentence's end
    previous = section[: begin - 1].rpartition("\n")[2] if begin and section[begin - 1] == "\n" else ""
    for i, line in enumerate(lines[:-1]):
        following += len(line) + 1
        title = i >= first and heading_line(line, section[following : start + 1].lstrip(" \t"), marked, previous)
        if title:
            after_heading = i + 1
        previous = "" if title else line
    if not stops and not after_heading:
        return ""  # the sentence starts further back, or (at a page's start) on another page
    found = "\n".join(lines[after_heading:])
    return found if found.strip() and len(found) <= MAX_LEAD_CHARS else ""


def as_shown(chunk: Chunk) -> Chunk:
    """The chunk as a passage shows it: its lead, then its text."""
    if not chunk.lead:
        return chunk
    return replace(chunk, text=chunk.lead + chunk.text, start=chunk.start - len(chunk.lead), lead="")
