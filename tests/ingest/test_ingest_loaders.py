import re
import threading
from io import BytesIO

import pytest

from ingest.loaders import (
    PDFIUM,
    Bookmark,
    LoadError,
    Unreadable,
    _pdf_pages,
    decode,
    heading_starts,
    load,
    load_html,
    markdown_sections,
    numbered_starts,
    page_texts,
    pdfium_text,
    read_image,
    without_running_lines,
)
from rag.providers.quotable import quotable_units
from tests.fakes.corpus import (
    BAD_INPUTS,
    HTML,
    MANUAL,
    PDF_PAGES,
    Block,
    outlined_pdf_bytes,
    pdf_bytes,
    positioned_pdf_bytes,
    ruled_pdf_bytes,
    tex_pdf_bytes,
    write_bad_inputs,
)


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


def test_a_running_header_and_page_number_are_read_on_no_page():
    body = ["The default line cap may be changed.", "Pens are used to draw.", "Labels are typeset by TeX.",
            "Paths are cubic splines."]
    pages = [f"Chapter 6: Programming {n}\n{text}\n{n}" for n, text in enumerate(body, start=37)]
    texts = [s.text for s in load(pdf_bytes(pages), "pdf")]
    for text, sentence in zip(texts, body, strict=True):  # where it first appears too: it ran into the sentence
        assert text.split() == sentence.split()  # nothing runs into the page's first or last sentence


def test_a_two_sided_books_left_and_right_headers_are_dropped_both():
    """A Texinfo or LaTeX book printed two-sided heads its even pages with one line and its
    odd pages with another: on every other page, neither was found running, and 1,012 of the
    Octave manual's chunks carried one into their first sentence."""
    body = [f"Sentence {word} of the page." for word in ("one", "two", "three", "four", "five", "six", "seven")]
    pages = [f"{n} GNU Octave (version 7.3.0)\n{text}" if n % 2 == 0 else f"Chapter 35: Integration {n}\n{text}"
             for n, text in enumerate(body, start=706)]
    assert without_running_lines(pages) == body
    skipping = ["User guide 2\nfirst", "User guide 3\nsecond", "User guide 4\nthird", "Figure 7: a plot",
                "User guide 6\nfourth"]
    assert without_running_lines(skipping) == ["first", "second", "third", "Figure 7: a plot", "fourth"]  # one without
    # One word, a version and the page number: gnuplot's manual kept them on 283 of its 311 pages.
    versioned = [f"gnuplot 5.4 {n}\n{text}" if n % 2 else f"{n} gnuplot 5.4\n{text}"
                 for n, text in enumerate(body, start=101)]
    assert without_running_lines(versioned) == body
    labels = [f"Step 2.{n}\n{text}" for n, text in enumerate(body[:3], start=1)]
    assert without_running_lines(labels) == labels  # a label's own numbers, no version: content


def test_a_chapters_first_page_loses_the_page_number_its_neighbours_count():
    """A Texinfo chapter's first page prints no header, only its number atop it, which ran
    into its title and first sentence ("54 19 Reentrant C Scanners flex has the ability",
    flex's manual): a page number alone is dropped where the page before prints one less in
    its running line, or the page after one more. Another number alone stays."""
    pages = ["Chapter 18: C++ Scanners 51\nThe zeroth.", "Chapter 18: C++ Scanners 52\nThe first.",
             "Chapter 18: C++ Scanners 53\nThe second.",
             "54\n19 Reentrant C Scanners\nflex has the ability.", "Chapter 19: Reentrant C Scanners 55\nThe fourth.",
             "Chapter 19: Reentrant C Scanners 56\nThe fifth.", "Chapter 19: Reentrant C Scanners 57\nThe sixth."]
    assert without_running_lines(pages)[2:5] == ["The second.", "19 Reentrant C Scanners\nflex has the ability.",
                                                  "The fourth."]
    other = [*pages[:3], "99\nA table's last row.", *pages[4:]]
    assert without_running_lines(other)[3] == "99\nA table's last row."


def test_a_picture_page_left_without_its_page_number_is_no_scan():
    """Its page number goes with the rest of the run, and the page then looked like a scan:
    offline "page 1 skipped: no text layer", with a key a paid transcription."""
    from fpdf import FPDF

    from ingest.loaders import read_pdf
    from tests.fakes import media

    pdf = FPDF()
    pdf.set_auto_page_break(False)  # the page number at the page's foot
    pdf.set_font("helvetica", size=11)
    for n in range(1, 5):
        pdf.add_page()
        if n == 1:
            pdf.image(media.text_picture("A diagram"), x=10, y=20, w=100, h=60)
        else:
            pdf.multi_cell(0, 5, ("Install it first.", "Then run it.", "Read the logs.")[n - 2])
        pdf.set_y(-20)
        pdf.cell(0, 5, str(n))
    reading = read_pdf(bytes(pdf.output()), None)
    assert reading.note == "" and [s.page for s in reading.sections] == [2, 3, 4]


def test_a_line_repeated_on_pages_apart_or_on_two_pages_only_is_content():
    pages = ["Example 1\nfirst", "Example 2\nsecond", "Comments\nthird", "Example 1\nfourth", "Example 2\nfifth",
             "Draft\nsixth", "Draft\nseventh"]
    assert without_running_lines(pages) == pages
    totals = [f"Total {n * 1234}\nrow {word}" for n, word in enumerate(("one", "two", "three"), start=1)]
    assert without_running_lines(totals) == totals  # figures that change are no page number
    questions = [f"Question {n}\n{asked}" for n, asked in enumerate(("Why?", "How so?", "Where?"), start=1)]
    assert without_running_lines(questions) == questions  # a one-word label counting up is no page header
    fractions = ["Intro text here.\n12", "More text here.\n3 / 7", "Last text here.\n14"]
    assert without_running_lines(fractions) == fractions  # page numbers of other shapes: no run, no crash
    footers = ["a\n1", "b\n2", "3", "c\n4"]  # a page of one line is its own top and bottom
    assert without_running_lines(footers) == ["a", "b", "", "c"]
    slides = ["Results\nRevenue grew 10%.", "Results\nCosts fell 4%.", "Results\nMargins rose to 21%."]
    assert without_running_lines(slides) == [slides[0], "Costs fell 4%.", "Margins rose to 21%."]  # no page number
    examples = ["Example 1\nglp_simplex(P);", "It returns 0.", "Example 1\nglp_intopt(P);", "It returns 1.",
                "Example 1\nglp_exact(P);"]
    assert without_running_lines(examples) == examples  # the same line every other page is content
    report = [f"Quarterly report - page {n} of 3\nrow {word}" for n, word in enumerate(("one", "two", "three"), 1)]
    assert without_running_lines(report) == ["row one", "row two", "row three"]


def test_pdfium_marks_are_read_as_whole_words_or_dropped():
    """PDFium writes U+FFFE for a word hyphenated at a line end and for a glyph it cannot map;
    the word is written whole on the first line, the line end moved after it."""
    assert pdfium_text("optional con\ufffefiguration file\r\nnext") == "optional configuration\nfile\nnext"
    assert pdfium_text("end con\ufffefiguration.\r\nnext") == "end configuration.\nnext"  # no blank line
    assert pdfium_text("last portabil\ufffeity") == "last portability"
    assert pdfium_text("x \ufffe y\ufffe") == "x  y"


def test_control_characters_a_pdfs_fonts_map_glyphs_to_are_dropped():
    """Seen in the Asymptote and GLPK manuals: bullets, arrows and footnote marks as C0 and
    C1 controls, which a terminal quote printed as "\\x88"."""
    assert pdfium_text("Germany\x84\r\n\x88 The pens:\r\n1 /2\r\n\x0f\x0f\r\nCopyright \rc 2004") == (
        "Germany\n The pens:\n1 /2\n\nCopyright c 2004")
    assert pdfium_text("page one\x0cpage two\x0bline") == "page one\npage two\nline"


@pytest.mark.parametrize("symbol_font", ["ABCDEF+CMSY10", "LMMathSymbols10-Regular"])
def test_a_tex_placeholders_brackets_are_read_as_brackets_not_as_h_and_i(symbol_font):
    """TeX's symbol fonts hold the angle brackets at the codes of "h" and "i": the listings
    and etoolbox manuals read "linewidth=hdimensioni" and "\\csdef{hcsnamei}"."""
    line = "linewidth=<dimension> sets the base line width; hi, this is high"
    (section,) = load(tex_pdf_bytes(line, symbol_font), "pdf")
    assert section.text == "linewidth=\u27e8dimension\u27e9 sets the base line width; hi, this is high"
    # the same letters in a text font are letters
    (plain,) = load(tex_pdf_bytes(line, "Times-Roman"), "pdf")
    assert plain.text == "linewidth=hdimensioni sets the base line width; hi, this is high"
    # an opening whose closing never comes in the symbol font: the text font's "i" is no bracket
    (unclosed,) = load(tex_pdf_bytes("a <width is in points i guess", symbol_font), "pdf")
    assert unclosed.text == "a hwidth is in points i guess"


def test_a_tex_placeholder_after_a_character_outside_the_bmp_is_still_read():
    """PDFium counts a character outside the Basic Multilingual Plane (TeX's math italic 𝑥)
    as its two UTF-16 halves, so every index after it is one further on the page than in
    the text: the page's brackets were left as "hdimensioni"."""
    (section,) = load(tex_pdf_bytes("for ~ and ~: linewidth=<dimension>, hi", tilde_as="\U0001d465"), "pdf")
    assert section.text == "for \U0001d465 and \U0001d465: linewidth=\u27e8dimension\u27e9, hi"


GROFF_LINES = [
    [("gvpr is a graph stream editor inspired by awk", 0), (".I", 5), ("t copies input graphs to its", 0)],
    [("output, possibly transforming their structure, creating ne", 0), ("wg", 4), ("raphs", 0)],
    [("or printing arbitrary information. The graph model is the one", 0)],
    [("provided by libcgraph. In particular", 0), (",a", 3), ("n undeclared variable is an error.", 0)],
]


def test_words_a_pdf_spaces_by_position_only_are_read_apart():
    """Graphviz's man pages (groff, then Ghostscript) draw some spaces as character spacing
    inside one run of text, which PDFium reads as no space: "awk.Itcopies input graphs",
    "anundeclared variable". Such a document is read by the characters' positions."""
    (section,) = load(positioned_pdf_bytes(GROFF_LINES), "pdf")
    assert section.text == (
        "gvpr is a graph stream editor inspired by awk. It copies input graphs to its\n"
        "output, possibly transforming their structure, creating new graphs\n"
        "or printing arbitrary information. The graph model is the one\n"
        "provided by libcgraph. In particular, an undeclared variable is an error.")


def test_letter_spaced_text_in_a_pdf_read_by_position_keeps_its_words_whole():
    """A heading tracked by 0.3 em has a gap as wide between each of its letters: it was read
    "A N N U A L R E P O R T" once its document was read by position (review). A space is a
    gap wider than the ones beside it."""
    (section,) = load(positioned_pdf_bytes([[("ANNUAL REPORT", 3)], *GROFF_LINES]), "pdf")
    assert section.text.startswith("ANNUAL REPORT\ngvpr is a graph stream editor inspired by awk. It copies")


def test_underscores_tex_draws_as_rules_are_read_back():
    """TeX draws "\\_" in a roman font as a short rule on the baseline, and PDFium read GLPK's
    glp_create_prob as "glp create prob" (937 times in its manual), whether or not it put a
    space in the gap: the rule is read as the "_" it draws."""
    spaced = [(72, "glp"), (94.6, "create"), (135.2, "prob - create a problem object")]
    rules = [(90.3, 699.8, 4, 0.6), (130.9, 699.8, 4, 0.6)]  # as TeX's: 0.02 em under the baseline, 0.04 over it
    assert load(ruled_pdf_bytes(spaced, []), "pdf")[0].text == "glp create prob - create a problem object"
    assert load(ruled_pdf_bytes(spaced, rules), "pdf")[0].text == "glp_create_prob - create a problem object"
    tight = [(72, "YY"), (88, "BREAK is a macro")]
    assert load(ruled_pdf_bytes(tight, [(84.2, 699.8, 3.6, 0.6)]), "pdf")[0].text == "YY_BREAK is a macro"


def test_an_underscore_and_a_space_drawn_by_position_are_put_in_one_pass():
    """In a document read by position, a rule's gap is no space: the underscore goes there,
    in place of PDFium's space when it put one, and the other gaps get theirs."""
    from ingest.loaders import _with_drawn

    assert _with_drawn("glp createprob", {2, 9}, [9]) == "glp_create_prob"
    assert _with_drawn("awk.Itcopies", set(), [3, 5]) == "awk. It copies"
    assert _with_drawn("as read", set(), []) == "as read"


def test_rules_that_are_no_underscore_leave_the_text_as_read():
    """An underline (under the baseline, under a word or a gap), a dash at mid-height, a
    table's rule and a rule after a line's last word are not underscores."""
    runs = [(72, "an"), (90, "underlined"), (156, "word"), (186, "a"), (196, "b")]
    rules = [(90, 698.5, 60, 0.5), (150.3, 698.6, 5.4, 0.5), (192.3, 703, 3.4, 0.4), (60, 712, 400, 0.4),
             (202.3, 699.8, 4, 0.6)]
    assert load(ruled_pdf_bytes(runs, rules), "pdf")[0].text == "an underlined word a b"


def test_a_pdf_whose_spaces_are_characters_is_not_read_by_position():
    """Placing each character costs 5 ms a page: only a document whose first page with text
    shows a space drawn by position is read that way."""
    import pypdfium2 as pdfium

    from ingest.loaders import _spaced_by_position

    plain = [[("the text of an ordinary page, its spaces written as characters", 0)]] * 5
    assert not _spaced_by_position(pdfium.PdfDocument(positioned_pdf_bytes(plain)))
    assert _spaced_by_position(pdfium.PdfDocument(positioned_pdf_bytes(GROFF_LINES)))
    assert not _spaced_by_position(pdfium.PdfDocument(positioned_pdf_bytes(GROFF_LINES[:1])))  # a title's few words


def test_a_page_whose_text_does_not_line_up_with_pdfiums_characters_keeps_its_letters():
    """Positions are looked up in PDFium's fonts: a text of another length than the page's
    characters would have its brackets put at the wrong letters, so it is left as read."""
    import pypdfium2 as pdfium

    from ingest.loaders import _tex_brackets

    page = pdfium.PdfDocument(tex_pdf_bytes("linewidth=<dimension>, hi"))[0]
    text = page.get_textpage().get_text_range()
    assert _tex_brackets(page.get_textpage(), text) == "linewidth=\u27e8dimension\u27e9, hi"
    assert _tex_brackets(page.get_textpage(), text + "!") == text + "!"


def test_an_html_tables_header_is_its_row_of_th_cells_and_a_table_without_one_has_none():
    """The Python docs' summary tables have no header row: "pstdev() | Population standard
    deviation of data." was read as the header of "stdev() | Sample ...", and a reply quoted
    "pstdev(): stdev(); Population standard deviation of data.: Sample standard deviation of
    data." (a development set's py61)."""
    from rag.providers.quotable import split_units

    page = (b"<html><body><h1>statistics</h1><p>Measures of spread of the data below.</p><table>"
            b"<tr><td>pstdev()</td><td>Population standard deviation of data.</td></tr>"
            b"<tr><td>stdev()</td><td>Sample standard deviation of data.</td></tr></table>"
            b"<p>Conversions made by the decoder.</p><table><tr><th>JSON</th><th>Python</th></tr>"
            b"<tr><td>object</td><td>dict</td></tr></table></body></html>")
    units = split_units(" ".join(section.text for section in load(page, "html")))
    assert "pstdev(); Population standard deviation of data." in units
    assert "stdev(); Sample standard deviation of data." in units and "JSON: object; Python: dict" in units


@pytest.mark.parametrize(("table", "units"), [
    # a header spanning two columns names both (it named one, and the cell after it the wrong name)
    ("<tr><th colspan=2>Name</th><th>Value</th></tr><tr><td>a</td><td>b</td><td>c</td></tr>",
     ["Name: a; Name: b; Value: c"]),
    # a second row of <th> cells: one rule, under the last (a rule after each made a row of "---")
    ("<tr><th>Op</th><th>Result</th></tr><tr><th>int</th><th>float</th></tr><tr><td>x+y</td><td>sum</td></tr>",
     ["Op; Result", "int; float", "x+y; sum"]),
    # a <th> row further down is no second header
    ("<thead><tr><th>Op</th><th>Result</th></tr></thead><tbody><tr><td>x+y</td><td>sum</td></tr>"
     "<tr><th>Bitwise</th><th>ops</th></tr><tr><td>x^y</td><td>xor</td></tr></tbody>",
     ["Op: x+y; Result: sum", "Op: Bitwise; Result: ops", "Op: x^y; Result: xor"]),
    # a spacer row of empty cells is no rule, and nothing to quote
    ("<tr><td>pstdev()</td><td>Population</td></tr><tr><td></td><td></td></tr><tr><td>stdev()</td><td>Sample</td></tr>",
     ["pstdev(); Population", "stdev(); Sample"]),
])
def test_an_html_tables_spans_extra_header_rows_and_spacer_rows_label_no_cell_wrongly(table, units):
    """The review's repros: each labelled cells with another column's or a section's name."""
    from rag.providers.quotable import split_units

    page = f"<html><body><p>The table below lists them.</p><table>{table}</table></body></html>".encode()
    assert split_units(" ".join(section.text for section in load(page, "html")))[1:] == units


def test_a_pdf_word_hyphenated_at_a_line_end_is_indexed_and_quoted_whole():
    """A manual typeset with hyphenation breaks words at line ends: stored as "con-" and
    "figuration", a search for "configuration" never met it, nor did a quote hold it."""
    from fpdf import FPDF

    from rag.bm25 import Terms

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    for line in ("Put your settings in an optional con-", "figuration file called config.asy, with an integer-",
                 "valued cost for the CNF-", "SAT problem."):
        pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    (section,) = load(bytes(pdf.output()), "pdf")
    assert "optional configuration" in section.text
    assert "integer-valued" in section.text and "CNF-SAT" in section.text  # compounds keep their hyphen
    assert "configur" in Terms()(section.text)  # the stem of "configuration", as a question's


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


# A generated documentation page (Sphinx's layout): navigation around a main part, a
# permalink after each heading and signature, highlighted code with a comment in it, inline
# markup inside sentences, and a table.
DOCS_PAGE = """<html><body>
<div class="related" role="navigation"><a href="index.html">index</a> | <a href="next.html">next</a></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><ul><li>copy</li></ul>
<h4>Previous topic</h4><p>types</p><div role="search"><input name="q"></div></div>
<div class="body" role="main">
<h1>copy — Shallow copies<a class="headerlink" href="#module-copy" title="Permalink">¶</a></h1>
<p>Use <code class="xref">copy.copy(x)</code> for a <em>shallow</em> copy.</p>
<pre><span class="c1"># make a copy</span>
<span class="n">b</span> <span class="o">=</span> <span class="n">copy</span>(<span class="n">a</span>)</pre>
<dl><dt>copy.deepcopy(x)<a class="headerlink" href="#copy.deepcopy">¶</a></dt><dd>Return a deep copy.</dd></dl>
<h2>Limits<a class="headerlink" href="#limits">¶</a></h2>
<table><tr><th>Type</th><th>Copied</th></tr><tr><td>file</td><td>never</td></tr>
<tr><td>set <code>a | b</code></td><td>shallow</td></tr></table>
<p># 1 is no heading either.</p><!-- # a comment stays unread -->
</div>
<div class="footer">© the authors</div>
</body></html>"""


def test_html_indexes_the_main_part_with_code_as_laid_out_and_sentences_whole():
    sections = load_html(DOCS_PAGE.encode())

    assert [s.heading for s in sections] == ["copy — Shallow copies", "copy — Shallow copies > Limits"]
    text = "".join(s.text for s in sections)
    assert "Use copy.copy(x) for a shallow copy." in text
    assert "```\n# make a copy\nb = copy(a)\n```" in text
    assert "copy.deepcopy(x)\n" in text and "¶" not in text
    # a "|" in a cell escaped; a row of <th> cells over its rule
    assert "| Type | Copied |\n| --- | --- |\n| file | never |\n| set a \\| b | shallow |" in text
    assert "\\# 1 is no heading either." in text
    assert not any(word in text for word in ("Table of Contents", "Previous topic", "index", "the authors", "comment"))


def test_html_code_keeps_its_layout_and_its_fences_and_only_real_headings_split_the_page():
    page = """<html><body><main><h1>Guide</h1>
<pre>```python
# not a heading
def f():
    return 1
```</pre>
<p><b>#</b> hello world is no heading</p><p>Add <code># noqa</code> to the line.</p>
<table><tr><td>outer<table><tr><td>inner</td></tr></table></td><td>x</td></tr></table>
</main></body></html>"""
    sections = load_html(page.encode())

    assert [s.heading for s in sections] == ["Guide"]
    text = sections[0].text
    assert "````\n```python\n# not a heading\ndef f():\n    return 1\n```\n````" in text
    assert "\\# hello world is no heading" in text and "Add # noqa to the line." in text
    assert "| outer inner | x |" in text and text.count("inner") == 1


def test_a_page_of_thousands_of_blocks_is_read_in_one_walk_not_rewritten(monkeypatch):
    """A review's repro: a page of 20,000 paragraphs took 214 s to load, one of 10,000
    nested <div>s 16 s, since a line break inserted around each block scanned the
    element's siblings (`Tag.index`) each time. The page is now walked once: no such scan
    per block, and the text is the same."""
    from bs4.element import Tag

    scans = []
    index = Tag.index
    monkeypatch.setattr(Tag, "index", lambda self, element: scans.append(1) or index(self, element))
    paragraphs = b"".join(b"<p>Paragraph %d about the lynx.</p>" % i for i in range(2000))
    rows = b"".join(b"<tr><td>%d</td><td>value <b>%d</b></td></tr>" % (i, i) for i in range(2000))
    nested = b"<div>deep " * 2000 + b"</div>" * 2000
    page = b"<html><body><h1>Lynx</h1>" + paragraphs + b"<table>" + rows + b"</table>" + nested + b"</body></html>"
    (section,) = load_html(page)
    assert len(scans) < 10
    lines = section.text.splitlines()
    assert lines[:3] == ["# Lynx", "", "Paragraph 0 about the lynx."] and "Paragraph 1999 about the lynx." in lines
    assert "| 1999 | value 1999 |" in lines
    assert lines[-2000:] == ["deep"] * 2000


def test_html_with_an_empty_main_part_is_read_whole():
    page = "<html><body><main></main><h1>Notes</h1><p>Rotate the keys monthly.</p></body></html>"
    assert "Rotate the keys monthly." in load_html(page.encode())[0].text


def test_html_without_one_main_part_keeps_the_whole_page_but_its_navigation():
    page = DOCS_PAGE.replace('role="main"', "").replace("<h1>", "<nav>site menu</nav><h1>")
    text = "".join(s.text for s in load_html(page.encode()))

    assert "Use copy.copy(x) for a shallow copy." in text and "the authors" in text
    assert "site menu" not in text and "Previous topic" not in text


def test_html_menus_marked_only_by_class_or_id_are_not_indexed():
    """SQLite's pages wrap their banner, tagline and menus in '<div class=nosearch>' and
    '<div class="menu mainmenu">': 44 of 1,029 chunks were that, on every page, taking
    places in the top 6. A class that merely contains such a word is text."""
    page = ('<html><body><div class=nosearch>Small. Fast. Reliable.</div>'
            '<div class="menu mainmenu"><ul><li>Home<li>Download</ul></div><ul id="nav-links"><li>About</ul>'
            '<h1>Write-Ahead Logging</h1><p>Choose <span class="menuselection">File > Open</span> to start.</p>'
            '<div class="admonition sidebar"><p>See the tutorial.</p></div>'  # Sphinx's aside: the page's own
            '<p>WAL is persistent.</p></body></html>')
    text = "".join(s.text for s in load_html(page.encode()))

    assert "WAL is persistent." in text and "File > Open" in text and "See the tutorial." in text
    assert [chrome for chrome in ("Small. Fast", "Home", "Download", "About") if chrome in text] == []


def test_a_docbook_table_of_contents_is_not_indexed_but_a_headings_backlink_is_text():
    """Valgrind's manual opens each chapter with '<div class="toc">': its entries ("7.2.
    Detected errors: Data Races") were quoted as answers (new-user walkthrough). Sphinx's FAQ
    links each heading back to its contents with class "toc-backref": that heading stays."""
    page = ('<html><body><h2>7. Helgrind</h2><div class="toc"><p>Table of Contents</p><dl><dt>'
            '<a href="#a">7.2. Detected errors: Data Races</a></dt></dl></div><p>Helgrind detects races.</p>'
            '<h3><a class="toc-backref" href="#id1">Why are threads hard?</a></h3><p>Timing.</p></body></html>')
    sections = load_html(page.encode())
    text = "".join(s.text for s in sections)
    assert "Detected errors" not in text and "Table of Contents" not in text and "Helgrind detects races." in text
    assert sections[-1].heading == "7. Helgrind > Why are threads hard?"


def test_a_definition_lists_term_and_its_description_are_one_sentence():
    """Valgrind's options are a <dl>: "-q, --quiet" (under 20 characters, so no unit of its
    own) was dropped and "Run silently, ..." quoted without naming the option (new-user
    walkthrough). An alias term joins the next; a description opening with code keeps it a block."""
    page = ('<html><body><h2>Basic Options</h2><dl>'
            '<dt><code>-q</code>, <code>--quiet</code></dt><dd><p>Run silently, and only print error messages.</p>'
            '<p>Useful for regression tests.</p></dd>'
            '<dt><code>-h</code></dt><dt><code>--help </code></dt><dd><p>Show help for all options.</p></dd>'
            '<dt>run_tool(name)</dt><dd><pre>run_tool("memcheck")</pre><p>Runs the tool.</p></dd>'
            '</dl><p>Last.</p></body></html>')
    text = load_html(page.encode())[0].text
    assert "-q, --quiet\nRun silently, and only print error messages.\n\nUseful for regression tests." in text
    assert "-h\n--help\nShow help for all options." in text
    assert "run_tool(name)\n\n```\nrun_tool(\"memcheck\")" in text
    assert "\ue001" not in text
    git = ('<h1>T</h1><dl>\n<dt class="hdlist1">\nsubmodule.&lt;name&gt;.shallow\n</dt>\n<dd>\n<p>\n'
           'When set to true, a clone is shallow.\n</p>\n</dd>\n</dl>')  # git's pages break lines inside the tags
    assert load_html(git.encode())[0].text.endswith("submodule.<name>.shallow\nWhen set to true, a clone is shallow.")
    # Not a description opening with a list or terms of its own, nor after an empty one (a review's repros).
    apart = ("<dl><dt>Supported formats</dt><dd><ul><li>Markdown files</li></ul></dd>"
             "<dt>--format</dt><dd><dl><dt>json</dt><dd>One object per line.</dd></dl></dd>"
             "<dt>Empty</dt><dd></dd><dt>Port</dt><dd>8080. The default port.</dd></dl>")
    assert load_html(apart.encode())[0].text == (
        "Supported formats\n\nMarkdown files\n\n--format\n\njson\nOne object per line.\n\n"
        "Empty\n\nPort\n8080. The default port.")
    units = [q.text for q in quotable_units(text)]
    assert "-q, --quiet Run silently, and only print error messages." in units
    assert "-h --help Show help for all options." in units


def test_an_html_page_titled_only_in_its_head_has_its_title_over_every_section():
    """SQLite's WAL page shows its title in a styled <div> and numbers its headings "1.
    Overview": no heading path said "Write-Ahead Logging". A title a heading holds, or its
    site's or manual's name after a dash or in parentheses, adds nothing."""
    page = ("<html><head><title>Write-Ahead Logging (SQLite)</title></head><body><div>Write-Ahead Logging</div>"
            "<h1>1. Overview</h1><p>WAL is faster.</p><h2>1.1. Checkpoints</h2><p>They run at 1000 pages.</p>"
            "</body></html>")
    assert [s.heading for s in load_html(page.encode())] == [
        "Write-Ahead Logging", "Write-Ahead Logging > 1. Overview",
        "Write-Ahead Logging > 1. Overview > 1.1. Checkpoints"]
    named = ("<html><head><title>json — JSON encoder and decoder — Python 3.11 documentation</title></head><body>"
             "<h1>json — JSON  encoder and decoder</h1><p>Use json.dumps to encode.</p></body></html>")
    assert [s.heading for s in load_html(named.encode())] == ["json — JSON  encoder and decoder"]


def test_an_html_power_keeps_its_caret_and_a_footnote_mark_stays_as_it_was():
    page = (b"<p>Rows: at most 2<sup><small>64</small></sup>, strings 2<small><sup>31</sup></small>-1 bytes;"
            b" a note<sup>1</sup>.</p>")
    assert load_html(page)[0].text == "Rows: at most 2^64, strings 2^31-1 bytes; a note1."


def test_non_utf8_text_is_decoded_by_detection():
    assert decode("Le café est très bon, à côté de la gare.".encode("cp1252")).startswith("Le café est très")
    assert decode("\ufeffwith a BOM".encode()) == "with a BOM"
    assert decode("utf-16 text".encode("utf-16")) == "utf-16 text"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_is_refused_with_its_reason(tmp_path, name):
    write_bad_inputs(tmp_path)
    kind = {"pdf": "pdf", "txt": "text", "md": "markdown"}[name.rsplit(".", 1)[1]]
    with pytest.raises(LoadError, match=re.escape(BAD_INPUTS[name])):
        load((tmp_path / name).read_bytes(), kind)


def test_utf16_without_a_bom_is_decoded_and_binary_is_still_refused():
    text = "Notes exported from Windows. Ünïcode too.\n"
    assert load(text.encode("utf-16-le"), "text")[0].text == text
    assert load(text.encode("utf-16-be"), "markdown")[0].text == text
    page = "<html><body><h1>Backup</h1><p>Runs nightly at two.</p></body></html>"
    assert "Runs nightly at two." in load(page.encode("utf-16-le"), "html")[0].text
    with pytest.raises(LoadError, match="binary content"):
        load(b"\x00\x01\x02\x03" * 100, "text")


def test_pdf_outline_cuts_pages_into_sections_named_by_their_headings():
    sections = load(outlined_pdf_bytes(MANUAL), "pdf")

    add, carried, delete = sections
    assert (add.page, add.heading) == (1, "Problem routines > glp_add_rows - add new rows") == (1, add.context)
    assert add.text.startswith("1\n1 Problem routines\n1.1 glp add rows")  # page number and chapter line join it
    assert (carried.page, carried.heading) == (2, add.heading)  # the page break does not lose the routine
    assert carried.text.startswith("2\nnrs is the number of rows") and "\n- glp del rows" in carried.text
    assert (delete.page, delete.heading) == (2, "Problem routines > glp_del_rows - delete rows")
    assert delete.text.startswith("1.2 glp del rows") and "constraint coefficients" in delete.text


def test_pdf_sections_cover_their_page_text_at_their_offsets():
    data = outlined_pdf_bytes(MANUAL)
    printed = [text for text, _ in _pdf_pages(data)[0]]
    sections = load(data, "pdf")

    assert page_texts(sections) == {1: printed[0], 2: printed[1]}
    for section in sections:
        assert printed[section.page - 1][section.offset : section.offset + len(section.text)] == section.text


def test_an_outline_title_the_page_does_not_print_still_names_the_pages_after():
    pages = [
        [Block("Intro text about the solver.", title="Overview")],
        [Block("Text under a heading the outline spells differently.", title="Appendix: Something else")],
        [Block("A later page with no heading.")],
    ]
    sections = load(outlined_pdf_bytes(pages), "pdf")

    assert [(s.page, s.heading) for s in sections] == [
        (1, "Overview"), (2, "Appendix: Something else"), (3, "Appendix: Something else"),
    ]


def test_a_page_is_cut_at_its_first_64_bookmarks_only_and_its_last_names_the_next_page():
    crowded = [Block(f"{n} Topic {n}\nText about topic {n}.", title=f"Topic {n}") for n in range(80)]
    data = outlined_pdf_bytes([crowded, [Block("The page after.")]], font_pt=3, line_mm=1.4)
    *first, after = load(data, "pdf")

    assert {s.page for s in first} == {1} and len(first) == 64  # 80 printed, 64 looked for
    assert first[0].heading == "Topic 0"
    assert first[-1].text.startswith("63 Topic 63") and first[-1].heading == "Topic 63"
    assert (after.page, after.heading) == (2, "Topic 79")


def test_headings_are_found_in_page_order_whatever_the_outline_order_and_twice_when_printed_twice():
    page = "1 Setup\nInstall it.\n1.1 Examples\nsetup example\n2 Tuning\nTune it.\n2.1 Examples\ntuning example\n"
    marks = [Bookmark("Tuning", "Tuning"), Bookmark("Setup", "Setup"), Bookmark("Examples", "Setup > Examples"),
             Bookmark("Examples", "Tuning > Examples")]

    starts = heading_starts(page, marks)

    assert [(page[offset:].split("\n")[0], path) for offset, path in starts] == [
        ("1 Setup", "Setup"), ("1.1 Examples", "Setup > Examples"), ("2 Tuning", "Tuning"),
        ("2.1 Examples", "Tuning > Examples")]


def test_a_bookmark_the_page_does_not_print_never_renames_a_heading_found_above_it():
    page = "1 Setup\nInstall it.\nThen run it.\n"
    assert heading_starts(page, [Bookmark("Setup", "Setup"), Bookmark("Tuning (advanced)", "Tuning")]) == [(0, "Setup")]
    assert heading_starts(page, [Bookmark("???", "???"), Bookmark("Setup", "Setup")]) == [(0, "Setup")]
    assert heading_starts("Body text.\n", [Bookmark("Appendix: other words", "Appendix")]) == [(0, "Appendix")]
    assert heading_starts("4 Drawing commands\n4.1 draw\n", [Bookmark("draw", "draw")]) == [(19, "draw")]


def test_a_bookmark_into_another_file_names_no_section_here():
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject, TextStringObject

    two_pages = pdf_bytes(["1 Intro\nIntro text.\nMore.", "Page two text.\nMore."])
    writer = PdfWriter(clone_from=PdfReader(BytesIO(two_pages)))
    writer.add_outline_item(title="Intro", page_number=0)
    remote = writer.add_outline_item(title="Remote chapter", page_number=0).get_object()
    remote.pop(NameObject("/Dest"), None)
    remote[NameObject("/A")] = DictionaryObject({
        NameObject("/S"): NameObject("/GoToR"), NameObject("/F"): TextStringObject("other.pdf"),
        NameObject("/D"): ArrayObject([NumberObject(1), NameObject("/Fit")])})
    out = BytesIO()
    writer.write(out)

    assert [(s.page, s.heading) for s in load(out.getvalue(), "pdf")] == [(1, "Intro"), (2, "Intro")]


def test_a_pdf_without_outline_is_cut_at_its_numbered_headings_in_sequence():
    contents = "Contents\n1 Introduction . . . . 1\n2 Installation . . . . 2\n2.1 Search paths . . . . 2"
    first = "1 Introduction\nAsymptote is a vector graphics language.\n1. Click Save to keep it.\n"
    second = ("2 Installation\nHow to install it.\n2.1 Search paths\nFiles are looked for in order:\n"
              "1 First the current directory\n2.2 Uninstall\nDelete the files.\n3.1 Output\nPDF or EPS.")
    pages = numbered_starts([contents, first, second])

    assert pages[0] == []  # a table of contents ends each line in a page number
    assert [path for _, path in pages[1]] == ["Introduction"]  # "1. Click Save" is a list item
    assert [path for _, path in pages[2]] == [
        "Installation", "Installation > Search paths", "Installation > Uninstall", "Output",  # "3.1": chapter 3 began
    ]  # "1 First the current directory" is out of sequence after 2.1: a list, not a heading
    rows = "4 Bounds\nType table:\n1 Free variable\n2 Lower bound\n3 Upper bound\n4 Fixed variable\nmore"
    after = "5 Solving\ntext\n5.1 Simplex\nx\n5.1. Exact arithmetic\nx\nChapter 6\nOutput\ny"
    listed = numbered_starts([contents, first, second, rows, after])
    assert [path for _, path in listed[3]] == ["Bounds"]  # a table's numbered rows stand together
    assert [path for _, path in listed[4]] == ["Solving", "Solving > Simplex", "Output"]  # "5.1." after 5.1: no
    words = "1 A Title That Runs On For Far Too Many Words To Be A Heading Here\nx\n1 Table 2 of 3 rows here\ny"
    assert numbered_starts([words]) == [[]]  # twelve words at most, one figure at most
    many = "".join(f"{n} Part\ntext\n" for n in range(1, 101))
    assert len(numbered_starts([many])[0]) == 64  # per page, as many as an outline's bookmarks
    sections = load(pdf_bytes([contents, first, second]), "pdf")
    assert [(s.page, s.heading, s.context) for s in sections][-2:] == [
        (3, "Installation > Uninstall", "Installation > Uninstall"), (3, "Output", "Output")]
    assert sections[-1].text.startswith("3.1 Output")


def test_a_pdf_without_outline_is_one_section_per_page_without_heading():
    sections = load(pdf_bytes(PDF_PAGES), "pdf")

    assert [(s.page, s.heading, s.offset) for s in sections] == [(1, "", 0), (2, "", 0), (3, "", 0)]


def test_an_image_file_skipped_offline_says_how_to_get_it_read():
    """"no text to index" alone looked like a bug when a scanned page image was skipped: the
    reason names both ways to have it read."""
    with pytest.raises(Unreadable) as skipped:
        read_image(b"\x89PNG\r\n\x1a\n", None)
    reason = str(skipped.value)
    assert reason.startswith("an image: offline it has no text to index (set GEMINI_API_KEY")
    assert "install Tesseract (Debian: apt-get install tesseract-ocr)" in reason


def test_setext_headings_give_markdown_sections_their_heading_paths():
    """"Testing" over "=======" and "Medium Tests" over "------------" (92 of the 379 Markdown
    files under /usr/share/doc here) gave every chunk an empty heading, one starting with the
    underline of the heading before it."""
    from ingest.loaders import load_markdown

    text = (b"---\ntitle: front matter, no heading\n---\n\nTesting\n=======\n\nCI runs three kinds.\n\n"
            b"Medium Tests\n------------\nMedium tests run on every commit.\n\n- a list item\n---\n\n"
            b"```\nnot a title\n-----------\n```\n\nLong Tests\n----------\nLong tests run nightly.\n")
    sections = load_markdown(text)
    assert [s.heading for s in sections] == ["", "Testing", "Testing > Medium Tests", "Testing > Long Tests"]
    medium = sections[2].text
    assert medium.startswith("Medium Tests\n------------\n") and "not a title\n-----------" in medium
    assert not any(s.text.startswith(("-", "=")) for s in sections[1:])  # no chunk opens on an underline


def test_markdown_comments_and_link_definitions_are_not_text():
    """Node.js's API docs open each method with "<!-- YAML added: v0.1.90 -->" and end with
    link definitions ("[`exec()`]: #child_processexec"): both were quoted as answers (new-user
    walkthrough). Outside code fences, and every other character left in its place."""
    from ingest.loaders import load_markdown

    text = ("# exec\n\n<!-- YAML\nadded: v0.1.90\n-->\n\nRuns a command in a shell. See [spawn][].\n\n"
            "```html\n<!-- a sample's comment -->\n[x]: code, not a definition\n```\n\n"
            "[spawn]: https://nodejs.org/api/child_process.html#spawn \"spawn\"\nThe end.\n")
    [section] = load_markdown(text.encode())
    assert "YAML" not in section.text and "added:" not in section.text and "nodejs.org" not in section.text
    assert "<!-- a sample's comment -->\n[x]: code, not a definition" in section.text
    assert len(section.text) == len(text) and section.text.index("Runs a command") == text.index("Runs a command")
    assert "See [spawn][]." in section.text and section.text.endswith("The end.\n")


def test_markdown_that_only_looks_like_a_comment_or_a_definition_stays_text():
    """A "`<!--`" in a sentence blanked everything up to the next "-->", a heading and its
    section with it; a footnote and a sentence starting "[1]:" were taken for definitions (review)."""
    from ingest.loaders import unseen_markdown

    text = ("# HTML basics\n\nA comment opens with `<!--` and is never shown.\n\n## Refunds\n\n"
            "Refunds are issued within 30 days.\n\n[^1]: The footnote says this.\n\n    <!-- indented code -->\n\n"
            "See the study.\n[1]: Smith 2003 says so\n\n[1]: Smith 2003 shows it too\n")
    kept = unseen_markdown(text)
    assert kept == text
