"""Turn a file's bytes into text sections that keep where the text came from.

A section is the unit chunking never crosses: one PDF page (with its 1-based number), one
Markdown section (with its heading path), or a whole plain-text file. A file we cannot read
raises `LoadError` with a reason a user can act on; the run reports it and goes on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from io import BytesIO

logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings would garble the progress bar

_BINARY_SNIFF = 8_192
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class LoadError(Exception):
    """The file cannot be indexed; the message says why, for the failure list."""


@dataclass(frozen=True)
class Section:
    text: str
    offset: int = 0  # where `text` starts in the document's text (per page for PDFs)
    page: int | None = None
    heading: str = ""


def load(data: bytes, kind: str) -> list[Section]:
    """Sections with text, in document order; raises LoadError when there are none."""
    sections = _LOADERS[kind](data)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        hint = " (scanned pages? OCR is not supported)" if kind == "pdf" else ""
        raise LoadError(f"no text to index{hint}")
    return sections


def load_pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF: it needs a password, which ingest does not take")
        return [Section(page.extract_text() or "", page=n) for n, page in enumerate(reader.pages, start=1)]
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # pypdf signals a damaged file with many exception types; all mean the same to a user.
        raise LoadError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc


def load_text(data: bytes) -> list[Section]:
    return [Section(decode(data))]


_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def load_markdown(data: bytes) -> list[Section]:
    return markdown_sections(decode(data))


def markdown_sections(text: str) -> list[Section]:
    """Split at ATX headings outside code fences. A heading with no body of its own joins
    the section below it, so no chunk is a bare title."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    start, has_body, in_fence = 0, False, False
    heading = ""
    offset = 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line.rstrip("\r\n"))
        if match:
            if has_body:
                sections.append(Section(text[start:offset], offset=start, heading=heading))
                start, has_body = offset, False
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2).strip())]
            heading = " > ".join(title for _, title in path)
        elif line.strip():
            has_body = True
        offset += len(line)
    if has_body or not sections:
        sections.append(Section(text[start:], offset=start, heading=heading))
    return sections


def load_html(data: bytes) -> list[Section]:
    """Visible text only. Headings become Markdown headings so the page splits into
    sections with heading paths, like a Markdown file."""
    from bs4 import BeautifulSoup

    sniff_binary(data)
    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    for level in range(1, 7):
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n\n{'#' * level} {tag.get_text(' ', strip=True)}\n\n")
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return markdown_sections(text)


def decode(data: bytes) -> str:
    """UTF-8 first (the common case, and never a wrong guess when it succeeds), then the
    most likely encoding by charset detection; text no encoding explains is refused."""
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16")
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


_LOADERS = {"pdf": load_pdf, "markdown": load_markdown, "text": load_text, "html": load_html}
