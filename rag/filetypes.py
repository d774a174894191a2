"""The file types the product reads, by extension, and how each is read (ingest's loaders);
and a file's name as stored, printable on one line.

In the core, not in ingest: the router recognises a file name in a question by its
extension, the API refuses an upload it could not read before queuing it, and a question's
source filter names a file as ingest stored it, and none of them may import ingest, which
builds on the core.
"""

from __future__ import annotations

import re
from pathlib import Path

SUPPORTED = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
    ".pptx": "pptx",
    # Described by Gemini with a key (ingest.vision); offline, Tesseract reads their printed words.
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".webp": "image",
}


def marks_headings(source: str) -> bool:
    """Whether the file's text marks its headings as Markdown does (`#` lines, as Markdown
    files and the HTML loader write them), so that a short line without punctuation in it is
    a line its author wrapped, not a heading as in a PDF page's text (rag.sentences)."""
    return SUPPORTED.get(Path(source).suffix.lower()) in ("markdown", "html")


# Control characters in a name would break the one line each file gets in a report.
# C1 controls (U+0080 to U+009F; some terminals read U+009B as an escape) are written `\u0085`:
# `\x85` is a byte that is not UTF-8.
_CONTROL = ({c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {c: f"\\u{c:04x}" for c in range(0x80, 0xA0)}
            | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPED = re.compile(r"\\(x[0-9a-f]{2}|u00[89][0-9a-f]|[nrt])")


def printable(path: str | Path) -> str:
    """A path as text that can be printed and stored on one line: bytes that are not UTF-8
    (kept by Python as surrogates) become `\\xNN`, control characters `\\n`, `\\t`, `\\xNN` or
    `\\u00NN`."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").translate(_CONTROL)


def unprintable(source: str) -> str:
    """The name `printable` wrote, as the file system spells it (to look for the file again).
    A name that held a backslash before `n`, `r`, `t` or `x` and two hex digits comes back
    wrong: it is only used to tell whether a file the walk did not take still exists."""
    def byte(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "u":
            return chr(int(code[1:], 16))
        if code[0] != "x":
            return {"n": "\n", "r": "\r", "t": "\t"}[code]
        value = int(code[1:], 16)
        return chr(0xDC00 + value) if value >= 0x80 else chr(value)  # surrogateescape keeps a byte so

    return _ESCAPED.sub(byte, source)
