"""Open a cited source at the place it was cited: a PDF page as an image with the cited
text highlighted, or a Markdown, HTML or text section rendered safely with the passage marked.

PDF pages are rendered on the server (pypdfium2: the browser never loads the PDF, so a
hostile PDF's scripts and links cannot run) and cached per page under the data dir, keyed by
the file's content hash, so a page is rendered once however often it is opened. Highlights
are boxes around the characters PDFium reports for the cited text, drawn on a copy.

Markdown goes through ui.safe (no raw HTML, no images, allow-listed tags, safe links). The
file is found through the ingest manifest, which records where each source was read from.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from ingest.loaders import PDFIUM, LoadError, Section, load, render_scale
from ingest.manifest import Manifest
from ingest.pipeline import MANIFEST
from rag.filetypes import SUPPORTED
from rag.settings import Settings
from rag.text import CELL_BREAK, TABLE_ROW, TABLE_RULE
from rag.types import Chunk
from ui import safe

log = logging.getLogger(__name__)

PAGE_SCALE = 1.6  # 115 dpi: body text readable on a laptop, a page PNG of ~100-200 KB
HIGHLIGHT = (255, 214, 0, 110)  # translucent yellow over the text
PAD = 2  # pixels around each highlighted line
FIGURE_MAX_PX = 1_400  # an image file shown as a source: about a page preview's size
TEXT_WINDOW = 1_500  # characters shown around a passage of an unsectioned text file
FRAGMENT_WORDS = 6  # when a sentence is not found whole on the page, find it in pieces

FOLDER = "previews"  # in the data dir: page images and figures, named by their file's content hash
# The names of the images the viewer shows (a page with its highlight, a figure), which
# `ui.source_images` serves: the first 24 hex digits of the file's content hash, then the place.
SHOWN = re.compile(r"(?P<content>[0-9a-f]{24})-(?:p[0-9]{1,6}-[0-9a-f]{16}|figure)\.png")

_START, _END = "\ue000", "\ue001"  # private-use marks around the passage, replaced after rendering

_INLINE = "[*_`]*"  # Markdown emphasis and code marks, which a passage's sentences are split without
_BLOCK_PREFIX = re.compile(r"\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*|\|)*")


class SourceUnavailable(Exception):
    """The cited file cannot be shown; the message says why in words a reader can act on."""


@dataclass(frozen=True)
class PagePreview:
    image: Path  # PNG of the page with the cited text highlighted
    source: str
    page: int
    found: bool  # whether the cited text was located on the page (else the page is shown plain)


@dataclass(frozen=True)
class TextPreview:
    html: str  # sanitised HTML of the section, the passage inside <mark>
    source: str
    heading: str


def locate(settings: Settings, collection: str, source: str) -> tuple[Path, str]:
    """The file a source was ingested from and its content hash, from the ingest manifest."""
    manifest = Manifest(settings.path(MANIFEST), collection)
    try:
        record = manifest.records().get(source)
    finally:
        manifest.close()
    if record is None:
        raise SourceUnavailable(f"{source} is no longer in collection {collection!r} (re-ingested or removed).")
    path = Path(record.path)
    if not path.is_file():  # the server's path goes to its log, not to whoever reads the answer
        log.warning("%s: %s, where it was ingested from, no longer exists", source, path)
        raise SourceUnavailable(f"{source} is no longer where it was ingested from (moved or deleted): re-ingest "
                                "its folder to open it.")
    return path, record.content_hash


def holds(settings: Settings, collection: str, content: str) -> bool:
    """Whether the collection holds a file whose content hash starts with `content` now."""
    manifest = Manifest(settings.path(MANIFEST), collection)
    try:
        return manifest.holds_content(content)
    finally:
        manifest.close()


def pdf_page(settings: Settings, collection: str, chunk: Chunk, quote: str | None) -> PagePreview:
    """The chunk's page with `quote` (the sentence used) highlighted, else the whole chunk."""
    path, content_hash = locate(settings, collection, chunk.source)
    page = chunk.page or 1
    targets = [t for t in (quote, chunk.text) if t]
    key = hashlib.sha256("\n".join(targets).encode()).hexdigest()[:16]
    folder = settings.path(FOLDER)
    folder.mkdir(exist_ok=True)
    out = folder / f"{content_hash[:24]}-p{page}-{key}.png"
    base = folder / f"{content_hash[:24]}-p{page}.png"
    with PDFIUM:  # Gradio serves handlers from a pool; ingest may read PDFs meanwhile
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:  # replaced since it was ingested by a damaged or encrypted one
            raise SourceUnavailable(f"{chunk.source} cannot be read now: {exc}") from exc
        try:
            if not 1 <= page <= len(pdf):
                raise SourceUnavailable(f"{chunk.source} has {len(pdf)} pages now, not page {page}: re-ingest it.")
            drawn = pdf[page - 1]
            scale = render_scale(drawn, PAGE_SCALE)  # a giant page is drawn smaller, and its boxes with it
            boxes = _find_boxes(drawn, targets, scale)
            if not base.exists():
                drawn.render(scale=scale).to_pil().convert("RGB").save(base, optimize=True)
        finally:
            pdf.close()
    if not out.exists():
        _draw(base, boxes, out)
        _evict(folder, settings.preview_cache_files)
    return PagePreview(out, chunk.source, page, found=bool(boxes))


def figure_image(settings: Settings, collection: str, chunk: Chunk) -> Path:
    """An ingested image file, copied as PNG into the previews folder (served like page
    images, wherever the original lives), at most FIGURE_MAX_PX on its longer side."""
    from PIL import Image

    path, content_hash = locate(settings, collection, chunk.source)
    folder = settings.path(FOLDER)
    folder.mkdir(exist_ok=True)
    out = folder / f"{content_hash[:24]}-figure.png"
    if not out.exists():
        with Image.open(path) as picture:
            picture.thumbnail((FIGURE_MAX_PX, FIGURE_MAX_PX))
            picture.convert("RGBA").save(out, optimize=True)
    return out


def text_section(settings: Settings, collection: str, chunk: Chunk, quote: str | None) -> TextPreview:
    """The Markdown or HTML section holding the chunk (an HTML page's text is extracted as
    Markdown: its headings, code blocks and tables shown as such, where paragraphs showed
    "## Examples", fences and pipes, UI walkthrough), or for plain text the stretch of the
    extracted text around it (the text ingest chunked, so offsets match), rendered safely with
    `quote`, else the whole passage, marked."""
    path, _ = locate(settings, collection, chunk.source)
    kind = SUPPORTED.get(path.suffix.lower(), "text")
    try:
        text, offset = _section_of(load(path.read_bytes(), kind), chunk)
    except LoadError as exc:
        raise SourceUnavailable(f"{chunk.source} cannot be read now: {exc}") from exc
    if kind in ("markdown", "html"):
        render = safe.markdown if kind == "markdown" else safe.block_markdown  # a page's prose, as written
        rendered = render(_mark(text, chunk.text, quote, chunk.start - offset))
    else:
        start = max(0, chunk.start - offset - TEXT_WINDOW // 2)
        body = text[start : chunk.end - offset + TEXT_WINDOW // 2]
        marked = _mark(body, chunk.text, quote, chunk.start - offset - start)
        rendered = "".join(f"<p>{safe.text(p)}</p>" for p in marked.split("\n\n") if p.strip())
    marks = rendered.replace(_START, "<mark>").replace(_END, "</mark>")
    return TextPreview(safe.sanitise(marks), chunk.source, chunk.heading)  # again: balances the marks


def _section_of(sections: list[Section], chunk: Chunk) -> tuple[str, int]:
    for section in sections:  # slides all start at offset 0: the slide number tells them apart
        if section.page == chunk.page and section.offset <= chunk.start < section.offset + len(section.text):
            return section.text, section.offset
    raise SourceUnavailable(f"{chunk.source} changed since it was ingested: re-ingest it to open this passage.")


def _mark(body: str, passage: str, quote: str | None, at: int) -> str:
    """`body` with the quote (searched inside the passage first) or the passage wrapped in marks."""
    start = body.find(passage, max(0, at - 50)) if passage else -1
    span = (start, start + len(passage)) if start >= 0 else None
    if quote and (found := _quoted(quote).search(body, span[0] if span else 0)):
        span = found.span()
    if span is None:
        return body
    lines = body[span[0] : span[1]].split("\n")
    return body[: span[0]] + "\n".join(_mark_line(line) for line in lines) + body[span[1] :]


def _quoted(quote: str) -> re.Pattern[str]:
    """The quote as the file may hold it: the sentence as split runs on one line without its
    emphasis and code marks ("Traffic: questions…"), the file may wrap it anywhere and mark
    any of it ("- **Traffic**: questions…"). Marks next to it are taken in, so the emphasis
    is marked whole."""
    words = [_INLINE.join(map(re.escape, word)) for word in quote.split()]
    return re.compile(_INLINE + rf"{_INLINE}\s+{_INLINE}".join(words) + _INLINE)


def _mark_line(line: str) -> str:
    """Marks inside one line, after its block syntax (list, quote), so a mark never spans two
    blocks; headings stay unmarked (a chunk starts with its section's heading). A table row
    is marked cell by cell and its delimiter row not at all: a mark across the pipes, or in
    "|---|", turned the whole table into a paragraph of pipes."""
    if TABLE_ROW.match(line):
        if TABLE_RULE.match(line):
            return line
        cells = CELL_BREAK.split(line)  # the text before the first pipe and after the last stays
        return "|".join(c if i in (0, len(cells) - 1) or not c.strip() else f"{_START}{c}{_END}"
                        for i, c in enumerate(cells))
    prefix = _BLOCK_PREFIX.match(line)
    cut = prefix.end() if prefix else 0
    rest = line[cut:]
    if "#" in line[:cut] or not rest.strip():
        return line
    return line[:cut] + _START + rest + _END


def _normal(text: str) -> tuple[str, list[int]]:
    """Letters and digits only, case-folded, with each kept character's index: PDF text and
    the extracted passage differ in line breaks, hyphenation spaces and punctuation."""
    kept, index = [], []
    for i, char in enumerate(text):
        for c in unicodedata.normalize("NFKC", char).casefold():
            if c.isalnum():
                kept.append(c)
                index.append(i)
    return "".join(kept), index


def _find_boxes(page: pdfium.PdfPage, targets: list[str], scale: float) -> list[tuple[float, float, float, float]]:
    """Image-space boxes of the first target found on the page, whole or in pieces of a few words."""
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        chars = "".join(chr(pdfium.raw.FPDFText_GetUnicode(textpage.raw, i) or 32) for i in range(count))
        haystack, index = _normal(chars)
        for target in targets:
            hits = _occurrences(haystack, target)
            if hits:
                _, height = page.get_size()
                char_ids = sorted({index[i] for a, b in hits for i in range(a, b)})
                return _line_boxes([textpage.get_charbox(i) for i in char_ids], height, scale)
        return []
    finally:
        textpage.close()


def _occurrences(haystack: str, target: str) -> list[tuple[int, int]]:
    whole, _ = _normal(target)
    if not whole:
        return []
    at = haystack.find(whole)
    if at >= 0:
        return [(at, at + len(whole))]
    words = target.split()
    pieces = [" ".join(words[i : i + FRAGMENT_WORDS]) for i in range(0, len(words), FRAGMENT_WORDS)]
    spans = []
    for piece in pieces:
        needle, _ = _normal(piece)
        at = haystack.find(needle) if len(needle) >= 8 else -1
        if at >= 0:
            spans.append((at, at + len(needle)))
    return spans if len(spans) * 2 >= len(pieces) else []  # half the pieces, or it is not this text


def _line_boxes(
    charboxes: list[tuple[float, float, float, float]], page_height: float, scale: float
) -> list[tuple[float, float, float, float]]:
    """Character boxes (PDF points, origin bottom-left) merged into one box per text line,
    in image pixels (origin top-left)."""
    lines: list[list[float]] = []
    for left, bottom, right, top in charboxes:
        if right <= left:
            continue
        line = next((b for b in lines if abs(b[1] - bottom) < (top - bottom) * 0.6), None)
        if line is None:
            lines.append([left, bottom, right, top])
        else:
            line[0], line[2], line[3] = min(line[0], left), max(line[2], right), max(line[3], top)
    return [
        ((lf * scale) - PAD, (page_height - tp) * scale - PAD, rt * scale + PAD, (page_height - bt) * scale + PAD)
        for lf, bt, rt, tp in lines
    ]


def _evict(folder: Path, keep: int) -> None:
    """The cache stays at `keep` files: the least recently written go first."""
    files = sorted(folder.glob("*.png"), key=lambda f: f.stat().st_mtime)
    for old in files[: max(0, len(files) - keep)]:
        old.unlink(missing_ok=True)


def _draw(base: Path, boxes: list[tuple[float, float, float, float]], out: Path) -> None:
    with Image.open(base) as page:
        image = page.convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for box in boxes:
        draw.rectangle(box, fill=HIGHLIGHT)
    Image.alpha_composite(image, layer).convert("RGB").save(out, optimize=True)
