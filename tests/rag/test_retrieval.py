import numpy as np
import pytest

from rag.answer import AskOptions
from rag.providers import Embedders
from rag.rerank import Reranked
from rag.retrieval import Query, Retriever, best_per_file, convex, distinct, mmr, rrf, source_filter
from rag.settings import Settings
from rag.store import Store
from rag.types import Chunk, Hit, Usage
from tests.fakes.tiny_corpus import Doc, build_store


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(data_dir=tmp_path_factory.mktemp("retrieval") / "data", api_key=None)


@pytest.fixture(scope="module")
def store(settings, offline_provider):
    return build_store(settings, offline_provider)


@pytest.fixture(scope="module")
def retriever(settings, offline_provider):
    return Retriever(settings, Embedders(settings, offline_provider), offline_provider)


def _search(retriever, store, settings, text, **options):
    return retriever.search(store, Query.of(text, settings, AskOptions(**options))).hits


def test_rrf_on_hand_worked_ranks():
    fused = dict(rrf([["a", "b", "c"], ["c", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert [i for i, _ in rrf([["a", "b", "c"], ["c", "a"]], k=60)] == ["a", "c", "b"]


def test_rrf_rewards_agreement_over_one_high_rank():
    order = [i for i, _ in rrf([["x", "both"], ["y", "both"]], k=1)]
    assert order[0] == "both"


def test_convex_fusion_on_hand_worked_scores():
    vector = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    bm25 = [("c", 12.0), ("a", 4.0)]
    fused = dict(convex([vector, bm25], [0.7, 0.3]))
    assert fused["a"] == pytest.approx(0.7 * 1.0 + 0.3 * 0.0)
    assert fused["b"] == pytest.approx(0.7 * 0.5)  # absent from BM25: counts as 0 there
    assert fused["c"] == pytest.approx(0.7 * 0.0 + 0.3 * 1.0)
    assert [i for i, _ in convex([vector, bm25], [0.2, 0.8])] == ["c", "a", "b"]


def test_convex_fusion_keeps_a_single_hit_list():
    assert convex([[("only", 3.0)], []], [0.5, 0.5]) == [("only", 0.5)]


def test_hybrid_uses_the_configured_fusion(settings, store, offline_provider):
    convex_settings = settings.model_copy(update={"fusion": "convex", "fusion_alpha": 0.5})
    retriever = Retriever(convex_settings, Embedders(convex_settings, offline_provider), offline_provider)
    hits = _search(retriever, store, convex_settings, "error code E4711 badge reader", rerank="none")
    assert hits[0].chunk.source == "security.md"
    # a convex score (at most 1 + the line ranking's weight), not an RRF one (those are below 2 / 61)
    assert 2 / 61 < hits[0].score <= 1.0 + convex_settings.line_weight


def test_mmr_prefers_a_different_candidate_to_a_near_duplicate():
    query = np.array([1.0, 0.0, 0.0])
    duplicate = np.array([0.9, 0.43, 0.0])
    candidates = np.array([duplicate, duplicate, [0.7, 0.0, 0.71]])
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    assert mmr(query, candidates, 2, lam=0.5) == [0, 2]
    assert mmr(query, candidates, 2, lam=1.0) == [0, 1]  # relevance only


def test_query_resolves_defaults_from_settings(settings):
    q = Query.of("x", settings, AskOptions())
    assert (q.mode, q.top_k, q.mmr) == (settings.retrieval_mode, settings.top_k, settings.mmr)
    q = Query.of("x", settings, AskOptions(mode="bm25", top_k=2, mmr=True, sources=("a.md",)))
    assert (q.mode, q.top_k, q.mmr, q.sources) == ("bm25", 2, True, ("a.md",))


def test_source_filter_clause():
    assert source_filter(()) is None
    assert source_filter(["a.md"]) == {"source": "a.md"}
    assert source_filter(["a.md", "b.md"]) == {"source": {"$in": ["a.md", "b.md"]}}


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_every_mode_ranks_the_answering_chunk_first(retriever, store, settings, mode):
    hits = _search(retriever, store, settings, "How many days of paid vacation do employees get?", mode=mode)
    assert (hits[0].chunk.source, hits[0].chunk.page) == ("handbook.pdf", 2)


def test_bm25_mode_does_not_embed_the_query(retriever, store, settings):
    assert retriever.search(store, Query.of("vacation", settings, AskOptions(mode="bm25"))).usage.prompt_tokens == 0
    assert retriever.search(store, Query.of("vacation", settings, AskOptions(mode="vector"))).usage.prompt_tokens > 0


@pytest.mark.parametrize(("fusion", "top_score"), [("rrf", 2 / 61), ("convex", 1.0 + Settings().line_weight)])
def test_hybrid_fuses_both_rankings(store, settings, offline_provider, fusion, top_score):
    fused_settings = settings.model_copy(update={"fusion": fusion, "rrf_k": 60})
    retriever = Retriever(fused_settings, Embedders(fused_settings, offline_provider), offline_provider)
    question = "What does code E4711 mean?"
    hybrid = _search(retriever, store, fused_settings, question, mode="hybrid", top_k=3, rerank="none")
    assert hybrid[0].chunk.heading == "Building access"
    assert hybrid[0].score == pytest.approx(top_score)  # first in both rankings (and, convex, in the lines')
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_overfetch_then_cut_to_top_k(retriever, store, settings):
    hits = _search(retriever, store, settings, "policy rules for staff", mode="vector", top_k=2)
    assert len(hits) == 2


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_source_filter_restricts_every_mode(retriever, store, settings, mode):
    hits = _search(retriever, store, settings, "authentication keys", mode=mode, sources=("security.md",))
    assert hits and {h.chunk.source for h in hits} == {"security.md"}


def test_mmr_skips_near_duplicate_chunks(settings, offline_provider):
    """Two chunks say the same thing in other words (the very same text is shown once
    anyway, `distinct`): MMR sends one of them and a different relevant one."""
    text = "Backups run every night at 02:00 and are kept for thirty days."
    docs = (
        Doc("ops.md", text, heading="Backups"),
        Doc("ops-copy.md", "Backups run every night at 02:00 and are retained for thirty days.", heading="Backups"),
        Doc("ops.md", "Restores of nightly backups are requested through the ops ticket queue.", heading="Restore"),
        Doc("misc.md", "The cafeteria serves lunch from noon."),
    )
    store = build_store(settings, offline_provider, name="dupes", docs=docs)
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    plain = _search(retriever, store, settings, "nightly backups", mode="vector", top_k=2)
    diverse = _search(retriever, store, settings, "nightly backups", mode="vector", top_k=2, mmr=True)
    assert {h.chunk.source for h in plain} == {"ops.md", "ops-copy.md"}
    assert len({h.chunk.text.strip() for h in diverse}) == 2
    assert {h.chunk.heading for h in diverse} == {"Backups", "Restore"}


_BACKUP_MANUAL = (
    *(Doc("ops-manual.pdf", f"Nightly backups run at 02:00 on server {n}; each backup of server {n} is kept for "
          f"thirty days and checked every morning.", page=n) for n in range(1, 9)),
    Doc("runbook.md", "If a nightly backup fails, page the on-call engineer and rerun the backup job.",
        heading="Backups"),
    Doc("faq.md", "Backups: yes, laptops are backed up weekly when they are on the office network.", heading="IT"),
    Doc("policy.md", "Backup tapes leave the building every Friday for off-site storage.", heading="Storage"),
    Doc("misc.md", "The cafeteria serves lunch from noon until two o'clock."),
    Doc("travel.md", "Book flights through the travel portal at least two weeks ahead."),
)


@pytest.mark.parametrize(("mode", "rerank"), [("hybrid", "local"), ("hybrid", "none"), ("vector", "none"),
                                              ("bm25", "none")])
def test_per_file_ranks_files_by_their_best_passage_and_fills_the_cut(settings, offline_provider, mode, rerank):
    """A manual whose every page matches fills the cut with itself; one passage per file ranks
    files instead (BEIR ranks documents so): each file once, with its best passage, in the
    order the usual ranking first reaches it, and the cut still full. The corpus fits in every
    mode's pool, so both searches rank the same candidates."""
    store = build_store(settings, offline_provider, name=f"backups-{mode}-{rerank}", docs=_BACKUP_MANUAL)
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    question = "how often do the nightly backups run?"
    every = _search(retriever, store, settings, question, mode=mode, rerank=rerank, top_k=len(_BACKUP_MANUAL))
    assert [h.chunk.source for h in every[:4]].count("ops-manual.pdf") > 1  # the usual cut repeats the manual
    files = _search(retriever, store, settings, question, mode=mode, rerank=rerank, top_k=4, per_file=True)
    assert len(files) == 4 and len({h.chunk.source for h in files}) == 4
    assert [h.chunk.id for h in files] == [h.chunk.id for h in best_per_file(every)][:4]


@pytest.mark.parametrize(("mode", "rerank"), [("hybrid", "local"), ("hybrid", "none"), ("vector", "none"),
                                              ("bm25", "none")])
def test_per_file_fills_the_cut_when_one_file_fills_the_pool(settings, offline_provider, mode, rerank):
    """A manual of more matching pages than the pool holds (top_k 4, over-fetch 5: 20) would
    leave one file: the pool grows until it holds four."""
    pages = tuple(Doc("big-manual.pdf", f"Nightly backups run at 02:00 on rack {n} and are kept thirty days.", page=n)
                  for n in range(1, 31))
    store = build_store(settings, offline_provider, name=f"big-manual-{mode}-{rerank}", docs=pages + _BACKUP_MANUAL[8:])
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    question = "when do the nightly backups run?"
    usual = _search(retriever, store, settings, question, mode=mode, rerank=rerank, top_k=20)
    assert {h.chunk.source for h in usual} == {"big-manual.pdf"}  # the usual pool holds the manual alone
    files = _search(retriever, store, settings, question, mode=mode, rerank=rerank, top_k=4, per_file=True)
    assert len(files) == 4 and len({h.chunk.source for h in files}) == 4


class _Reversed:
    """A second stage that turns the candidates around, so each file's first chunk changes."""

    name = "local"

    def estimate(self, question: str) -> Usage:
        return Usage()

    def __init__(self) -> None:
        self.calls = 0

    def rerank(self, question: str, candidates, store) -> Reranked:
        self.calls += 1
        return Reranked(list(reversed(candidates)))


class _Reversing(Retriever):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.second_stage = _Reversed()

    def reranker(self, mode):
        return self.second_stage


def test_per_file_keeps_the_chunk_the_second_stage_put_first(settings, offline_provider):

    store = build_store(settings, offline_provider, name="backups-reversed", docs=_BACKUP_MANUAL)
    retriever = _Reversing(settings, Embedders(settings, offline_provider), offline_provider)
    question = "how often do the nightly backups run?"
    every = _search(retriever, store, settings, question, mode="hybrid", rerank="local", top_k=len(_BACKUP_MANUAL))
    files = _search(retriever, store, settings, question, mode="hybrid", rerank="local", top_k=6, per_file=True)
    assert [h.chunk.id for h in files] == [h.chunk.id for h in best_per_file(every)]  # all six files
    manual = [h.chunk.id for h in every if h.chunk.source == "ops-manual.pdf"]
    assert manual[0] in {h.chunk.id for h in files}  # its first chunk after the second stage, its last before


def test_a_growing_pool_reaches_the_second_stage_once(settings, offline_provider):
    """The pool grows before the second stage, which a model may run (a paid call)."""
    pages = tuple(Doc("big-manual.pdf", f"Nightly backups run at 02:00 on rack {n}.", page=n) for n in range(1, 31))
    store = build_store(settings, offline_provider, name="big-manual-once", docs=pages + _BACKUP_MANUAL[8:])
    retriever = _Reversing(settings, Embedders(settings, offline_provider), offline_provider)
    hits = _search(retriever, store, settings, "nightly backups", mode="hybrid", rerank="local", top_k=4, per_file=True)
    assert len({h.chunk.source for h in hits}) == 4 and retriever.second_stage.calls == 1


class _Counting(Retriever):
    """Counts the first-stage rounds a search makes."""

    rounds = 0

    def _candidates(self, *args):
        self.rounds += 1
        return super()._candidates(*args)


def test_a_growing_pool_stops_when_the_rankings_run_dry_or_after_its_last_doubling(settings, offline_provider,
                                                                                     monkeypatch):
    """A source filter of one short file: the second round finds what the first did, so the
    search stops there instead of doubling to the collection's 95 chunks; and however many
    files are missing, the pool doubles at most MAX_POOL_DOUBLINGS times."""
    import rag.retrieval

    pages = tuple(Doc("huge-manual.pdf", f"Nightly backups run at 02:00 on rack {n}.", page=n) for n in range(1, 91))
    store = build_store(settings, offline_provider, name="huge-manual", docs=pages + _BACKUP_MANUAL[8:])
    retriever = _Counting(settings, Embedders(settings, offline_provider), offline_provider)
    hits = _search(retriever, store, settings, "nightly backups", mode="vector", top_k=4, per_file=True,
                   sources=("runbook.md",))
    assert [h.chunk.source for h in hits] == ["runbook.md"] and retriever.rounds == 2
    monkeypatch.setattr(rag.retrieval, "MAX_POOL_DOUBLINGS", 1)
    retriever.rounds = 0
    _search(retriever, store, settings, "nightly backups", mode="vector", top_k=4, per_file=True)
    assert retriever.rounds == 2  # the usual pool (20) and one doubling (40), though 95 chunks are stored


def test_overfetch_below_one_is_refused():
    with pytest.raises(ValueError, match="overfetch"):
        Settings(overfetch=0)


def test_per_file_with_mmr_picks_among_distinct_files(settings, offline_provider):
    """MMR weighing relevance alone picks the manual's near-identical pages; one per file
    leaves it one page to pick among the files."""
    settings = settings.model_copy(update={"mmr_lambda": 1.0})
    store = build_store(settings, offline_provider, name="backups-mmr", docs=_BACKUP_MANUAL)
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    options = {"mode": "hybrid", "top_k": 3, "mmr": True}
    assert len({h.chunk.source for h in _search(retriever, store, settings, "nightly backups", **options)}) < 3
    hits = _search(retriever, store, settings, "nightly backups", per_file=True, **options)
    assert len(hits) == 3 and len({h.chunk.source for h in hits}) == 3


def test_best_per_file_keeps_the_first_hit_of_each_file_in_rank_order():
    hits = [_hit("a", "a.md"), _hit("b", "b.md"), _hit("a2", "a.md"), _hit("c", "c.pdf"), _hit("b2", "b.md")]
    assert [h.chunk.id for h in best_per_file(hits)] == ["a", "b", "c"]
    assert best_per_file([]) == []


def test_convex_fusion_adds_the_best_lines_as_a_third_ranking(tmp_path, offline_provider):
    """The chunk holding the best line gains `line_weight` (its normalised line score is 1);
    RRF, which has no weights, and a weight of 0 leave the fused scores as they were and
    build no line index."""
    question = "What does code E4711 mean?"

    def search(**update):
        settings = Settings(data_dir=tmp_path / "data", api_key=None).model_copy(update=update)
        store = build_store(settings, offline_provider)
        retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
        hits = _search(retriever, store, settings, question, mode="hybrid", rerank="none")
        return {h.chunk.id: h.score for h in hits}

    without = search(line_weight=0.0)
    assert not (tmp_path / "data" / "bm25-lines").exists()
    assert search(fusion="rrf", line_weight=0.2) == search(fusion="rrf", line_weight=0.0)
    assert not (tmp_path / "data" / "bm25-lines").exists()
    with_lines = search(line_weight=0.2)
    best = max(without, key=without.__getitem__)
    assert with_lines[best] == pytest.approx(without[best] + 0.2)
    assert set(with_lines) >= set(without)


def _error_codes(settings, offline_provider, name):
    """120 one-line chunks that share "error code" and none E4711, one that answers E4711, and
    three about other things that name E4711: the vector search returns the first kind, the
    keyword rankings the last two first."""
    parts = ["disk", "network", "licence", "printer", "scanner", "database", "cache", "queue"]
    codes = tuple(Doc(f"codes-{n}.md", f"Error code E{1000 + n} means the {parts[n % 8]} check failed; "
                                       f"look at the {parts[n % 8]} settings.") for n in range(120))
    return build_store(settings, offline_provider, name,
                       (*codes, Doc("codes-x.md", "Error code E4711 means the licence has expired."),
                        *(Doc(f"orders-{n}.md", f"Invoice {n} lists part E4711, {n} garden chairs shipped "
                                                f"to Oslo in spring with blue cushions.") for n in range(3))))


def _fused(retriever, store, settings, question, vector_hits, missing=()):
    """The default fusion (convex, lines included) of the three rankings, ids only."""
    n = settings.top_k * settings.overfetch
    rankings = [[(h.chunk.id, h.score) for h in vector_hits], retriever.bm25.rank(store, question, n),
                retriever.bm25.rank_lines(store, question, n)]
    weights = [settings.fusion_alpha, 1.0 - settings.fusion_alpha, settings.line_weight]
    return [i for i, _ in convex([[(i, s) for i, s in r if i not in missing] for r in rankings], weights)]


@pytest.mark.parametrize(("rerank", "mmr", "top_k", "depth", "kept"), [
    ("none", False, 6, 12, 6),  # the cut
    ("local", False, 6, 12, 12),  # the second stage's depth
    ("local", False, 8, 4, 8),  # the cut, deeper than the second stage
    ("none", True, 6, 12, None),  # every candidate, for MMR
])
def test_hybrid_reads_only_the_fused_candidates_it_looks_at_in_one_store_call(
    settings, offline_provider, monkeypatch, rerank, mmr, top_k, depth, kept
):
    """Fusion needs ids and scores only: the chunks are read after it, in one store call (about
    0.8 ms at 100k chunks, and 0.05 ms an id), and only those the rest of the search looks at
    and the vector search did not return: the cut, the second stage's depth, or every
    candidate for MMR."""
    settings = settings.model_copy(update={"top_k": top_k, "rerank_depth": depth})
    assert settings.fusion == "convex" and settings.line_weight > 0
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    store = _error_codes(settings, offline_provider, f"error-codes-{rerank}-{mmr}-{top_k}-{depth}".lower())
    question = "What does error code E4711 mean?"
    found, reads = [], []
    query, read = store.query, store.get
    monkeypatch.setattr(store, "query", lambda *args, **kwargs: found.extend(query(*args, **kwargs)) or found)
    monkeypatch.setattr(store, "get", lambda ids: reads.append(list(ids)) or read(ids))
    hits = _search(retriever, store, settings, question, mode="hybrid", rerank=rerank, mmr=mmr)
    assert "E4711" in hits[0].chunk.text and len(hits) == top_k
    fused = _fused(retriever, store, settings, question, found)
    assert len(fused) > 12  # so that a read of every candidate would show
    returned = {h.chunk.id for h in found}
    assert returned & set(fused[:kept]) and set(fused[:kept]) - returned  # both kinds among those kept
    assert len(reads) == 1 and sorted(reads[0]) == sorted(set(fused[:kept]) - returned)


def test_hybrid_fuses_without_a_chunk_the_keyword_index_names_but_the_store_lost(settings, offline_provider):
    """An ingest in another process deletes chunks before it bumps the corpus version, so for a
    moment the keyword index names chunks the store no longer holds: the search fuses as if
    the index had never held them, and the cut stays full."""
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    store = _error_codes(settings, offline_provider, "error-codes-lost").pinned()
    question = "What does error code E4711 mean?"
    retriever.bm25.rank_lines(store, question, 1)  # both indexes built, then the chunk goes
    lost = next(h.chunk.id for h in _search(retriever, store, settings, question, mode="bm25")
                if h.chunk.source.startswith("orders-"))  # among those hybrid keeps, found by BM25 alone
    Store(settings, store.embedding_id, store.name).delete([lost])  # another process, no version bump yet
    hits = _search(retriever, store, settings, question, mode="hybrid", rerank="none")
    found = store.query(retriever.embed(store, question).vectors[0], settings.top_k * settings.overfetch)
    assert lost in _fused(retriever, store, settings, question, found)[: settings.top_k]
    assert [h.chunk.id for h in hits] == _fused(retriever, store, settings, question, found, {lost})[: settings.top_k]


def _hit(chunk_id: str, source: str) -> Hit:
    return Hit(Chunk(chunk_id, "text", source, 0, 0, 4, chunk_id), 1.0)


_COPIES = (
    Doc("dot.1.pdf", "epsilon=n. Sets the cutoff for the solver. The default is 0.1.", 4),
    Doc("neato.1.pdf", "epsilon=n. Sets the cutoff for the solver. The default is 0.1.", 4),
    Doc("dot.1.pdf", "maxiter=n. Sets the number of iterations used for the solver.", 5),
    Doc("neato.1.pdf", "maxiter=n. Sets  the number of iterations used\nfor the solver.", 5),
    Doc("twopi.1.pdf", "ranksep=val. Specifies the radial distance in inches between rings.", 4),
    Doc("fdp.1.pdf", "K=val. Sets the default ideal edge length for the solver.", 4),
)


@pytest.mark.parametrize(("mode", "rerank"), [("hybrid", "local"), ("hybrid", "none"), ("vector", "none"),
                                              ("bm25", "none")])
def test_a_text_held_by_two_files_takes_one_place(settings, offline_provider, mode, rerank):
    """graphviz-doc installs one man page as dot.1.pdf and neato.1.pdf: each of its passages
    took two of the six places. The copy ranked lower gives its place to another passage;
    line breaks and runs of spaces do not make a text another."""
    store = build_store(settings, offline_provider, name=f"copies-{mode}-{rerank}", docs=_COPIES)
    retriever = Retriever(settings, Embedders(settings, offline_provider), offline_provider)
    hits = _search(retriever, store, settings, "what cutoff does the solver use?", mode=mode, rerank=rerank, top_k=4)
    texts = [" ".join(h.chunk.text.split()) for h in hits]
    assert texts[0] == "epsilon=n. Sets the cutoff for the solver. The default is 0.1."
    assert len(set(texts)) == len(texts)  # each once: the two copies of each entry were two places
    if mode in ("vector", "hybrid"):  # a ranking of every chunk: the copies' places go to the other files
        assert len(hits) == 4 and "K=val. Sets the default ideal edge length for the solver." in texts


def test_distinct_keeps_each_text_at_its_best_rank():
    def hit(id_: str, text: str) -> Hit:
        return Hit(Chunk(id_, text, f"{id_}.md", 0, 0, len(text), id_), 1.0)

    kept = distinct([hit("a", "one text"), hit("b", "another"), hit("c", "one  text\n"), hit("d", "a third")])
    assert [h.chunk.id for h in kept] == ["a", "b", "d"]
