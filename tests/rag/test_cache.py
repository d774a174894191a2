"""The answer cache and the query-embedding cache, on the SQLite default and on Redis."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answer import AnswerRecord, AskOptions, Citation, Route
from rag.cache import AnswerCache, CacheKey, cache_key, normalise_question
from rag.chain import Chain
from rag.costs import price_usd
from rag.embedcache import EmbeddingCache
from rag.kv import open_kv
from rag.providers.gemini import GeminiProvider
from rag.providers.offline import OfflineProvider
from rag.settings import LocalRerankWeights, Settings
from rag.testing.fake_gemini import FakeGemini, Fault
from rag.types import Embedded, Message, Usage
from tests.fakes.clock import ManualClock
from tests.fakes.tiny_corpus import build_store
from tests.rag.test_rerank import rank_by

RETRIEVAL = AskOptions(mode="hybrid", top_k=6, mmr=False)


def _key(question: str = "How long is the warranty?", **changes: object) -> CacheKey:
    args: dict[str, object] = {
        "corpus_version": 3,
        "model": "gemini-3.8-flash",
        "prompt_version": "answer-1",
        "retrieval_settings": RETRIEVAL,
    } | changes
    return cache_key(question, **args)  # type: ignore[arg-type]


def _record(answer: str = "Two years [1].", cost: float = 0.0042) -> AnswerRecord:
    cite = Citation(1, "c1", "warranty.md", 2, "Terms", "The warranty lasts two years.", 0.91)
    return AnswerRecord(
        question="how long is the warranty?",
        standalone_question="How long is the warranty?",
        answer=answer,
        citations=[cite],
        sources=[cite],
        route=Route("flash", "gemini-3.8-flash", "context 1,200 tokens <= 24,000"),
        usage=Usage(prompt_tokens=1_200, output_tokens=40),
        cost_usd=cost,
        session_id="alice",
        corpus_version=3,
        history=[Message("user", "something private")],
    )


def test_question_normalisation_ignores_case_spacing_and_trailing_punctuation() -> None:
    assert normalise_question("  How LONG is\tthe   warranty ?! ") == "how long is the warranty"
    assert _key("how long is the warranty") == _key("How long is the WARRANTY?")
    assert _key("How long is the warranty?") != _key("How long is the guarantee?")


@pytest.mark.parametrize(
    "change",
    [
        {"corpus_version": 4},
        {"model": "gemini-3.1-pro-preview"},
        {"prompt_version": "answer-2"},
        {"retrieval_settings": dataclasses.replace(RETRIEVAL, top_k=8)},
        {"retrieval_settings": dataclasses.replace(RETRIEVAL, mode="bm25")},
        {"retrieval_settings": dataclasses.replace(RETRIEVAL, sources=("warranty.md",))},
    ],
)
def test_key_changes_with_everything_the_answer_depends_on(change: dict[str, object]) -> None:
    assert _key(**change).digest != _key().digest
    assert _key(**change).scope != _key().scope


def test_a_hit_returns_the_stored_answer_marked_as_cached(store_settings: Settings) -> None:
    cache = AnswerCache(store_settings)
    key = _key()
    assert cache.get(key) is None
    cache.put(key, _record())

    hit = cache.get(_key("how long is the warranty"))
    assert hit is not None
    assert hit.answer == "Two years [1]."
    assert hit.citations == _record().citations
    assert hit.usage == Usage(prompt_tokens=1_200, output_tokens=40)  # the original usage
    assert (hit.cached, hit.cost_usd, hit.saved_usd) == (True, 0.0, 0.0042)
    assert hit.route.kind == "cached" and hit.route.model == "gemini-3.8-flash"
    assert "answer cache" in hit.route.reason
    assert (hit.session_id, hit.history) == ("", [])  # one session's conversation is not shared


def test_a_new_corpus_version_never_sees_older_answers(store_settings: Settings) -> None:
    cache = AnswerCache(store_settings)
    cache.put(_key(corpus_version=3), _record())
    assert cache.get(_key(corpus_version=4)) is None


def test_records_are_stored_as_json(settings: Settings) -> None:
    cache = AnswerCache(settings)
    key = _key()
    cache.put(key, _record())
    raw = open_kv(settings, "cache").get(cache.table(key), key.digest)
    assert raw is not None
    assert json.loads(raw)["answer"] == "Two years [1]."


def test_an_entry_in_an_older_record_format_is_a_miss(settings: Settings) -> None:
    cache = AnswerCache(settings)
    cache.kv.put(cache.table(_key()), _key().digest, b'{"question": "q", "answer_text": "renamed field"}')
    assert cache.get(_key()) is None
    cache.put(_key(), _record())
    assert cache.get(_key()) is not None


def test_entries_expire_after_the_ttl(store_settings: Settings, clock: ManualClock) -> None:
    cache = AnswerCache(store_settings.model_copy(update={"cache_ttl_s": 60}), clock=clock)
    cache.put(_key(), _record())
    clock.advance(59)
    assert cache.get(_key()) is not None
    clock.advance(1)
    assert cache.get(_key()) is None


def test_the_oldest_entries_are_evicted_beyond_the_size_bound(store_settings: Settings, clock: ManualClock) -> None:
    cache = AnswerCache(store_settings.model_copy(update={"cache_max_entries": 3}), clock=clock)
    for n in range(5):
        clock.advance(1)
        cache.put(_key(f"question {n}"), _record(answer=f"answer {n}"))
    kept = [cache.get(_key(f"question {n}")) for n in range(5)]
    assert [r.answer if r else None for r in kept] == [None, None, "answer 2", "answer 3", "answer 4"]


def test_a_collections_answers_are_evicted_only_by_questions_of_that_collection(
    store_settings: Settings, clock: ManualClock
) -> None:
    """One bound for all collections let a key asking new questions of its own collection by
    the thousand evict the answers every other key's users had paid for."""
    cache = AnswerCache(store_settings.model_copy(update={"cache_max_entries": 2}), clock=clock)
    cache.put(_key("How long is the warranty?", collection="handbook"), _record())
    for n in range(5):
        clock.advance(1)
        cache.put(_key(f"question {n}", collection="flood"), _record(answer=f"answer {n}"))
    assert cache.get(_key("How long is the warranty?", collection="handbook")) is not None
    assert [n for n in range(5) if cache.get(_key(f"question {n}", collection="flood"))] == [3, 4]


def test_an_answers_key_names_its_collection(store_settings: Settings) -> None:
    from rag.cache import answer_key
    from rag.retrieval import Query

    query = Query.of("How long is the warranty?", store_settings, RETRIEVAL)
    key = answer_key(store_settings, "handbook", 3, query, "gemini-3.8-flash")
    assert (key.collection, key.corpus_version) == ("handbook", 3)


READER = """
import sys
from rag.answer import AskOptions
from rag.cache import AnswerCache, cache_key
from rag.settings import LocalRerankWeights, Settings
key = cache_key("How long is the warranty?", 3, "gemini-3.8-flash", "answer-1",
                AskOptions(mode="hybrid", top_k=6, mmr=False))
hit = AnswerCache(Settings(data_dir=sys.argv[1])).get(key)
print(hit.answer if hit else "MISS")
"""


@pytest.mark.slow
def test_the_sqlite_cache_survives_a_new_process(settings: Settings) -> None:
    AnswerCache(settings).put(_key(), _record())
    out = subprocess.run(
        [sys.executable, "-c", READER, str(settings.data_dir)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Two years [1]."


class CountingEmbedder:
    """The offline provider's embedder, counting the calls that reach it."""

    def __init__(self, provider: OfflineProvider, embedding_id: str | None = None) -> None:
        self.provider = provider
        self.embedding_id = embedding_id or provider.embedding_id
        self.calls: list[str] = []

    def embed_query(self, text: str) -> Embedded:
        self.calls.append(text)
        return self.provider.embed_query(text)


def test_a_repeated_question_makes_no_embedding_call(
    store_settings: Settings, offline_provider: OfflineProvider
) -> None:
    cache = EmbeddingCache(store_settings)
    embedder = CountingEmbedder(offline_provider)
    first = cache.embed_query(embedder, "How long is the warranty?")  # type: ignore[arg-type]
    again = cache.embed_query(embedder, "How long is the warranty?")  # type: ignore[arg-type]

    assert embedder.calls == ["How long is the warranty?"]
    assert again.vectors == first.vectors  # exactly, not approximately
    assert again.model == first.model
    assert again.usage == Usage() and first.usage.prompt_tokens > 0

    cache.embed_query(embedder, "How long is the warranty")  # type: ignore[arg-type]
    other_embedder = CountingEmbedder(offline_provider, embedding_id="gemini:gemini-embedding-001:768")
    cache.embed_query(other_embedder, "How long is the warranty?")  # type: ignore[arg-type]
    assert len(embedder.calls) == 2 and len(other_embedder.calls) == 1


def test_the_embedding_cache_has_its_own_size_bound(settings: Settings, offline_provider: OfflineProvider) -> None:
    cache = EmbeddingCache(settings.model_copy(update={"embed_cache_max_entries": 1}))
    embedder = CountingEmbedder(offline_provider)
    for text in ("first", "second", "first"):
        cache.embed_query(embedder, text)  # type: ignore[arg-type]
    assert embedder.calls == ["first", "second", "first"]


def test_cache_and_ledger_files_live_in_the_data_dir(settings: Settings) -> None:
    AnswerCache(settings).put(_key(), _record())
    assert (Path(settings.data_dir) / "cache.sqlite3").exists()


def test_on_the_gemini_path_a_repeated_question_sends_no_embedding_request(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    provider = GeminiProvider(gemini_settings)
    cache = EmbeddingCache(gemini_settings)
    first = cache.embed_query(provider, "What are the free-tier limits?")
    assert len(fake_gemini.calls("batchEmbedContents")) == 1

    again = cache.embed_query(provider, "What are the free-tier limits?")
    assert len(fake_gemini.calls("batchEmbedContents")) == 1
    assert again.vectors == first.vectors
    assert price_usd(gemini_settings, again.model, again.usage) == 0.0
    assert price_usd(gemini_settings, first.model, first.usage) > 0.0


# A changed value for every AskOptions field and every setting the answer key covers: a field
# added without a value here fails the coverage check, so it cannot be left out of the key.
OTHER_OPTIONS: dict[str, object] = {
    "collection": "other-corpus", "mode": "bm25", "top_k": 9, "mmr": True, "sources": ("handbook.pdf",),
    "model": "gemini-2.5-pro", "rerank": "none", "per_file": True,
}
OTHER_SETTINGS: dict[str, object] = {
    "retrieval_mode": "bm25", "top_k": 9, "overfetch": 3, "fusion": "rrf", "rrf_k": 10, "fusion_alpha": 0.7,
    "line_weight": 0.5,
    "mmr": True, "mmr_lambda": 0.3, "pro_threshold_tokens": 1_000, "whole_document_budget_tokens": 1_000,
    "rerank": "none", "rerank_depth": 10, "local_rerank": LocalRerankWeights(anchors=0.1),
    "lite_model": "gemini-3.1-flash-lite", "backend": "file-search",
}


@pytest.fixture
def two_collections(settings: Settings, offline_provider: OfflineProvider) -> Settings:
    from tests.fakes.tiny_corpus import build_store

    build_store(settings, offline_provider)
    build_store(settings, offline_provider, name="other-corpus")
    return settings.model_copy(update={"collection": "tiny-corpus"})


def _chain_key(settings: Settings, generator: OfflineProvider, options: AskOptions) -> str:
    from rag.chain import Chain

    chain = Chain(settings, generator)
    return chain.key(chain.stores.get(options.collection), "How many vacation days?", options).digest


def test_the_key_covers_every_ask_option_and_every_answer_shaping_setting(
    two_collections: Settings, offline_provider: OfflineProvider
) -> None:
    from rag.settings import ANSWER_SHAPING_SETTINGS

    never_cached = {"images"}  # the chain bypasses the cache for an answer about attached images
    not_shaping = {"follow_ups"}  # decides whether the prompt's prefix is cached, not what is answered
    assert set(OTHER_OPTIONS) == {f.name for f in dataclasses.fields(AskOptions)} - never_cached - not_shaping
    assert set(OTHER_SETTINGS) == set(ANSWER_SHAPING_SETTINGS)
    same = _chain_key(two_collections, offline_provider, AskOptions())
    assert _chain_key(two_collections, offline_provider, AskOptions()) == same  # the key is stable


def test_a_new_version_of_the_prompt_or_the_offline_answerer_changes_the_chain_key(
    two_collections: Settings, offline_provider: OfflineProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade whose offline answerer quotes or refuses otherwise served the old answer
    from the cache until the collection changed (a refusal of "creme brulee", after the fix)."""
    import rag.cache

    base = _chain_key(two_collections, offline_provider, AskOptions())
    monkeypatch.setattr(rag.cache, "ANSWERER_VERSION", "extractive-next")
    assert _chain_key(two_collections, offline_provider, AskOptions()) != base
    monkeypatch.undo()
    monkeypatch.setattr(rag.cache, "PROMPT_VERSION", "answer-next")
    assert _chain_key(two_collections, offline_provider, AskOptions()) != base


@pytest.mark.parametrize("field", sorted(OTHER_OPTIONS))
def test_changing_any_ask_option_changes_the_chain_key(
    field: str, two_collections: Settings, offline_provider: OfflineProvider
) -> None:
    base = _chain_key(two_collections, offline_provider, AskOptions())
    changed = AskOptions(**{field: OTHER_OPTIONS[field]})  # type: ignore[arg-type]
    assert _chain_key(two_collections, offline_provider, changed) != base


@pytest.mark.parametrize("name", sorted(OTHER_SETTINGS))
def test_changing_a_retrieval_or_routing_setting_changes_the_chain_key(
    name: str, two_collections: Settings, offline_provider: OfflineProvider
) -> None:
    base = _chain_key(two_collections, offline_provider, AskOptions())
    changed = two_collections.model_copy(update={name: OTHER_SETTINGS[name]})
    assert _chain_key(changed, offline_provider, AskOptions()) != base


def test_an_answer_ranked_after_the_gemini_reranking_failed_is_not_cached(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    """Before: the answer ranked in the local order because the reranking call failed was
    cached, so the same question got it again, the reranking untried, until it expired."""
    settings = gemini_settings.model_copy(update={"rerank": "gemini", "retrieval_mode": "hybrid"})
    provider = GeminiProvider(settings)
    chain = Chain(settings, provider, build_store(settings, provider))
    fake_gemini.responder = rank_by("vacation")
    fake_gemini.inject(Fault.server_error(503), times=None, method="generateContent", model=settings.lite_model)
    question = "How many days of paid vacation do employees get?"
    assert "the Gemini reranking failed (503" in chain.ask(question).route.reason

    fake_gemini.clear_faults()
    again = chain.ask(question)
    assert not again.cached and "reranking" not in again.route.reason
    assert len(fake_gemini.calls("generateContent", model=settings.lite_model)) == 1 + settings.max_attempts
    assert chain.ask(question).cached  # ranked by Gemini: kept as usual
