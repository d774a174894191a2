import pytest

from rag.answer import AskOptions, Delta, Done
from rag.chain import Chain, cited_numbers, snippet
from rag.errors import EmptyCollection
from rag.store import Store
from rag.types import Message
from tests.fakes.tiny_corpus import Doc, build_store


@pytest.fixture
def chain(settings, offline_provider):
    return Chain(settings, offline_provider, build_store(settings, offline_provider))


def test_cited_numbers_in_order_of_use_without_repeats_or_invented_numbers():
    assert cited_numbers("A [2]. B [1][2]. C [1, 3]. D [7] [0].", count=3) == [2, 1, 3]
    assert cited_numbers("No citations here.", count=3) == []
    # a quote's code is no citation: "sys.argv[1]" inline or in a block
    assert cited_numbers("Use `sys.argv[1]` [2].\n```\nx = y[3]\n```\n[2]", count=3) == [2]


def test_snippet_is_flat_and_cut_at_a_word():
    assert snippet("a\n  b\tc") == "a b c"
    long = snippet("word " * 200)
    assert long.endswith(" …") and len(long) <= 282 and "wor …" not in long


def test_streamed_answer_cites_the_right_file_and_page(chain):
    events = list(chain.stream("How many days of paid vacation do employees get?"))
    assert all(isinstance(e, Delta) for e in events[:-1]) and isinstance(events[-1], Done)
    record = events[-1].record
    assert "".join(e.text for e in events[:-1]) == record.answer
    assert "25 days of paid vacation" in record.answer
    [cited] = [c for c in record.citations if "vacation" in c.snippet]
    assert (cited.source, cited.page) == ("handbook.pdf", 2)
    assert f"[{cited.n}]" in record.answer
    assert record.sources[cited.n - 1] == cited
    assert {c.n for c in record.citations} <= {s.n for s in record.sources}


def test_record_carries_route_usage_timing_and_corpus_version(chain):
    record = chain.ask("What does error E4711 mean?", session_id="s1")
    assert record.citations[0].heading == "Building access" and record.citations[0].page is None
    assert record.route.kind == "offline" and record.route.model == "offline-extractive"
    assert record.route.prompt_tokens > 0
    assert record.offline and not record.cached and record.cost_usd == 0.0
    assert record.corpus_version == 1 and record.session_id == "s1"
    # query embedding + generation; no rewrite without history
    assert record.usage.prompt_tokens > record.route.prompt_tokens
    assert 0 < record.ttft_s <= record.latency_s
    assert len(record.sources) == chain.settings.top_k
    assert record.standalone_question == record.question


def test_follow_up_is_rewritten_before_retrieval(chain):
    history = [Message("user", "How many days of paid vacation do employees get?"),
               Message("model", "Employees receive 25 days of paid vacation per year. [1]")]
    record = chain.ask("Can they be carried over?", history=history)
    assert record.standalone_question != record.question
    assert "vacation" in record.standalone_question
    assert record.sources[0].source == "handbook.pdf" and record.sources[0].page == 2
    assert record.history == history


def test_options_select_mode_k_and_sources(chain):
    record = chain.ask("authentication", options=AskOptions(mode="bm25", top_k=2, sources=("security.md",)))
    assert 1 <= len(record.sources) <= 2
    assert {s.source for s in record.sources} == {"security.md"}


def test_question_about_a_whole_document_sends_all_its_chunks_in_order(chain):
    record = chain.ask("Summarise handbook.pdf")
    assert [(s.source, s.page) for s in record.sources] == [("handbook.pdf", 1), ("handbook.pdf", 2),
                                                             ("handbook.pdf", 3)]
    assert "whole of handbook.pdf" in record.route.reason


def test_question_the_documents_do_not_answer_cites_nothing(chain):
    record = chain.ask("Who won the football world cup in 1954?")
    assert "do not seem to answer" in record.answer
    assert record.citations == []


def test_empty_or_missing_collection_says_to_ingest_first(chain):
    with pytest.raises(EmptyCollection, match=r"No collection 'never-ingested' in .*: run python -m ingest PATH"):
        chain.ask("anything", options=AskOptions(collection="never-ingested"))


def test_a_blank_question_and_a_filter_on_a_file_the_collection_lacks_are_refused_before_any_search(chain):
    from rag.errors import InvalidRequest

    for blank in (" \n\t", "\x00\x00", "\x01\x1b\x7f", "\u200b\u200b", "\ufeff \u2060"):  # a review's repros
        with pytest.raises(InvalidRequest, match="The question is empty"):
            chain.ask(blank)
    with pytest.raises(InvalidRequest, match="8,001 characters long; the limit is 8,000"):
        chain.ask("x" * 8_001)  # the UI took any length; the HTTP schema stopped at 8,000
    with pytest.raises(InvalidRequest, match=r"holds no file 'nope\.md', 'pdf/handbook\.pdf'"):
        chain.ask("How many vacation days?", options=AskOptions(sources=("nope.md", "handbook.pdf",
                                                                         "pdf/handbook.pdf")))
    with pytest.raises(InvalidRequest, match=r"holds no file 'nope\.md'"):
        chain.search("vacation", options=AskOptions(sources=("nope.md",)))
    handbook = AskOptions(sources=("handbook.pdf",))
    answered = chain.ask("How many days of paid vacation do employees get?", options=handbook)
    assert "25 days" in answered.answer and {s.source for s in answered.sources} == {"handbook.pdf"}
    assert chain.ledger.session("").answers == 1  # the refused ones spent and recorded nothing


def test_a_question_reads_the_corpus_version_once(settings, offline_provider, monkeypatch):
    chain = Chain(settings, offline_provider, build_store(settings, offline_provider))
    reads = []
    real = Store._read_version
    monkeypatch.setattr(Store, "_read_version", lambda self: reads.append(self.name) or real(self))
    record = chain.ask("How many days of paid vacation do employees get?")
    assert "25 days" in record.answer
    assert len(reads) == 1  # the cache key, the count, the BM25 index and the rerank all share it


def test_an_answerable_question_is_answered_and_one_about_what_the_corpus_never_mentions_refused(chain):
    from rag.eval.metrics import is_refusal

    answered = chain.ask("How many days of paid vacation do employees get?")
    assert not is_refusal(answered.answer) and "25 days" in answered.answer
    refused = chain.ask("Which Helm chart runs the badge reader at the north entrance?")
    assert is_refusal(refused.answer) and "never mention Helm" in refused.answer and "[1]" not in refused.answer
    # A file format no document names (EVALUATION.md).
    refused = chain.ask("How do I export my paid vacation days to an .xlsx file?")
    assert is_refusal(refused.answer) and "never mention xlsx" in refused.answer and "[1]" not in refused.answer
    # A name written in lower case, as its users write it, in a question with capitals.
    refused = chain.ask("How do I plot my paid vacation days with matplotlib?")
    assert is_refusal(refused.answer) and "never mention matplotlib" in refused.answer
    # A method written with its dot is not a format, nor "e.g." a name: this one is answered.
    answered = chain.ask("Does the JSON chunk of each event come with .get, e.g. when streaming?")
    assert not is_refusal(answered.answer) and "server-sent events" in answered.answer


def test_a_question_typed_without_accents_is_answered_from_the_accented_passage(settings, offline_provider):
    """"how do I make creme brulee?" was refused, "the passages found never mention brulee",
    with the "Desserts > Crème brûlée" section as its only source."""
    from rag.eval.metrics import is_refusal

    docs = (Doc("desserts.md", "To make crème brûlée, bake the custard in a water bath at 150 °C for 40 minutes, "
                "then caramelise a thin layer of sugar on top.", heading="Desserts > Crème brûlée"),
            Doc("desserts.md", "Tarte Tatin is an upside-down apple tart.", heading="Desserts > Tarte Tatin"))
    chain = Chain(settings, offline_provider, build_store(settings, offline_provider, name="desserts", docs=docs))
    answered = chain.ask("how do I make creme brulee?")
    assert not is_refusal(answered.answer) and "water bath at 150 °C" in answered.answer


def test_a_term_only_the_passages_miss_is_not_said_to_be_never_mentioned(chain):
    """The one passage shown (the handbook's vacation page) does not name Acme, but page 1 of
    the same handbook does: the answer quotes the page instead of refusing."""
    from rag.eval.metrics import is_refusal

    record = chain.ask("How many vacation days do Acme employees get?", options=AskOptions(top_k=1))
    assert [(s.source, s.page) for s in record.sources] == [("handbook.pdf", 2)]
    assert not is_refusal(record.answer) and "25 days" in record.answer


def test_a_misspelt_name_its_documents_hold_is_read_where_keywords_are_searched(chain):
    """"Welcme" for the handbook's "Welcome" (on its page 1; the page shown is page 2): hybrid
    search reads it through the keyword index and answers. Vector search loads no keyword
    index, so it refuses on the name, whatever an earlier search of the process loaded."""
    from rag.eval.metrics import is_refusal

    question = "How many vacation days does the Welcme handbook promise?"
    hybrid = chain.ask(question, options=AskOptions(top_k=1))
    assert [(s.source, s.page) for s in hybrid.sources] == [("handbook.pdf", 2)]
    assert not is_refusal(hybrid.answer) and "25 days" in hybrid.answer
    vector = chain.ask(question, options=AskOptions(top_k=1, mode="vector"))
    assert is_refusal(vector.answer) and "never mention Welcme" in vector.answer
