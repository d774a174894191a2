"""The second ranking stage: local features, and Gemini's listwise call against the fake server."""

import json
import re
import time
from dataclasses import replace

import pytest

from rag.answer import AskOptions
from rag.chain import Chain
from rag.providers.gemini import GeminiProvider
from rag.refusal import NOT_IN_DOCUMENTS
from rag.rerank import (
    GeminiReranker,
    LocalReranker,
    documents_first,
    make_reranker,
    parse_scores,
    scores_bound,
)
from rag.retrieval import Query
from rag.settings import LocalRerankWeights
from rag.testing.fake_gemini import Fault, GenerateRequest
from rag.types import Chunk, Hit, Usage
from tests.fakes.tiny_corpus import build_store


def _chunk(i: int, text: str, source: str, heading: str = "") -> Chunk:
    return Chunk(id=f"c{i}", text=text, source=source, index=i, start=0, end=len(text), content_hash=f"h{i}",
                 heading=heading)


CHUNKS = [
    _chunk(0, "A health check must not call the Gemini API; it returns quickly.", "deployment.md", "Health checks"),
    _chunk(1, "Retry on 408, 429, 500 and 503, waiting the server's delay.", "retries.md", "Which errors to retry"),
    _chunk(2, "Backoff doubles from one second, with full jitter.", "retries.md", "How long to wait"),
    _chunk(3, "Keys live in environment variables, never in code.", "security.md", "API keys"),
]


def fused(*scores):
    return [Hit(c, s) for c, s in zip(CHUNKS, scores, strict=True)]


def order(reranked):
    return [h.chunk.id for h in reranked.hits]


def test_local_rerank_lifts_the_chunk_holding_the_questions_code_over_a_generic_match():
    # The generic chunk wins the first stage on "application Gemini API returns HTTP".
    pool = fused(0.90, 0.80, 0.40, 0.10)
    question = "What should an application do when the Gemini API returns HTTP 429?"
    assert order(LocalReranker(LocalRerankWeights(anchors=0)).rerank(question, pool, None))[0] == "c0"
    reranked = LocalReranker(LocalRerankWeights()).rerank(question, pool, None)
    assert order(reranked) == ["c1", "c0", "c2", "c3"]
    assert reranked.usage.total_tokens == 0 and reranked.model == ""


def test_the_fusions_scale_does_not_change_the_weight_of_literal_tokens():
    question = "What does HTTP 429 mean?"
    convex = LocalReranker(LocalRerankWeights()).rerank(question, fused(0.90, 0.80, 0.40, 0.10), None)
    rrf = LocalReranker(LocalRerankWeights()).rerank(question, fused(0.0328, 0.0320, 0.0300, 0.0280), None)
    assert order(convex)[0] == order(rrf)[0] == "c1"


def test_after_the_top_the_best_chunk_of_each_section_comes_before_a_second_chunk_of_one():
    second = replace(CHUNKS[1], id="c1b")  # another chunk of the same section
    hits = [Hit(CHUNKS[1], 3.0), Hit(second, 2.5), Hit(CHUNKS[2], 2.0), Hit(CHUNKS[0], 1.0)]
    assert [h.chunk.id for h in documents_first(hits, keep=0)] == ["c1", "c2", "c0", "c1b"]  # c2: other section
    assert [h.chunk.id for h in documents_first(hits, keep=2)] == ["c1", "c1b", "c2", "c0"]  # the top stays
    pages = [Hit(replace(CHUNKS[0], page=p, id=f"p{p}"), 1.0) for p in (1, 2, 1, 3)]
    assert [h.chunk.id for h in documents_first(pages, keep=1)] == ["p1", "p2", "p3", "p1"]  # a page is a place
    # A PDF page is one place whatever headings its chunks fall under: booktabs' page 7 held
    # three of the first six places, each chunk under another heading.
    headed = [Hit(replace(CHUNKS[0], page=p, heading=h, id=f"p{p}{h}"), 1.0)
              for p, h in ((7, "a"), (7, "b"), (5, "a"), (7, "c"), (4, "a"))]
    assert [h.chunk.id for h in documents_first(headed, keep=1)] == ["p7a", "p5a", "p4a", "p7b", "p7c"]
    slides = [Hit(replace(hit.chunk, unit="slide"), 1.0) for hit in headed]  # a slide keeps its sections apart
    assert [h.chunk.id for h in documents_first(slides, keep=1)] == ["p7a", "p7b", "p5a", "p7c", "p4a"]


def _ranked_pages(strong: tuple[str, int], **weights: float) -> list[str]:
    """The local order of a pool where `strong` scores best, four weaker pages of another
    file follow, then page 165 of the manual, then a page of no interest."""
    pages = [(*strong, 1.0), ("other.pdf", 3, 0.9), ("other.pdf", 7, 0.85), ("other.pdf", 9, 0.8),
             ("other.pdf", 20, 0.75), ("manual.pdf", 165, 0.7), ("other.pdf", 30, 0.1)]
    pool = [Hit(replace(CHUNKS[0], id=f"{source}#{page}", source=source, page=page), score)
            for source, page, score in pages]
    reranked = LocalReranker(LocalRerankWeights(**weights)).rerank("how do I stop the solver early", pool, None)
    head = [h.score for h in reranked.hits[:3]]
    assert head == sorted(head, reverse=True)  # the first three keep their own scores, in order
    return order(reranked)


def test_a_pdf_page_next_to_a_strong_one_climbs_past_weaker_pages_of_other_files():
    # A page break cuts the manual's option list: page 165 holds what page 164 or 166 begins or ends.
    assert _ranked_pages(("manual.pdf", 166), neighbours=0).index("manual.pdf#165") == 5
    after = _ranked_pages(("manual.pdf", 166))
    assert after[:3] == _ranked_pages(("manual.pdf", 166), neighbours=0)[:3]  # the top is not reordered
    assert after.index("manual.pdf#165") == 3
    assert _ranked_pages(("manual.pdf", 164)).index("manual.pdf#165") == 3  # the page before lifts it too


def test_only_the_same_files_neighbouring_page_lifts_a_page():
    assert _ranked_pages(("other.pdf", 164)).index("manual.pdf#165") == 5  # another file's page 164
    assert _ranked_pages(("manual.pdf", 167)).index("manual.pdf#165") == 5  # two pages away


def test_chunks_without_a_pdf_page_gain_nothing_from_their_neighbours():
    strong = [Hit(replace(CHUNKS[0], id="s1", source="talk.pptx", page=1, unit="slide"), 1.0)]
    weak = [Hit(replace(CHUNKS[0], id=f"o{n}", source=f"other{n}.md"), 0.9 - n / 10) for n in range(4)]
    pool = [*strong, *weak, Hit(replace(CHUNKS[0], id="s2", source="talk.pptx", page=2, unit="slide"), 0.45),
            Hit(replace(CHUNKS[3], id="low", source="z.md"), 0.1)]
    assert order(LocalReranker(LocalRerankWeights()).rerank("how do I stop", pool, None)) == [
        h.chunk.id for h in pool]


def test_a_table_of_contents_or_an_index_goes_behind_the_pages_it_points_to():
    """Their titles match the question's words ("glp add cols") better than the page the
    entry points to, and they answer nothing."""
    contents = "2.3.6 glp add cols — add new columns to problem object . . . . . . . . . 19\n" \
               "2.3.7 glp set row name — assign (change) row name . . . . . . . . . . . . 20"
    index = "glp_add_cols. . . . . . . . . . 19, 24\nglp_add_rows . . . . . . . . . . 18\ncolumns . . . . . 19–21"
    page = "The routine glp_add_cols adds ncs columns (structural variables) to the problem object."
    pool = [Hit(replace(CHUNKS[0], id=i, text=t, source="glpk.pdf", page=n), score)
            for i, t, n, score in [("toc", contents, 4, 0.9), ("index", index, 300, 0.8), ("page", page, 19, 0.7),
                                   ("other", CHUNKS[2].text, 50, 0.2)]]
    question = "what bounds does a new column get from glp_add_cols?"
    assert order(LocalReranker(LocalRerankWeights(navigation=0)).rerank(question, pool, None))[0] == "index"
    ranked = order(LocalReranker(LocalRerankWeights()).rerank(question, pool, None))
    assert ranked[0] == "page" and ranked.index("toc") > ranked.index("page")


def test_without_a_key_gemini_rerank_is_the_local_one_and_says_so(settings, offline_provider):
    """`rag ask --rerank gemini` offline used the local order and nothing said so."""
    gemini = make_reranker(settings, offline_provider, "gemini")
    assert gemini.name == "local"
    assert make_reranker(settings, offline_provider, "none").name == "none"
    pool = [Hit(c, 1.0 - i / 10) for i, c in enumerate(CHUNKS)]
    local = LocalReranker(LocalRerankWeights()).rerank("retry budget", pool, None)
    fallback = gemini.rerank("retry budget", pool, None)
    assert order(fallback) == order(local) and not local.note
    assert fallback.note == "the Gemini reranking needs a Gemini key, so the local order was used"


def test_parse_scores_refuses_a_reply_of_the_wrong_shape():
    assert parse_scores('```json\n{"scores": [3, 9]}\n```', 2) == [3.0, 9.0]
    with pytest.raises(ValueError):
        parse_scores('{"scores": [3]}', 2)


def rank_by(keyword: str):
    """A fake Flash-Lite that scores 10 the passages containing `keyword`, else 1."""

    def respond(request: GenerateRequest) -> str:
        if not request.system.startswith("You rank passages"):
            return NOT_IN_DOCUMENTS
        passages = re.findall(r"<passage n=\"\d+\"[^>]*>(.*?)</passage>", request.last_user_text, re.DOTALL)
        return json.dumps({"scores": [10 if keyword in p else 1 for p in passages]})

    return respond


@pytest.fixture
def gemini_chain(gemini_settings):
    settings = gemini_settings.model_copy(update={"rerank": "gemini", "rerank_timeout_s": 1.0})
    provider = GeminiProvider(settings)
    return Chain(settings, provider, build_store(settings, provider))


def test_gemini_rerank_is_one_call_per_new_question_cached_and_charged(gemini_chain, fake_gemini):
    lite = gemini_chain.settings.lite_model  # the cheap-step model does the ranking
    fake_gemini.responder = rank_by("Receipts")
    options = AskOptions(top_k=2, rerank="gemini")
    hits = gemini_chain.retrieve(gemini_chain.stores.get(), "How do expense and vacation rules work?", options)
    assert hits.hits[0].chunk.text.startswith("Expense reports")  # the model's choice comes first
    assert (hits.rerank_model, hits.rerank_usage.output_tokens > 0) == (lite, True)
    [call] = fake_gemini.calls("generateContent", model=lite)
    assert call.body["generationConfig"]["responseMimeType"] == "application/json"
    # Bounded as held: with no cap, only the timeout stopped a model that wrote on.
    depth = gemini_chain.settings.rerank_depth
    assert 0 < call.body["generationConfig"]["maxOutputTokens"] <= scores_bound(depth)
    assert gemini_chain.reranking(Query.of("q", gemini_chain.settings, options)).output_tokens == scores_bound(depth)

    gemini_chain.retrieve(gemini_chain.stores.get(), "How do expense and vacation rules work?", options)
    assert len(fake_gemini.calls("generateContent", model=lite)) == 1  # the same question: cached

    record = gemini_chain.ask("What does HTTP 429 mean?", session_id="s1", options=AskOptions(rerank="gemini"))
    assert len(fake_gemini.calls("generateContent", model=lite)) == 2  # a new question: one more call
    charged = gemini_chain.ledger.models("s1")
    assert charged[lite].calls == 1 and charged[lite].cost_usd > 0
    assert record.cost_usd == pytest.approx(sum(t.cost_usd for t in charged.values()))


def test_gemini_rerank_timeout_keeps_the_local_order(gemini_chain, fake_gemini):
    fake_gemini.responder = rank_by("Receipts")
    fake_gemini.inject(Fault.slow(3.0), times=None, model=gemini_chain.settings.lite_model)
    question = "How many days of paid vacation do employees get?"
    started = time.monotonic()
    got = gemini_chain.retrieve(gemini_chain.stores.get(), question, AskOptions(top_k=3, rerank="gemini"))
    assert time.monotonic() - started < 2.9  # did not wait for the slow reply
    local = gemini_chain.retrieve(gemini_chain.stores.get(), question, AskOptions(top_k=3, rerank="local"))
    assert [h.chunk.id for h in got.hits] == [h.chunk.id for h in local.hits]
    assert "no answer before the request timeout), so the local order was used" in got.rerank_note
    # Abandoned, not refused: charged as stopped, on its prompt as counted here.
    assert (got.rerank_usage, got.rerank_model) == (Usage(), gemini_chain.settings.lite_model)
    [abandoned] = got.rerank_abandoned
    assert abandoned.prompt_tokens > 0 and abandoned.output_tokens == 0


def test_a_timed_out_rerank_is_named_in_the_route_and_its_call_is_in_the_ledger(gemini_chain, fake_gemini):
    """The walkthrough's bug: Google serves and bills a call the client stopped waiting for;
    it was neither recorded nor mentioned, and the answer silently rested on the local order."""
    lite = gemini_chain.settings.lite_model
    fake_gemini.responder = rank_by("Receipts")
    fake_gemini.inject(Fault.slow(1.5), times=None, method="generateContent", model=lite)

    record = gemini_chain.ask("How many days of paid vacation do employees get?", session_id="s1",
                              options=AskOptions(rerank="gemini"))

    assert record.route.reason.startswith("context at most")  # the router's own reason, then the note
    assert ("; the Gemini reranking failed (no answer before the request timeout), so the local order was used; "
            "the abandoned attempt is charged as stopped, on an estimated") in record.route.reason
    [charged] = fake_gemini.billed_for(lite)  # the fake finished the reply, and billed it
    spent = gemini_chain.ledger.models("s1")[lite]
    assert spent.calls == 1 and spent.cost_usd > 0 and spent.usage.output_tokens == 0
    assert spent.usage.prompt_tokens == pytest.approx(charged.prompt_tokens, rel=0.25)  # counted locally
    assert record.cost_usd == pytest.approx(gemini_chain.ledger.session("s1").cost_usd)

    fake_gemini.clear_log()
    gemini_chain.search("Which rules apply to expense reports?", session_id="s2", options=AskOptions(rerank="gemini"))
    assert gemini_chain.ledger.models("s2")[lite].calls == 1  # the search tool's retrieval is charged alike


def test_a_rerank_refused_with_an_error_is_named_in_the_route_and_not_charged(gemini_chain, fake_gemini):
    """A 503 did no work and Google bills none: the note says why, the ledger holds nothing."""
    lite = gemini_chain.settings.lite_model
    fake_gemini.inject(Fault.server_error(503), times=None, method="generateContent", model=lite)

    record = gemini_chain.ask("How many days of paid vacation do employees get?", session_id="s1",
                              options=AskOptions(rerank="gemini"))

    assert record.route.reason.endswith(
        "; the Gemini reranking failed (503 UNAVAILABLE: The model is overloaded. Please try again later), "
        "so the local order was used")
    assert len(fake_gemini.calls("generateContent", model=lite)) == gemini_chain.settings.max_attempts
    assert [b for b in fake_gemini.billed if b.model == lite] == []
    assert lite not in gemini_chain.ledger.models("s1")


def test_gemini_rerank_cache_is_per_corpus_version(gemini_settings, fake_gemini):
    settings = gemini_settings.model_copy(update={"rerank": "gemini"})
    provider = GeminiProvider(settings)
    reranker = GeminiReranker(settings, provider, LocalReranker(settings.local_rerank))
    ids = [c.id for c in CHUNKS]
    assert reranker.key("q", ids, "c@1") != reranker.key("q", ids, "c@2")
    assert reranker.key("q", ids, "c@1") == reranker.key("q ", ids, "c@1")


def test_gemini_rerank_cache_keeps_each_collections_rankings_apart(gemini_settings, fake_gemini):
    """A collection's new questions evict only its own cached rankings, each of which a
    repeated question would otherwise pay for again."""
    settings = gemini_settings.model_copy(update={"rerank": "gemini", "cache_max_entries": 1})
    provider = GeminiProvider(settings)
    reranker = GeminiReranker(settings, provider, LocalReranker(settings.local_rerank))
    handbook, flood = build_store(settings, provider, "handbook"), build_store(settings, provider, "flood")
    fake_gemini.responder = rank_by("Receipts")
    question = "How do expense and vacation rules work?"

    def ranked(store, text):
        return reranker.rerank(text, [Hit(c, 1.0 - i / 10) for i, c in enumerate(store.chunks())], store)

    ranked(handbook, question)
    for n in range(3):
        ranked(flood, f"{question} ({n})")
    calls = len(fake_gemini.calls("generateContent", model=settings.lite_model))
    assert ranked(handbook, question).usage == Usage()  # still cached: no call, nothing charged
    assert len(fake_gemini.calls("generateContent", model=settings.lite_model)) == calls == 4
