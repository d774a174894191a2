"""Small documents the image, scan and Office tests build on the spot: a PDF with a figure, a
scanned PDF (a page that is only a picture of text), PNGs, a DOCX and a PPTX."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

RED = (255, 0, 0)
SCANNED_WORDS = "INVOICE 4711 PAID IN FULL"


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def text_picture(text: str) -> Image.Image:
    """A white page-sized picture with `text` in large black letters, as a scanner makes it."""
    picture = Image.new("L", (1240, 1754), 255)  # A4 at 150 dpi
    ImageDraw.Draw(picture).text((120, 200), text, fill=0, font=ImageFont.load_default(size=64))
    return picture


def photo() -> Image.Image:
    """A picture with no writing in it: overlapping coloured discs on a sky-blue ground."""
    picture = Image.new("RGB", (800, 600), (120, 160, 200))
    draw = ImageDraw.Draw(picture)
    for i in range(40):
        x, y = (i * 97) % 700, (i * 61) % 500
        draw.ellipse([x, y, x + 40 + (i * 37) % 160, y + 40 + (i * 53) % 160],
                     fill=((i * 71) % 256, (i * 113) % 256, (i * 29) % 256))
    return picture


def pdf_with_figure(path: Path, text: str, figure: tuple[int, int] = (300, 240)) -> Path:
    """One page of `text` with a red figure of `figure` pixels and a 20 px blue icon."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    pdf.image(Image.new("RGB", figure, RED), x=20, y=60, w=80)
    pdf.image(Image.new("RGB", (20, 20), (0, 0, 255)), x=120, y=60, w=8)
    pdf.output(str(path))
    return path


def scanned_pdf(path: Path, text_page: str | None) -> Path:
    """A PDF whose last page has no text layer, only a picture of SCANNED_WORDS; with
    `text_page`, a normal page comes first."""
    from fpdf import FPDF

    pdf = FPDF()
    if text_page is not None:
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 8, text_page)
    pdf.add_page()
    pdf.image(text_picture(SCANNED_WORDS), x=0, y=0, w=210, h=297)
    pdf.output(str(path))
    return path


def docx(path: Path) -> Path:
    """Title, two levels of headings, body text and a table."""
    from docx import Document

    document = Document()
    document.add_heading("Travel Policy", level=0)  # the Title style
    document.add_heading("Booking", level=1)
    document.add_paragraph("Flights are booked through the travel desk at least two weeks ahead.")
    document.add_heading("Refunds", level=2)
    document.add_paragraph("Unused tickets are refunded within 30 days of the trip.")
    table = document.add_table(rows=2, cols=2)
    for (row, col), value in {(0, 0): "Class", (0, 1): "Allowed", (1, 0): "Business", (1, 1): "Over 6 hours"}.items():
        table.cell(row, col).text = value
    document.add_heading("Expenses", level=1)
    document.add_paragraph("Meals are reimbursed up to 60 euros per day with receipts.")
    document.save(str(path))
    return path


def pptx(path: Path) -> Path:
    """Three slides with titles and bodies; the second has speaker notes."""
    from pptx import Presentation

    deck = Presentation()
    layout = deck.slide_layouts[1]  # title and content
    for title, body in (
        ("Quarterly Review", "Revenue grew in every region this quarter."),
        ("Hiring Plan", "We will hire twelve engineers for the platform team."),
        ("Risks", "Supplier delays could slow the hardware launch."),
    ):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.slides[1].notes_slide.notes_text_frame.text = "Mention the Berlin office."
    deck.save(str(path))
    return path
