import pytest

from rag.answer import AskOptions
from rag.providers import Embedders
from rag.retrieval import Query, Retriever
from rag.sentences import MAX_LEAD_CHARS, as_shown, lead
from rag.store import Store
from rag.types import Chunk

PAGE = (
    "Alpha is the first letter. The routine glp_simplex solves\n"
    "the problem with the primal simplex method. It returns zero\n"
    "when the problem is solved. More text follows here.\n"
)


def test_a_chunk_starting_mid_sentence_leads_with_the_sentences_start():
    """A PDF chunk starts at a line start; the sentence started on the line before."""
    start = PAGE.index("the problem")
    assert lead(PAGE, start) == "The routine glp_simplex solves\n"


@pytest.mark.parametrize(("section", "at"), [
    (PAGE, "Alpha"),  # the section's start
    (PAGE, "It returns"),  # after a full stop
    ("First line of a list:\n- an item\n- another item\n", "- another"),  # a list item
    ("A table:\n| a | b |\n| 1 | 2 |\n", "| 1"),  # a table row
    ("Ends a paragraph\n\nstarts a new one\n", "starts"),  # after a blank line
    ("page 7 continues a sentence from page six and\nends here.\n", "ends here"),  # no sentence start on this page
])
def test_no_lead_where_a_sentence_list_item_or_row_starts_or_no_start_is_in_the_section(section, at):
    assert lead(section, section.index(at)) == ""


def test_a_colon_does_not_end_a_sentence():
    """The sample corpus's caching guide, whose chunk started at "2.5 Flash" and was quoted from there."""
    text = ("Tokens are billed again.\nExplicit caches are billed per hour (as of 2025-09): $1.00 for Gemini\n"
            "2.5 Flash and Flash-Lite, and $4.50 for Gemini 2.5 Pro.\n")
    assert lead(text, text.index("2.5 Flash")) == (
        "Explicit caches are billed per hour (as of 2025-09): $1.00 for Gemini\n"
    )


def test_a_sentence_starting_further_back_than_the_cap_gets_no_lead():
    text = "Short one. A sentence that goes on " + "and on " * (MAX_LEAD_CHARS // 7) + "\nuntil it stops. Next.\n"
    assert lead(text, text.index("until")) == ""
    short = text.replace("and on " * (MAX_LEAD_CHARS // 7), "and on ")
    assert lead(short, short.index("until")) == "A sentence that goes on and on \n"


def test_a_chunk_is_shown_with_its_lead_as_one_slice_of_the_document():
    start, end = PAGE.index("the problem"), PAGE.index("when")
    chunk = Chunk(id="c1", text=PAGE[start:end], source="glpk.pdf", index=1, start=start, end=end,
                  content_hash="h", page=4, lead=lead(PAGE, start))
    shown = as_shown(chunk)
    assert shown.text == PAGE[shown.start : shown.end] and shown.text.startswith("The routine glp_simplex")
    assert (shown.id, shown.page, shown.end, shown.lead) == ("c1", 4, end, "")
    assert as_shown(shown) == shown


def test_the_retriever_ranks_on_the_chunks_own_text_and_shows_its_lead(settings, offline_provider):
    """Stored and read back through Chroma's metadata; the question's words are in the chunk,
    and the lead ("The routine glp_simplex solves") is shown before it."""
    cuts = [("Alpha", "solves\n"), ("the problem", "returns zero\n"), ("It returns", "here.\n")]
    chunks = []
    for i, (first, last) in enumerate(cuts):
        start = PAGE.index(first)
        end = PAGE.index(last, start) + len(last)
        chunks.append(Chunk(id=f"c{i}", text=PAGE[start:end], source="glpk.pdf", index=i, start=start, end=end,
                            content_hash=f"h{i}", page=4, lead=lead(PAGE, start)))
    store = Store(settings, offline_provider.embedding_id, "sentences")
    store.upsert(chunks, offline_provider.embed_documents([c.embedded_text for c in chunks]).vectors)
    assert {c.id: c.lead for c in store.chunks()} == {c.id: c.lead for c in chunks} and chunks[1].lead
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    query = Query.of("primal simplex method", settings, AskOptions(mode="hybrid", top_k=1))
    (hit,) = retriever.search(store, query).hits
    assert hit.chunk.id == "c1"
    assert hit.chunk.text.startswith("The routine glp_simplex solves\nthe problem with the primal simplex method.")


@pytest.mark.parametrize("before", ["Tokens are billed again.\n", "", "a sentence from the page before.\n"])
def test_a_heading_line_ends_the_sentence_before_it_and_is_no_part_of_a_lead(before):
    """"Storage price" over the price sentence: a lead with it made the answerer label a list
    item further down "Storage price — Without caching: ..."."""
    text = (before + "Storage price\nExplicit caches are billed per hour (as of 2025-09): $1.00 for Gemini\n"
            "2.5 Flash and Flash-Lite, and $4.50 for Gemini 2.5 Pro.\n")
    assert lead(text, text.index("2.5 Flash")) == (
        "Explicit caches are billed per hour (as of 2025-09): $1.00 for Gemini\n"
    )
    assert lead(text, text.index("Explicit")) == ""


def test_a_wrapped_line_that_runs_on_in_lower_case_is_no_heading():
    assert lead(PAGE, PAGE.index("the problem")) == "The routine glp_simplex solves\n"
    assert lead("Short line\nwraps on here. And\nmore.", len("Short line\nwraps on here. And\n")) == "And\n"


def test_lines_ending_in_crlf_end_a_paragraph_at_a_blank_line():
    text = "Prior. ends a paragraph, comma,\r\n\r\nstarts a new one here.\r\n"
    assert lead(text, text.index("starts")) == ""
    wrapped = "First. The routine solves\r\nthe problem.\r\n"
    assert lead(wrapped, wrapped.index("the problem")) == "The routine solves\r\n"


def test_the_tail_of_a_long_line_or_a_sentence_after_a_stop_is_no_heading():
    """Both look like a heading line ("Caches In Gemini Models") but start mid-line. The
    window read before a chunk can start inside a line: there the sentence starts further
    back, and a lead starting after that tail would start mid-sentence."""
    cut = "Caches In Gemini Models\n"
    body = "And it goes on over another line of words, long enough to be no heading\n" * 3
    body += "And " + "x" * (MAX_LEAD_CHARS + 8 - len(cut) - len(body) - 5) + "\n"
    text = "The sentence starts on a line " + "and goes on " * 10 + cut + body + "then ends."
    start = text.index("then ends")
    assert text[start - MAX_LEAD_CHARS - 8 :].startswith(cut)  # where the window starts
    assert lead(text, start) == ""
    after_stop = "One. Caches In Gemini Models\n"
    assert lead(after_stop + "continue the sentence.", len(after_stop)) == "Caches In Gemini Models\n"


def test_in_a_file_that_marks_its_headings_a_short_wrapped_line_does_not_cut_the_lead():
    """HTML and Markdown mark their headings ("#"): a short line its author wrapped there is
    no heading, and cut a chunk's lead to the part after it, as a PDF's short line would."""
    text = ("The compression level to use.\nWhen using ZIP_DEFLATED integers 0 through 9 are accepted\n"
            "(see zlib for more information). The end.\n")
    at = text.index("more information")
    assert lead(text, at) == "(see zlib for "  # a PDF's short line is a heading: the lead starts after it
    assert lead(text, at, marked=True) == (
        "When using ZIP_DEFLATED integers 0 through 9 are accepted\n(see zlib for ")


def test_a_numbered_section_title_after_a_sentences_end_is_a_heading():
    """"3.6.2 Subscripted variables" ran into the sentence after it in every quote of GLPK's
    sections (406 such lines); a wrapped line that opens with a figure, after a line that
    does not end a sentence, is still no heading, nor is a list item's "1."."""
    from rag.providers.quotable import quotable_units
    from rag.sentences import heading_line

    text = ("with the index set.\n3.6.2 Subscripted variables\nThe primary linear expression is the simplest"
            " form of a linear expression.\n")
    units = quotable_units(text)
    assert [(u.text, u.heading) for u in units[-1:]] == [
        ("The primary linear expression is the simplest form of a linear expression.", "3.6.2 Subscripted variables")]
    assert lead(text, text.index("form of")) == "The primary linear expression is the simplest "
    assert heading_line("1 Basic Graph Drawing", "Dot draws directed graphs.", previous="")
    assert not heading_line("2.5 Pro costs more to run", "than Flash does.", previous="on Gemini")
    assert not heading_line("2.5 Pro costs more to run", "Than Flash does.", previous="billed for Gemini")
    assert not heading_line("1. The SQLITE_TMPDIR variable", "2. /var/tmp", previous="")
    # A review's repros: a value list after a colon, a sentence's wrap after a full stop, a
    # table row, a figure of three digits; and consecutive titles, each a heading.
    values = quotable_units("The verbosity parameter takes one of these values:\n0 No output at all\n1 Errors only\n")
    assert "0 No output at all" in values[0].text + values[0].then
    wrapped = quotable_units("Flash is the default model for all requests.\n2.5 Pro costs more per token than Flash,"
                             " and\nGoogle recommends it only for hard tasks.\n")
    assert [u.text for u in wrapped][-1].startswith("2.5 Pro costs more")
    assert not heading_line("1 Flash 0.30 2.50", "2 Pro 1.25 10.00", previous="Prices per million tokens.")
    assert not heading_line("100 Mbps Ethernet links connected all the nodes", "Internet access was slow.",
                            previous="The cluster was small.")
    assert not heading_line("2 Pro costs more than Flash and", "Flash-Lite costs less.", previous="It ends.")
    consecutive = quotable_units("3 Results\n3.1 Accuracy\nThe model reached 91 percent on the held-out set.\n")
    assert [(u.text, u.heading) for u in consecutive] == [
        ("The model reached 91 percent on the held-out set.", "3.1 Accuracy")]
