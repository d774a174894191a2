import itertools
import unicodedata
from pathlib import Path

import pytest

from ingest.chunking import Chunker
from ingest.loaders import LoadError, Section, load, markdown_sections
from rag.errors import ConfigError
from rag.providers.minilm import shared_minilm
from rag.providers.wordpieces import Tokenized
from rag.settings import ChunkProfile
from rag.types import contextual_text
from tests.fakes.corpus import PDF_PAGES, pdf_bytes

minilm = shared_minilm()
count = minilm.count_tokens
PROSE = " ".join(f"Sentence {i} explains one small thing about retries and quotas." for i in range(60))


def _chunker(size=40, overlap=16):
    return Chunker(ChunkProfile(size_tokens=size, overlap_tokens=overlap), minilm)


def test_chunks_fit_the_budget_and_report_their_token_counts():
    sized = _chunker().chunk("a.txt", [Section(PROSE)])
    assert len(sized) > 5
    for s in sized:
        assert s.tokens == count(s.chunk.text) <= 40


def test_chunks_break_at_sentence_ends_and_overlap_by_whole_sentences():
    chunks = [s.chunk for s in _chunker().chunk("a.txt", [Section(PROSE)])]
    assert all(c.text.endswith(".") for c in chunks)
    for prev, nxt in itertools.pairwise(chunks):
        last_sentence = prev.text.rsplit(". ", 1)[-1]
        assert nxt.text.startswith(last_sentence)  # the overlap
        assert nxt.start < prev.end


def test_no_overlap_when_zero():
    chunks = [s.chunk for s in _chunker(overlap=0).chunk("a.txt", [Section(PROSE)])]
    assert all(nxt.start > prev.end for prev, nxt in itertools.pairwise(chunks))


def test_spans_point_into_the_document_and_chunks_never_cross_sections():
    text = "# Top\n\n" + PROSE + "\n## Next\n\nShort closing section.\n"
    chunks = [s.chunk for s in _chunker().chunk("g.md", markdown_sections(text))]
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].heading == "Top > Next" and chunks[-1].text.startswith("## Next")
    assert all("## Next" not in c.text for c in chunks[:-1])


def test_pdf_chunks_keep_their_page_and_stay_on_it():
    chunks = [s.chunk for s in _chunker(size=20, overlap=0).chunk("l.pdf", load(pdf_bytes(PDF_PAGES), "pdf"))]
    assert {c.page for c in chunks} == {1, 2, 3}
    for c in chunks:
        assert c.text.replace("\n", " ") in PDF_PAGES[c.page - 1]


def test_a_sentence_longer_than_the_budget_is_cut_between_words():
    long = "word " * 300
    sized = _chunker().chunk("a.txt", [Section(long)])
    assert all(s.tokens <= 40 for s in sized) and len(sized) >= 8


def test_ids_are_stable_and_depend_on_place_and_content():
    sections = [Section(PROSE)]
    first = [s.chunk.id for s in _chunker().chunk("a.txt", sections)]
    assert first == [s.chunk.id for s in _chunker().chunk("a.txt", sections)]
    assert set(first).isdisjoint(s.chunk.id for s in _chunker().chunk("b.txt", sections))


def test_the_embedded_text_leads_with_the_context_which_the_id_covers():
    sections = [Section(PROSE, heading="A > B", context="A > B"), Section(PROSE, heading="A > C", context="A > C"),
                Section(PROSE, heading="A > C")]
    first = [_chunker().chunk("a.pdf", [section])[0].chunk for section in sections]
    assert len({c.id for c in first}) == 3 and len({c.text for c in first}) == 1
    assert first[0].embedded_text == f"A > B\n{first[0].text}" and first[2].embedded_text == first[2].text
    assert contextual_text("A > B", "x") == "A > B\nx" and contextual_text("", "x") == "x"


def test_a_context_is_fitted_to_its_tokens_by_whole_titles_from_the_deepest_and_counted_with_the_chunk():
    chunker = Chunker(ChunkProfile(size_tokens=40, overlap_tokens=0, context_tokens=20), minilm)
    greek = "Κεφάλαιο πρώτο > Ενότητα δεύτερη > Διαχείριση σφαλμάτων"  # 47 word pieces; the deepest title 18
    sized = chunker.chunk("m.pdf", [Section("Short text here.", heading=greek, context=greek)])[0]

    assert sized.chunk.context == "Διαχείριση σφαλμάτων" and sized.chunk.heading == greek
    assert sized.tokens == count("Short text here.") + count("Διαχείριση σφαλμάτων")
    assert sized.chunk.embedded_text == "Διαχείριση σφαλμάτων\nShort text here."
    long_title = "A title of many plain words " * 8
    words, ids = chunker.fit_context(long_title)
    assert long_title.startswith(words) and len(ids) == count(words) == 20  # its first words, as many as fit
    words, ids = chunker.fit_context("")
    assert words == "" and len(ids) == 0


def _pieces_alone(text):
    """The tokenizer's own ids for `text` (short enough not to be truncated), without [CLS]/[SEP]."""
    return minilm.loaded_tokenizer().encode(text).ids[1:-1]


CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.mark.parametrize("kind", ["markdown", "pdf", "greek context", "cut runs", "thai"])
def test_each_chunk_carries_the_word_pieces_of_its_embedded_text_read_alone(kind):
    """The chunker tokenises a section once and slices each chunk's pieces out of it: they
    must be exactly what tokenising the chunk's own embedded text gives, or the embedder
    would read other words than the chunk holds. A chunk holding a piece of a run cut
    between letters carries none (its pieces differ from the run's)."""
    profile = ChunkProfile(size_tokens=60, overlap_tokens=16, context_tokens=20, max_chars=400, max_word_chars=40)
    sections = {
        "markdown": lambda: load((CORPUS / "retries.md").read_bytes(), "markdown"),
        "pdf": lambda: load((CORPUS / "pdf" / "runbook.pdf").read_bytes(), "pdf"),
        "greek context": lambda: [Section("Διαχείριση σφαλμάτων: café naïve — 429 «Too Many» 😀 …",
                                          context="Κεφάλαιο > Ενότητα")],
        "cut runs": lambda: [Section(f"{PROSE} {'ACGT' * 30} {PROSE}")],
        "thai": lambda: [Section("ภาษาไทยไม่เว้นวรรค ระหว่างคำ " * 20)],
    }[kind]()
    chunks = Chunker(profile, minilm).chunk("x", sections)
    assert len(chunks) > 1 or kind == "greek context"
    for c in chunks:
        if c.ids is None:
            assert kind == "cut runs" and not isinstance(c.embedded_text, Tokenized)
            continue
        assert c.ids.tolist() == _pieces_alone(c.chunk.embedded_text)
        assert c.tokens == len(c.ids) == count(c.chunk.embedded_text)
        assert c.embedded_text == c.chunk.embedded_text and c.embedded_text.ids is c.ids
    assert any(c.ids is not None for c in chunks)
    assert kind != "cut runs" or any(c.ids is None for c in chunks)


def test_no_chunk_ends_inside_what_bert_reads_as_one_word():
    """BERT deletes a form feed instead of splitting at it, so "unbeliev\x0cably" is one word
    to the embedder: wherever the character cap falls, no chunk ends between its halves,
    and each chunk's word pieces stay those of its own text."""
    profile = ChunkProfile(size_tokens=20, overlap_tokens=0, max_chars=40, max_word_chars=40)
    for n in range(40):
        text = "w " * n + "unbeliev\x0cably " + "word " * 20
        chunks = Chunker(profile, minilm).chunk("x", [Section(text)])
        assert any("unbeliev\x0cably" in c.chunk.text for c in chunks)
        assert all(c.ids.tolist() == _pieces_alone(c.chunk.embedded_text) for c in chunks if c.ids is not None)


def test_repeated_identical_chunks_get_distinct_ids():
    sections = [Section("Same words on every page.", page=p) for p in (1, 2, 3)]
    chunks = [s.chunk for s in _chunker().chunk("r.pdf", sections)]
    assert len({c.content_hash for c in chunks}) == 1
    assert len({c.id for c in chunks}) == 3


def test_overlap_must_be_below_size():
    with pytest.raises(ConfigError, match="overlap"):
        _chunker(size=10, overlap=10)


def test_a_run_without_spaces_is_cut_into_pieces_the_embedder_reads_as_words():
    profile = ChunkProfile(size_tokens=200, overlap_tokens=32, max_chars=1_500, max_word_chars=100)
    dna = "".join("ACGT"[(i * 7 + i // 3) % 4] for i in range(1_050))
    text = f"Sample 17. {dna} End of sample."
    chunks = Chunker(profile, minilm).chunk("g.txt", [Section(text)])
    pieces = [c.chunk.text for c in chunks]
    assert all(len(p) <= 1_500 and c.tokens == count(p) <= 200 for p, c in zip(pieces, chunks, strict=True))
    assert "".join(p.removeprefix("Sample 17. ").removesuffix(" End of sample.") for p in pieces) == dna
    assert all(len(max(p.split(), key=len)) <= 100 for p in pieces)  # no word WordPiece reads as [UNK]


def test_the_character_cap_binds_where_tokens_do_not_and_keeps_combining_marks():
    thai = "ภาษาไทยไม่เว้นวรรคระหว่างคำ" * 30
    profile = ChunkProfile(size_tokens=512, overlap_tokens=0, max_chars=300)
    pieces = [c.chunk.text for c in Chunker(profile, minilm).chunk("t.txt", [Section(thai)])]
    assert len(pieces) == -(-len(thai) // 300) or len(pieces) == -(-len(thai) // 300) + 1
    assert "".join(pieces) == thai and all(len(p) <= 300 for p in pieces)
    assert not any(unicodedata.category(p[0])[0] == "M" for p in pieces)


def test_a_file_making_too_many_chunks_is_refused_with_the_setting_to_raise():
    with pytest.raises(LoadError, match=r"more than 10 chunks .*GEMRAG_MAX_CHUNKS_PER_FILE"):
        Chunker(ChunkProfile(size_tokens=200, overlap_tokens=0, max_word_chars=100), minilm, 10).chunk(
            "a.txt", [Section("A" * 5_000)]
        )


def test_a_chunk_starting_mid_sentence_keeps_the_sentences_start_as_its_lead():
    """PDF text wraps its lines mid-sentence and a chunk (or its overlap) starts at a line:
    such a chunk leads with the words that start its sentence; the others lead with none."""
    lines = [f"Step {i} of the routine reads the matrix and then" if i % 2 == 0 else "writes the basis."
             for i in range(40)]
    text = "\n".join(lines) + "\n"
    chunks = [s.chunk for s in _chunker(size=30, overlap=10).chunk("m.pdf", [Section(text, page=2)])]
    mid = [c for c in chunks if c.text.startswith("writes")]
    assert mid and all(c.lead.startswith("Step ") and c.lead.endswith("and then\n") for c in mid)
    assert all(text[c.start - len(c.lead) : c.start] == c.lead for c in chunks)
    assert all(c.lead == "" for c in chunks if c.text.startswith("Step"))


def test_in_html_and_markdown_a_short_wrapped_line_does_not_cut_a_chunks_lead():
    """A short line over "(see ..." reads as a PDF's heading, and a chunk's lead stopped after
    it; HTML and Markdown mark their headings, so there the lead is the sentence's start."""
    lines = [f"Step {i} reads the matrix and then writes" if i % 2 == 0 else "(the basis) to disk."
             for i in range(40)]
    text = "\n".join(lines) + "\n"
    for source, wrapped in (("m.pdf", False), ("m.md", True), ("m.html", True)):
        chunks = [s.chunk for s in _chunker(size=30, overlap=10).chunk(source, [Section(text)])]
        mid = [c for c in chunks if c.text.startswith("(the basis)")]
        assert mid, source
        leads = {c.lead for c in mid}
        if wrapped:
            assert all(lead.startswith("Step ") and lead.endswith(" writes\n") for lead in leads), source
        else:
            assert leads == {""}, source


def test_a_chunk_starting_inside_a_code_block_is_shown_after_its_opening_fence():
    """A chunk starting inside a fenced block began with the block's closing fence, which the
    answerer and the UI read as an opening one, and the prose after it as code (on the Python
    docs 592 of 2,350 chunks). Its lead is now the block's opening fence line."""
    from rag.providers.quotable import quotable_units
    from rag.sentences import as_shown

    code = "".join(f"result_{i} = compute(value_{i}, scale={i})\n" for i in range(12))
    text = f"Run it as follows:\n\n```python\n{code}```\n\nThe loop stops at the first failure. It keeps the rest."
    chunks = [c.chunk for c in _chunker(size=40, overlap=0).chunk("guide.md", [Section(text)])]
    inside = [c for c in chunks if c.text.lstrip().startswith(("result_", "```")) and "```python" not in c.text]
    assert inside and all(c.lead == "```python\n" for c in inside)
    assert all(c.lead == "" for c in chunks if c not in inside)  # prose, and the chunk opening the block
    last = as_shown(next(c for c in chunks if "first failure" in c.text))
    units = quotable_units(last.text)
    assert [(u.text, bool(u.code)) for u in units] == [
        ("result_10 = compute(value_10, scale=10) result_11 = compute(value_11, scale=11)", True),
        ("The loop stops at the first failure.", False)]
