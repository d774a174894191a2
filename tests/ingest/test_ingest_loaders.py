import threading

import pytest

from ingest.loaders import PDFIUM, LoadError, decode, load, load_html, markdown_sections, pdfium_text
from tests.fakes.corpus import BAD_INPUTS, HTML, PDF_PAGES, pdf_bytes, write_bad_inputs


def test_pdf_keeps_one_section_per_page_with_its_number():
    sections = load(pdf_bytes(PDF_PAGES), "pdf")
    assert [s.page for s in sections] == [1, 2, 3]
    assert "exponential backoff" in sections[1].text and "backoff" not in sections[0].text


def test_pdf_pages_without_text_are_left_out_but_numbering_holds():
    sections = load(pdf_bytes(["first page text", "", "third page text"]), "pdf")
    assert [(s.page, s.text.strip()) for s in sections] == [(1, "first page text"), (3, "third page text")]


def test_pdf_text_is_read_under_the_process_wide_pdfium_lock():
    """PDFium is not thread-safe: ingest's reader must wait while the UI renders a page
    (which holds the same lock), and go on once it is free."""
    done: list[list[str]] = []
    reader = threading.Thread(target=lambda: done.append([s.text for s in load(pdf_bytes(PDF_PAGES), "pdf")]))
    with PDFIUM:
        reader.start()
        reader.join(0.5)
        assert not done, "the PDF was read while another thread held PDFium"
    reader.join(10)
    assert len(done[0]) == 3 and "exponential backoff" in done[0][1]


def test_pdfium_marks_are_read_as_printed_hyphens_or_dropped():
    """PDFium writes U+FFFE for a word hyphenated at a line end and for a glyph it cannot map."""
    assert pdfium_text("optional con\ufffefiguration file\r\nnext") == "optional con-\nfiguration file\nnext"
    assert pdfium_text("x \ufffe y\ufffe") == "x  y"


def test_markdown_sections_carry_heading_paths_and_offsets():
    text = "intro line\n# A\n## B\nbody b\n```\n# not a heading\n```\n## C\nbody c\n# D\nbody d\n"
    sections = markdown_sections(text)
    assert [s.heading for s in sections] == ["", "A > B", "A > C", "D"]
    assert all(text[s.offset : s.offset + len(s.text)] == s.text for s in sections)
    # the bare "# A" joins its first subsection instead of becoming a chunk on its own
    assert sections[1].text.startswith("# A\n## B")
    assert "# not a heading" in sections[1].text


def test_html_keeps_visible_text_and_splits_at_headings():
    sections = load_html(HTML.encode())
    text = "".join(s.text for s in sections)
    assert "on-call engineer" in text and "one command & check" in text
    assert "do not index" not in text and "color: red" not in text
    assert [s.heading for s in sections] == ["Runbook", "Runbook > Rollback"]


def test_non_utf8_text_is_decoded_by_detection():
    assert decode("Le café est très bon, à côté de la gare.".encode("cp1252")).startswith("Le café est très")
    assert decode("\ufeffwith a BOM".encode()) == "with a BOM"
    assert decode("utf-16 text".encode("utf-16")) == "utf-16 text"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_is_refused_with_its_reason(tmp_path, name):
    write_bad_inputs(tmp_path)
    kind = {"pdf": "pdf", "txt": "text", "md": "markdown"}[name.rsplit(".", 1)[1]]
    with pytest.raises(LoadError, match=BAD_INPUTS[name]):
        load((tmp_path / name).read_bytes(), kind)


def test_utf16_without_a_bom_is_decoded_and_binary_is_still_refused():
    text = "Notes exported from Windows. Ünïcode too.\n"
    assert load(text.encode("utf-16-le"), "text")[0].text == text
    assert load(text.encode("utf-16-be"), "markdown")[0].text == text
    page = "<html><body><h1>Backup</h1><p>Runs nightly at two.</p></body></html>"
    assert "Runs nightly at two." in load(page.encode("utf-16-le"), "html")[0].text
    with pytest.raises(LoadError, match="binary content"):
        load(b"\x00\x01\x02\x03" * 100, "text")
