from rag.bm25 import LINES, BM25Index, BM25Search, Terms, line_units, remove_indexes
from rag.keyterms import file_names
from rag.store import Store
from rag.types import Chunk
from tests.fakes.tiny_corpus import build_store, chunks


def _chunk(i: int, text: str, source: str = "notes.md") -> Chunk:
    return Chunk(id=f"n{i}", text=text, source=source, index=i, start=0, end=len(text), content_hash=f"h{i}")


def test_terms_are_stemmed_and_question_words_dropped():
    assert Terms()("What does it mean when retries fail?") == ["mean", "retri", "fail"]


def test_accents_are_folded_so_a_word_typed_without_them_is_found():
    """Users type loanwords and names without accents: "creme brulee" found nothing in
    "crème brûlée", and the other way round."""
    index = BM25Index.build([_chunk(0, "Crème brûlée: bake the custard in a water bath."),
                             _chunk(1, "Bake the bread at 220 degrees.")], Terms())
    assert index.search("creme brulee", 5)[0][0] == "n0"
    plain = BM25Index.build([_chunk(0, "The naive Bayes classifier."), _chunk(1, "A decision tree.")], Terms())
    assert plain.search("naïve", 5)[0][0] == "n0"


def test_a_greek_letter_standing_alone_is_found_by_its_name_and_its_name_is_heard_of():
    """A manual writes γ where its users type "gamma": the question was refused as no
    document "mentions gamma" (a blind set's xcolor question), and keyword search missed it."""
    index = BM25Index.build([_chunk(0, "The correction \u03b3 of a colour model; \U0001d6fc = 0.5 by default."),
                             _chunk(1, "Colour models convert between RGB and CMYK.")], Terms())
    assert index.search("gamma correction", 5)[0][0] == "n0"
    assert index.search("what is alpha?", 5)[0][0] == "n0"
    assert index.unheard_of(["gamma", "alpha", "delta"]) == {"delta"}


def test_a_one_letter_flag_standing_alone_is_a_term():
    """socat's option list says "-d Enable debug output": "what does -d do?" found nothing by
    keyword, as a term was two characters or more (new-user walkthrough). Not "x-d" nor "-dx"."""
    assert Terms()("Use -d, (-v) or -H; x-d and --d and -dx are no flags.") == ["use", "-d", "-v", "-h", "dx", "flag"]
    index = BM25Index.build([_chunk(0, "-d Enable debug output to standard error."),
                             _chunk(1, "-v Write the transferred data to standard error."),
                             _chunk(2, "-x Dump the data as hexadecimal.")], Terms())
    assert [chunk_id for chunk_id, _ in index.search("what does -d do?", 3)] == ["n0"]


def test_a_name_written_with_underscores_is_also_its_words():
    """GNU Prolog's flag max_arity, asked about as "max arity", was found while its PDF
    drew the underscore as a rule and PDFium read "max arity"; read as written, it is one
    term, and its words are terms too. A name typed with underscores finds words, too."""
    assert Terms()("the max_arity flag, __init__") == ["max_ar", "max", "ariti", "flag", "__init__"]
    index = BM25Index.build([_chunk(0, "max_arity an integer maximum arity for compound terms (255)"),
                             _chunk(1, "max_atom an integer maximum number of atoms"),
                             _chunk(2, "The glp create prob routine creates a problem object.")], Terms())
    assert index.search("max arity of a compound term", 3)[0][0] == "n0"
    assert index.search("what does glp_create_prob do?", 3)[0][0] == "n2"
    # A name the index holds is asked for as itself: its words would rank any max_ name.
    assert index.query_terms("max_arity") == ["max_ar"]
    assert index.query_terms("glp_create_prob") == ["glp_create_prob", "glp", "creat", "prob"]


def test_a_files_name_that_is_a_name_is_a_term_of_each_of_its_chunks():
    """GNU Prolog's manual writes "GNU Prolog", and "gprolog" in a question ranked the chunk
    of its C interface that includes gprolog.h, or another manual's, above the page asked
    about (blind set g15). gprolog.pdf's chunks now hold "gprolog"; an English word of a
    file's name ("flex") is no such term."""
    index = BM25Index.build([
        _chunk(0, "Each stack has a static size and cannot be dynamically increased.", "gprolog.pdf"),
        _chunk(1, "The C code should include gprolog.h which provides the definitions of the API.", "gprolog.pdf"),
        _chunk(2, "The start condition stack grows as needed; see yy_push_state.", "flex.pdf"),
        _chunk(3, "Stacks and heaps of the runtime are described in the next chapter.", "flex.pdf"),
    ], Terms())
    ranked = [chunk_id for chunk_id, _ in index.search("how big are gprolog stacks?", 4)]
    assert ranked[:2] == ["n0", "n1"] and ranked.index("n0") < ranked.index("n3")  # was n1, then n0 tied with n3
    assert file_names("manuals/gprolog.pdf") == "gprolog" and file_names("flex.pdf") == ""
    assert file_names("library/heapq.html") == "heapq" and file_names("faq/programming.html") == ""


def test_an_index_of_an_earlier_tokenisation_is_built_again(settings, offline_provider, monkeypatch):
    """Queries are tokenised the new way: searched, an index built the old way would miss."""
    store = build_store(settings, offline_provider, name="tiny-terms")
    monkeypatch.setattr(Terms, "version", 1)
    BM25Search(settings).search(store, "badge reader", 3)
    old = settings.data_dir / "bm25" / store.name / f"v{store.version}-n{store.count()}-t1"
    assert old.is_dir()
    monkeypatch.undo()
    BM25Search(settings).search(store, "badge reader", 3)
    assert not old.exists() and (old.parent / f"v{store.version}-n{store.count()}-t{Terms.version}").is_dir()


def test_stemmed_query_finds_other_word_forms_and_ranks_by_term_weight():
    index = BM25Index.build(chunks(), Terms())
    ranked = index.search("how many vacations", 3)
    assert [i.split(":")[0] for i, _ in ranked] == ["handbook.pdf"]
    assert index.search("retrying", 5)[0][0].startswith("api-guide.md:0")


def test_query_of_only_stop_words_or_unknown_words_finds_nothing():
    index = BM25Index.build(chunks(), Terms())
    assert index.search("what is the", 5) == []
    assert index.search("zeppelin", 5) == []


def test_source_filter_keeps_only_those_sources():
    index = BM25Index.build(
        [_chunk(0, "rate limits apply", "a.md"), _chunk(1, "rate limits differ", "b.md"),
         _chunk(2, "limits of rate", "c.md")],
        Terms(),
    )
    assert {i for i, _ in index.search("rate limits", 5, sources=["a.md", "c.md"])} == {"n0", "n2"}


def test_document_without_terms_keeps_positions_aligned():
    index = BM25Index.build([_chunk(0, "the of and"), _chunk(1, "kubernetes cluster")], Terms())
    assert index.search("kubernetes", 5)[0][0] == "n1"


def test_line_units_are_lines_and_the_sentences_of_long_lines():
    prose = "The solver stops at the time limit. " * 5 + "Then it reports the best bound found so far."
    text = f"Options:\n  --interior   use the interior point method\n\n{prose}"
    assert line_units(text) == [
        "Options:", "--interior   use the interior point method",
        *["The solver stops at the time limit."] * 5, "Then it reports the best bound found so far.",
    ]


# A manual's option list: the chunk that answers holds the question's words on one line, a
# longer chunk of prose holds them scattered.
_OPTIONS = _chunk(0, "--simplex  use the simplex method\n--interior  use the interior point method (LP only)\n"
                     "--nomip  solve the LP relaxation only\n--tmlim nnn  limit the solution time to nnn seconds")
_PROSE = _chunk(1, "The interior of a region is drawn first. A point on its border is chosen by the method "
                   "described below, and interior point counts are reported. " * 2)


def test_a_chunk_is_found_by_its_best_line_and_scored_by_it():
    lines = BM25Index.build_lines([_OPTIONS, _PROSE], Terms())
    ranked = lines.search_best_units("which option solves with the interior point method?", 5)
    assert [i for i, _ in ranked] == ["n0", "n1"]
    assert ranked[0][1] > ranked[1][1]
    assert BM25Index.build([_OPTIONS, _PROSE], Terms()).search("interior point method", 2)[0][0] == "n1"


def test_a_chunk_with_many_matching_lines_does_not_crowd_out_the_others():
    """Forty lines of one chunk outscore the other chunk's line: still two chunks come back
    when two are asked for, each with its best line's score."""
    many = _chunk(5, "\n".join(["interior point method: the interior point method"] * 40))
    lines = BM25Index.build_lines([many, _OPTIONS, _chunk(6, "nothing to see here")], Terms())
    ranked = lines.search_best_units("interior point method", 2)
    assert [i for i, _ in ranked] == ["n5", "n0"]
    assert lines.search_best_units("interior point method", 2, sources=["notes.md"]) == ranked


def test_a_line_holding_less_than_half_the_question_terms_does_not_count():
    lines = BM25Index.build_lines([_OPTIONS], Terms())
    assert lines.search_best_units("time limit for the branch and cut heuristic cuts", 5) == []
    assert lines.search_best_units("time limit", 5)[0][0] == "n0"
    assert lines.search_best_units("interior point", 5, sources=["other.md"]) == []


def test_a_line_is_scored_as_the_sum_of_its_terms_and_words_the_index_lacks_still_count():
    lines = BM25Index.build_lines([_OPTIONS], Terms())
    both, one = lines.search_best_units("interior method", 5), lines.search_best_units("interior", 5)
    assert both[0][1] > one[0][1] > 0  # the line with both terms outscores it with one
    # "zyxw" is in no line: 2 of the 3 terms held still reach half, 2 of 5 do not
    assert lines.search_best_units("interior method zyxw", 5) == both
    assert lines.search_best_units("interior method zyxw qvut wxyz", 5) == []


def test_index_is_saved_and_reloaded_by_a_new_process_without_rebuilding(settings, offline_provider, monkeypatch):
    store = build_store(settings, offline_provider)
    first = BM25Search(settings).search(store, "badge reader", 3)
    assert first[0].chunk.heading == "Building access"
    saved = settings.data_dir / "bm25" / store.name / f"v{store.version}-n{store.count()}-t{Terms.version}"
    assert saved.is_dir()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr(store, "chunks", no_rebuild)
    again = BM25Search(settings).search(store, "badge reader", 3)
    assert [(h.chunk.id, h.score) for h in again] == [(h.chunk.id, h.score) for h in first]


def test_the_line_index_is_saved_apart_and_reloaded_without_rebuilding(settings, offline_provider, monkeypatch):
    store = build_store(settings, offline_provider, name="tiny-lines")
    first = BM25Search(settings).rank_lines(store, "badge reader error", 3)
    assert first[0][0].startswith("security.md:")
    lines = settings.data_dir / "bm25-lines" / store.name
    assert (lines / f"v{store.version}-n{store.count()}-t{Terms.version}").is_dir()
    assert not (settings.data_dir / "bm25" / store.name).exists()  # the chunk index is its own

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the saved line index should have been loaded")

    monkeypatch.setattr(store, "chunks", no_rebuild)
    search = BM25Search(settings)
    assert search.rank_lines(store, "badge reader error", 3) == first
    monkeypatch.undo()
    assert search.index_for(store) is not search.index_for(store, LINES)  # one process holds both, apart
    assert (settings.data_dir / "bm25" / store.name).is_dir()

    remove_indexes(settings, store.name)  # what `ingest --rebuild` does after dropping the collection
    assert not (settings.data_dir / "bm25-lines" / store.name).exists()
    assert not (settings.data_dir / "bm25" / store.name).exists()


def test_index_is_rebuilt_when_ingest_bumps_the_corpus_version(settings, offline_provider):
    store = build_store(settings, offline_provider)
    search = BM25Search(settings)
    assert search.search(store, "zeppelin hangar", 3) == []
    old_dir = settings.data_dir / "bm25" / store.name / f"v{store.version}-n{store.count()}-t{Terms.version}"

    new = _chunk(99, "The zeppelin hangar is behind the car park.", "site.md")
    store.upsert([new], offline_provider.embed_documents([new.text]).vectors)
    store.bump_version()

    hits = search.search(store, "zeppelin hangar", 3)
    assert [h.chunk.id for h in hits] == ["n99"]
    assert hits[0].chunk.source == "site.md"
    assert not old_dir.exists()


def test_index_follows_an_edit_made_through_another_store_object(settings, offline_provider):
    """The UI's ingest writes through its own Store; an edit that keeps the chunk count must
    still reach the chain's index, through the corpus version."""
    store = build_store(settings, offline_provider)
    search = BM25Search(settings)
    assert search.search(store, "badge reader", 1)[0].chunk.source == "security.md"

    ingest_side = Store(settings, offline_provider.embedding_id, store.name)
    [old] = [c for c in ingest_side.chunks() if "badge reader" in c.text]
    edited = _chunk(7, "Error code E4711 now means the turnstile at the south gate is jammed.", "security.md")
    ingest_side.delete([old.id])
    ingest_side.upsert([edited], offline_provider.embed_documents([edited.text]).vectors)
    ingest_side.bump_version()

    assert store.count() == len(chunks())
    assert [h.chunk.id for h in search.search(store, "turnstile south gate", 3)] == ["n7"]
    assert search.search(store, "badge reader", 3) == []


def test_ties_at_the_cut_go_to_the_earlier_chunk():
    """Four chunks tie for first, three are asked for: the three earliest come back, in the
    chunk ranking and the line ranking alike (a partition alone picks among ties arbitrarily)."""
    strong = {0, 5, 6, 7}
    index = [_chunk(i, "rate limits" if i in strong else "rate limits differ by model tier") for i in range(10)]
    for ranked in (BM25Index.build(index, Terms()).search("rate limits", 3),
                   BM25Index.build_lines(index, Terms()).search_best_units("rate limits", 3)):
        assert [i for i, _ in ranked] == ["n0", "n5", "n6"]


def test_a_name_the_index_lacks_is_read_as_the_term_one_typo_away():
    index = BM25Index.build(
        [_chunk(0, "glp_simplex solves the LP by the simplex method"), _chunk(1, "glp_intopt solves the MIP"),
         _chunk(2, "the batch API halves the price"), _chunk(3, "one batch job, and another batch job"),
         _chunk(4, "a botch of a job"), _chunk(5, "the Gemini v1beta endpoint"), _chunk(6, "send the key in a header"),
         _chunk(7, "asy writes to stdio")],
        Terms(),
    )
    assert index.query_terms("is glp_smplex faster than glp_itnopt?") == [
        "glp_simplex", "glp", "simplex", "faster", "glp_intopt", "glp", "intopt"]  # a name, then its words
    assert index.search("is the presolver on in glp_smplex?", 5)[0][0] == "n0"
    assert index.search_best_units("does glp_itnopt solve a MIP", 5)[0][0] == "n1"
    # The term in more entries wins: "Batcj" is one edit from "batch" (three entries) and "botch" (one).
    assert index.query_terms("what does the Batcj API cost?") == ["batch", "api", "cost"]
    # Left as they are: a common word (not a name: "reader" is not "header"), a name without
    # a neighbour, a term with a digit (a version: "v1betb" may be another one).
    assert index.query_terms("which badge reader") == ["badg", "reader"]
    assert index.search("badge reader", 5) == []
    assert index.query_terms("Zeppelin on Gemini v1betb") == ["zeppelin", "gemini", "v1betb"]
    # A word of the model's vocabulary is no typo, though it is a name and its stem is not
    # in the index: "Ministry" is not "ministerial".
    words = BM25Index.build([_chunk(0, "ministerial approval is needed")], Terms())
    assert words.query_terms("Does the Ministry approve it?") == ["ministri", "approv"]
    # A name the index holds one typo away, in the files asked about.
    assert index.held_misspelt("glp_smplex", ["notes.md"]) and index.held_misspelt("Batcj API", ["notes.md"])
    assert not index.held_misspelt("glp_smplex", ["other.md"])
    assert not index.held_misspelt("glp_simplex", ["notes.md"]) and not index.held_misspelt("zeppelin", ["notes.md"])
    # Each word of a name is read by the same rule: "studio" is a word, no typo of "stdio".
    assert not index.held_misspelt("asy.studio", ["notes.md"])


def test_building_an_index_logs_nothing_at_the_apps_warning_level():
    """bm25s sets its own logger to DEBUG on import, so "Building index from tokens" went
    past the chat UI's WARNING level (`logging.basicConfig(level=WARNING)`, a handler of no
    level of its own) to its console at each first question on a collection."""
    import io
    import logging

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        BM25Index.build(chunks(), Terms())
        BM25Index.build_lines(chunks(), Terms())
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert out.getvalue() == ""


def test_a_word_no_entry_holds_in_any_form_is_unheard_of():
    """"gym" asked of a handbook that never names one; "vacations" is held as "vacation"."""
    index = BM25Index.build(chunks(), Terms())
    assert index.unheard_of(["gym", "vacations", "rotated", "canteen", "the"]) == {"gym", "canteen"}
