"""Word and PowerPoint files through `python -m ingest`: DOCX heading styles become the
heading path, PPTX slides are numbered and cited "slide n"; a damaged file fails with the
reason and the rest is ingested."""

import pytest

from ingest.cli import main
from ingest.loaders import LoadError, load
from rag import cli as rag_cli
from rag.chain import Chain
from rag.providers.quotable import quotable_units
from rag.store import Store
from tests.fakes import media


@pytest.fixture
def office(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    media.docx(docs / "policy.docx")
    media.pptx(docs / "deck.pptx")
    return docs


def test_docx_headings_and_pptx_slides_are_kept_in_the_chunks(office, settings, offline_provider, capsys):
    assert main([str(office), "--data-dir", str(settings.data_dir), "-q"], embedder=offline_provider) == 0
    assert "│ files added │ 2 │" in " ".join(capsys.readouterr().out.split())

    chunks = list(Store(settings, offline_provider.embedding_id).chunks())
    docx = {c.heading: c for c in chunks if c.source == "policy.docx"}
    assert set(docx) == {"Travel Policy > Booking", "Travel Policy > Booking > Refunds", "Travel Policy > Expenses"}
    assert "Unused tickets are refunded" in docx["Travel Policy > Booking > Refunds"].text
    refunds = docx["Travel Policy > Booking > Refunds"].text
    assert "| Business | Over 6 hours |" in refunds  # the table, in place, as a table the answerer reads
    assert "Class: Business; Allowed: Over 6 hours" in [u.text for u in quotable_units(refunds)]
    assert all(c.page is None and c.place == "" for c in docx.values())
    slides = {c.page: c for c in chunks if c.source == "deck.pptx"}
    assert set(slides) == {1, 2, 3}
    assert slides[2].heading == "Hiring Plan" and slides[2].unit == "slide" and slides[2].place == "slide 2"
    assert "twelve engineers" in slides[2].text and "Notes: Mention the Berlin office." in slides[2].text


@pytest.mark.slow
def test_a_slide_is_cited_as_a_slide(office, settings, offline_provider):
    main([str(office), "--data-dir", str(settings.data_dir), "-q"], embedder=offline_provider)

    record = Chain(settings, offline_provider).ask("How many engineers will we hire for the platform team?")

    assert any(c.source == "deck.pptx" and c.place == "slide 2" for c in record.citations)
    assert " deck.pptx slide 2 — Hiring Plan" in rag_cli.describe(record)


def test_a_damaged_office_file_fails_with_the_reason_and_the_rest_is_ingested(
    office, settings, offline_provider, capsys
):
    (office / "broken.docx").write_bytes(b"PK\x03\x04 not a zip archive")
    (office / "broken.pptx").write_bytes(b"hello")

    assert main([str(office), "--data-dir", str(settings.data_dir), "-q"], embedder=offline_provider) == 1

    out = " ".join(capsys.readouterr().out.split())
    assert "failed broken.docx: not a readable Word document" in out
    assert "failed broken.pptx: not a readable PowerPoint file" in out
    assert {c.source for c in Store(settings, offline_provider.embedding_id).chunks()} == {"policy.docx", "deck.pptx"}


def test_an_office_file_under_another_kinds_name_says_which_it_is(office):
    """A review's repro: a presentation saved as .docx failed with "not a readable Word
    document (ValueError: file '<_io.BytesIO object at 0x7f...>' is not a Word file, content
    type is '...presentationml...')"."""
    deck, policy = (office / "deck.pptx").read_bytes(), (office / "policy.docx").read_bytes()
    with pytest.raises(LoadError, match=r"^a PowerPoint file named as a Word document: rename it \.pptx$"):
        load(deck, "docx")
    with pytest.raises(LoadError, match=r"^a Word document named as a PowerPoint file: rename it \.docx$"):
        load(policy, "pptx")
    with pytest.raises(LoadError, match=r"^not a readable Word document \((\w+): (?!.*BytesIO)"):
        load(b"PK\x03\x04 not a zip archive", "docx")


def test_body_text_that_looks_like_markdown_stays_body_text(tmp_path):
    from docx import Document

    document = Document()
    document.add_heading("Notes", level=1)
    document.add_paragraph("# not a heading, a hash tag")
    document.add_paragraph("```")
    document.add_paragraph("still the same section")
    document.save(str(tmp_path / "notes.docx"))

    (section,) = load((tmp_path / "notes.docx").read_bytes(), "docx")
    assert section.heading == "Notes" and "# not a heading" in section.text


def test_an_empty_presentation_has_no_text_to_index(tmp_path):
    from pptx import Presentation

    Presentation().save(str(tmp_path / "empty.pptx"))
    with pytest.raises(LoadError, match="no text to index"):
        load((tmp_path / "empty.pptx").read_bytes(), "pptx")


def test_a_slides_tables_and_grouped_text_boxes_are_read():
    from io import BytesIO

    from pptx import Presentation
    from pptx.util import Inches

    from ingest.loaders import load_pptx

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no placeholders
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(1), Inches(4), Inches(1)).table
    for (row, column), text in {(0, 0): "Region", (0, 1): "Growth", (1, 0): "Berlin", (1, 1): "12%"}.items():
        table.cell(row, column).text = text
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(3), Inches(3), Inches(1)).text_frame.text = "Grouped note"
    saved = BytesIO()
    deck.save(saved)
    [section] = load_pptx(saved.getvalue())
    assert "| Region | Growth |\n| --- | --- |\n| Berlin | 12% |" in section.text and "Grouped note" in section.text
    # Rows without the outer bars were quoted as one run-on line: "Region | Growth Berlin | 12%".
    assert "Region: Berlin; Growth: 12%" in [u.text for u in quotable_units(section.text)]


def test_slide_bullets_and_word_list_items_are_quoted_not_read_as_headings():
    """A bullet seldom ends in a full stop, and a short line without one reads as a heading:
    "How much is the Q3 cloud budget?" was answered with the slide's notes only."""
    from io import BytesIO

    from docx import Document
    from pptx import Presentation

    from ingest.loaders import load_docx, load_pptx

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    slide.shapes.title.text = "Budget"
    body = slide.placeholders[1].text_frame
    body.text = "The Q3 cloud budget is 48,000 USD"
    body.add_paragraph().text = "Billing moves to PostgreSQL in May"
    slide.notes_slide.notes_text_frame.text = "Budget approved by finance on July 2."
    saved = BytesIO()
    deck.save(saved)
    [section] = load_pptx(saved.getvalue())
    assert section.heading == "Budget"
    assert [u.text for u in quotable_units(section.text)] == [
        "The Q3 cloud budget is 48,000 USD", "Billing moves to PostgreSQL in May",
        "Notes: Budget approved by finance on July 2."]

    document = Document()
    document.add_heading("Plan", level=1)
    document.add_paragraph("Move billing to PostgreSQL in May", style="List Bullet")
    document.add_paragraph("Hire two engineers for the team", style="List Number")
    saved = BytesIO()
    document.save(saved)
    [section] = load_docx(saved.getvalue())
    assert [u.text for u in quotable_units(section.text)] == [
        "Move billing to PostgreSQL in May", "Hire two engineers for the team"]
