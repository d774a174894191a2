"""Build the sample corpus's PDFs from their Markdown-like sources in scripts/corpus_src/.

The PDFs are generated rather than hand-made so that every page's text is known: the
evaluation test set names pages, and a page label is only trustworthy if page breaks are
explicit (a `<!-- page -->` line) and never left to automatic flow. A source page that
overflows is an error, not a silent extra page. Output is byte-for-byte reproducible
(fixed creation date, no wall-clock metadata), so the committed PDFs can be checked
against a fresh build.

Source format: a first line `# Title`; then `##`/`###` headings, paragraphs, `- ` bullets
and `1. ` numbered items; `**bold**` and backtick markers are dropped. Text must be
Latin-1, the range fpdf2's core fonts can draw.

Usage: python scripts/build_corpus_pdfs.py [--src DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from fpdf import FPDF

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = ROOT / "scripts" / "corpus_src"
DEFAULT_OUT = ROOT / "corpus" / "pdf"
PAGE_MARKER = "<!-- page -->"
CREATION_DATE = datetime(2025, 9, 30, tzinfo=UTC)  # the corpus's "as of" month; fixed for reproducibility

BlockKind = Literal["h2", "h3", "para", "bullet", "numbered"]

_STYLE: dict[BlockKind, tuple[str, float, float, float]] = {
    # kind: (font style, size pt, line height mm, space before mm)
    "h2": ("B", 14, 7.0, 4.0),
    "h3": ("B", 12, 6.0, 3.0),
    "para": ("", 11, 5.5, 2.0),
    "bullet": ("", 11, 5.5, 1.0),
    "numbered": ("", 11, 5.5, 1.0),
}


class SourceError(ValueError):
    """A corpus source that cannot become the PDF it describes; the message names the file."""


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str
    label: str = ""  # "1." for numbered items, the bullet sign for bullets


@dataclass(frozen=True)
class SourceDoc:
    name: str
    title: str
    pages: list[list[Block]]


def _inline(text: str) -> str:
    return re.sub(r"\*\*|`", "", text)


def _blocks(lines: list[str]) -> list[Block]:
    """Group a page's lines into blocks; a blank line or a new marker ends a block."""
    blocks: list[Block] = []
    current: list[str] = []
    kind: BlockKind = "para"
    label = ""

    def flush() -> None:
        if current:
            blocks.append(Block(kind, _inline(" ".join(current)), label))
            current.clear()

    for raw in lines:
        line = raw.strip()
        numbered = re.match(r"(\d+\.)\s+(.*)", line)
        if not line:
            flush()
        elif line.startswith("### ") or line.startswith("## "):
            flush()
            level: BlockKind = "h3" if line.startswith("### ") else "h2"
            blocks.append(Block(level, _inline(line.lstrip("#").strip())))
        elif line.startswith("- "):
            flush()
            kind, label, current[:] = "bullet", "-", [line[2:]]
        elif numbered:
            flush()
            kind, label, current[:] = "numbered", numbered.group(1), [numbered.group(2)]
        else:
            if not current:
                kind, label = "para", ""
            current.append(line)
    flush()
    return blocks


def parse_source(path: Path) -> SourceDoc:
    text = path.read_text(encoding="utf-8")
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise SourceError(f"{path}: character {bad!r} is outside Latin-1 (core PDF fonts)") from exc
    first, _, body = text.partition("\n")
    if not first.startswith("# "):
        raise SourceError(f"{path}: the first line must be the title, '# Title'")
    pages = [_blocks(chunk.splitlines()) for chunk in body.split(PAGE_MARKER)]
    if any(not page for page in pages):
        raise SourceError(f"{path}: an empty page (two page markers with nothing between them)")
    return SourceDoc(name=path.stem, title=first[2:].strip(), pages=pages)


class _HandbookPDF(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.doc_title = title

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "I", 9)
        self.cell(0, 10, f"{self.doc_title} - page {self.page_no()} of {{nb}}", align="C")


def render(doc: SourceDoc) -> bytes:
    pdf = _HandbookPDF(doc.title)
    pdf.set_title(doc.title)
    pdf.set_author("gemrag sample corpus")
    pdf.set_creation_date(CREATION_DATE)
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    for number, page in enumerate(doc.pages, start=1):
        pdf.add_page()
        if number == 1:
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 9, doc.title)
        for block in page:
            _draw(pdf, block)
        if pdf.page_no() != number:
            raise SourceError(f"{doc.name}: source page {number} does not fit on one PDF page; shorten it")
    return bytes(pdf.output())


def _draw(pdf: FPDF, block: Block) -> None:
    style, size, height, before = _STYLE[block.kind]
    pdf.ln(before)
    pdf.set_font("Helvetica", style, size)
    if block.label:
        pdf.cell(6.0, height, block.label)  # a hanging indent: wrapped lines align after the label
    pdf.multi_cell(0, height, block.text)


def build(src_dir: Path, out_dir: Path) -> list[Path]:
    sources = sorted(src_dir.glob("*.md"))
    if not sources:
        raise SourceError(f"{src_dir}: no .md sources found")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        target = out_dir / f"{source.stem}.pdf"
        target.write_bytes(render(parse_source(source)))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder of page-marked sources")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder the PDFs are written to")
    args = parser.parse_args(argv)
    try:
        written = build(args.src, args.out)
    except (SourceError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
