"""Small document folders written by tests: every supported type, multi-page PDFs, and each
kind of bad input ingest must report by name and survive.

The PDFs are generated with fpdf2 from our own text, so each page's text is known and page
numbers can be checked on the stored chunks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import EncryptionMethod

PDF_PAGES = (
    "Quotas. The free tier allows ten requests per minute for Flash. When a request is refused, "
    "the API answers with status 429 and a retry delay.",
    "Retries. Wait for the suggested delay, then retry with exponential backoff and jitter. Give "
    "up after five attempts and tell the user what happened.",
    "Costs. Embedding one million tokens costs fifteen cents at list price. Count tokens before "
    "sending a large batch so the bill holds no surprise.",
)

MARKDOWN = """# Handbook

Intro paragraph before any section. It says what the handbook covers.

## Streaming

Streaming sends partial answers as server-sent events. The client shows text as it arrives.

## Caching

### Answer cache

Answers are cached under the corpus version, so a changed corpus never serves an old answer.

### Context cache

Long shared prefixes can be cached on the server to cut input cost.
"""

TEXT = "Plain notes. The deployment runs behind a reverse proxy.\n\nLogs go to stdout as JSON lines.\n"

HTML = """<html><head><title>Runbook</title><style>body { color: red; }</style>
<script>var secret = "do not index";</script></head>
<body><h1>Runbook</h1><p>Page the on-call engineer when error rates exceed one percent.</p>
<h2>Rollback</h2><p>Roll back with one command &amp; check the dashboard.</p></body></html>
"""


def pdf_bytes(pages: tuple[str, ...] | list[str], *, password: str | None = None) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 5, text)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password,
                           encryption_method=EncryptionMethod.RC4)
    return bytes(pdf.output())


@dataclass(frozen=True)
class Block:
    """Printed text on a PDF page; with a `title`, an outline entry (bookmark) at `level`
    points to it, as TeX and Word put them at each section heading."""

    text: str
    title: str = ""
    level: int = 0


def outlined_pdf_bytes(pages: list[list[Block]], *, font_pt: float = 11, line_mm: float = 5) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=font_pt)
    for blocks in pages:
        pdf.add_page()
        for block in blocks:
            if block.title:
                pdf.start_section(block.title, level=block.level)
            pdf.multi_cell(0, line_mm, block.text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


# A manual laid out like GLPK's: section numbers printed before titles, underscores drawn
# as rules (so "glp_add_rows" prints as "glp add rows"), a parameter list running onto the
# next page and listing the next routine before its heading, a chapter heading with no body
# of its own, and page numbers above the text.
MANUAL = [
    [
        Block("1"),
        Block("1 Problem routines", title="Problem routines"),
        Block("1.1 glp add rows - add new rows\nSynopsis: int glp_add_rows(glp_prob *P, int nrs);\n"
              "Parameters: P is the problem object.", title="glp_add_rows - add new rows", level=1),
    ],
    [
        Block("2"),
        Block("nrs is the number of rows to add, at least one. See also:\n- glp del rows - delete rows."),
        Block("1.2 glp del rows - delete rows\nSynopsis: void glp_del_rows(glp_prob *P, int nrs, const int num[]);",
              title="glp_del_rows - delete rows", level=1),
        Block("Deleting rows also deletes their constraint coefficients."),
    ],
]


def tex_pdf_bytes(line: str, symbol_font: str = "ABCDEF+CMSY10", tilde_as: str | None = None) -> bytes:
    """A one-page PDF as TeX writes a syntax line: `line`'s parts in "<...>" set between an
    "h" and an "i" of `symbol_font` (cmsy10's codes for the angle brackets), a "<" alone as
    its "h" alone, the rest in a text font, whose "~" reads as `tilde_as` if given (its
    ToUnicode map: a math italic letter outside the Basic Multilingual Plane, say). Written
    by hand: fpdf2 embeds its fonts under names of its own."""

    ops: list[str] = []
    for part in re.split(r"(<[^>]*>|<)", line):
        if part == "<":  # an opening alone
            ops.append("/S 12 Tf (h) Tj")
        elif part.startswith("<"):
            ops += ["/S 12 Tf (h) Tj", f"/R 12 Tf ({part[1:-1]}) Tj", "/S 12 Tf (i) Tj"]
        elif part:
            ops.append(f"/R 12 Tf ({part}) Tj")
    stream = ("BT 72 700 Td " + " ".join(ops) + " ET").encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /R 5 0 R /S 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica%s >>" % (b" /ToUnicode 7 0 R" if tilde_as else b""),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /%s >>" % symbol_font.encode(),
    ]
    if tilde_as:
        cmap = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /T def"
                b" 1 begincodespacerange <00> <FF> endcodespacerange"
                b" 1 beginbfchar <7E> <%s> endbfchar endcmap CMapName currentdict /CMap defineresource pop end end"
                % tilde_as.encode("utf-16-be").hex().upper().encode())
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cmap), cmap))
    return pdf_file(objects)


def positioned_pdf_bytes(lines: Sequence[Sequence[tuple[str, float]]]) -> bytes:
    """A one-page PDF of `lines` as Ghostscript writes a justified groff man page: each line
    runs of text, each run placed at its own position and drawn with its own character
    spacing (points added after each glyph). A run of two letters at a wide spacing is two
    words with no space character between them (".I" of "awk. It copies"), which PDFium
    reads as one word. Courier, so that every glyph is 6 points wide at 10 points."""
    shown = []
    for n, runs in enumerate(lines):
        x = 72.0
        for text, spacing in runs:
            shown.append(f"1 0 0 1 {x:.2f} {700 - 12 * n} Tm {spacing} Tc ({text}) Tj")
            x += len(text) * 6 + (len(text) - 1) * spacing  # the next run starts at the last glyph's edge
    stream = ("BT /R 10 Tf " + " ".join(shown) + " ET").encode()
    return pdf_file([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /R 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>",
    ])


def ruled_pdf_bytes(runs: Sequence[tuple[float, str]], rules: Sequence[tuple[float, float, float, float]]) -> bytes:
    """A one-page PDF of one line of text, each run at its own x (points; baseline at y 700,
    Courier 10 pt: every glyph 6 points wide), and filled rectangles (x, y, width, height), as
    TeX draws "\\_" in a roman font: a rule about 4 points wide and 0.4 high on the baseline,
    in the gap between two runs."""
    shown = " ".join(f"1 0 0 1 {x:.2f} 700 Tm ({text}) Tj" for x, text in runs)
    drawn = " ".join(f"{x:.2f} {y:.2f} {w:.2f} {h:.2f} re f" for x, y, w, h in rules)
    stream = f"BT /R 10 Tf {shown} ET {drawn}".encode()
    return pdf_file([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /R 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>",
    ])


def pdf_file(objects: Sequence[bytes]) -> bytes:
    """A PDF of `objects` (numbered from 1, the first the catalog), with its cross-reference table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class Corpus:
    root: Path

    def path(self, source: str) -> Path:
        return self.root / source


def write_corpus(root: Path) -> Corpus:
    """One good file of each supported type (the PDF has three pages, in a subfolder) and
    one file of a type ingest does not read."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "guide.md").write_text(MARKDOWN)
    (root / "notes.txt").write_text(TEXT)
    (root / "runbook.html").write_text(HTML)
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "limits.pdf").write_bytes(pdf_bytes(PDF_PAGES))
    (root / "diagram.svg").write_text("<svg xmlns=\"http://www.w3.org/2000/svg\"/>")  # a type ingest does not read
    return Corpus(root)


BAD_INPUTS = {
    "corrupt.pdf": "not a readable PDF: failed to load document (PDFium: Data format error)",
    "zero.pdf": "not a readable PDF: the file is empty (0 bytes)",
    "encrypted.pdf": "encrypted PDF",
    "empty.pdf": "no text to index",
    "binary.txt": "binary content",
    "garbled.txt": "no text encoding fits",
    "blank.md": "no text to index",
    "torn-utf16.md": "starts as UTF-16 text but is not UTF-16",
}


def write_bad_inputs(root: Path) -> None:
    """One file per kind of bad input, named after it; `BAD_INPUTS` maps each name to the
    words its failure reason must contain. A readable cp1252 file (`latin1.txt`) is
    written too: non-UTF-8 text that can be decoded is ingested, not refused."""
    root.mkdir(parents=True, exist_ok=True)
    good = pdf_bytes(PDF_PAGES)
    (root / "corrupt.pdf").write_bytes(good[: len(good) // 3])
    (root / "zero.pdf").write_bytes(b"")
    (root / "encrypted.pdf").write_bytes(pdf_bytes(["A secret page."], password="secret"))
    (root / "empty.pdf").write_bytes(pdf_bytes(["", ""]))
    (root / "binary.txt").write_bytes(b"text at first\x00\x01\x02" + bytes(range(256)))
    rng = random.Random(7)
    (root / "garbled.txt").write_bytes(bytes(rng.randrange(1, 256) for _ in range(4000)))
    (root / "blank.md").write_text("\n\n   \n")
    (root / "torn-utf16.md").write_bytes(b"\xff\xfe\x00\x01\x02")  # a UTF-16 mark, then half a character
    (root / "latin1.txt").write_bytes(
        "Le café est très bon, à côté de la gare. Überall schön.".encode("cp1252")
    )
