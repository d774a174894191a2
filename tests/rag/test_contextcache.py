"""Explicit context caching on the Gemini path, against the fake server: a whole document is
cached once per session, reused by follow-ups, charged (cached tokens and storage) and deleted
at the session's end or its TTL, and not created where it would not pay."""

import pytest

from rag.answer import AskOptions
from rag.chain import Chain
from rag.contextcache import ContextCache
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import Fault, rewrites_as_asked
from rag.types import Message
from tests.fakes.clock import ManualClock
from tests.fakes.gemini_cli import gemini_env, run
from tests.fakes.tiny_corpus import DOCS, Doc, build_store

PRO = Settings().pro_model
TOPICS = ("calibration", "lubrication", "alignment", "inspection", "storage", "transport", "cleaning", "wiring",
          "firmware", "safety", "noise", "cooling", "filters", "belts", "sensors", "pumps", "valves", "seals")
# A long manual (about 6,000 tokens as the fake counts them, above Pro's 4,096-token minimum),
# one page per topic, beside the tiny corpus's short documents.
MANUAL = tuple(
    Doc("manual.pdf", f"The {topic} procedure of the X200 press is described on this page. "
        + " ".join(f"Step {i} of {topic} checks part {i} of the press and records the reading." for i in range(25)),
        page)
    for page, topic in enumerate(TOPICS, start=1)
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def chain(gemini_settings, fake_gemini, clock) -> Chain:
    fake_gemini.clock = clock
    fake_gemini.responder = rewrites_as_asked
    provider = GeminiProvider(gemini_settings)
    store = build_store(gemini_settings, provider, docs=DOCS + MANUAL)
    return Chain(gemini_settings, provider, store, contexts=ContextCache(gemini_settings, provider, clock))


def ask(chain, question, history=(), session="s1", **options):
    record = chain.ask(question, list(history), session, AskOptions(**options))
    return record, [*history, Message("user", question), Message("model", record.answer)]


def answers_to(fake):
    return [c for c in fake.calls("streamGenerateContent") if c.model == PRO]


def test_a_whole_document_is_cached_once_per_session_and_reused_by_its_follow_ups(chain, fake_gemini):
    first, history = ask(chain, "Summarise the whole manual.pdf")
    [created] = fake_gemini.calls("createCachedContent")
    [name] = fake_gemini.caches
    assert first.route.kind == "pro"
    assert f"cached context: created {name}" in first.route.reason
    assert created.body["ttl"] == "900s" and created.body["model"] == f"models/{PRO}"
    assert "lubrication procedure" in created.body["contents"][0]["parts"][0]["text"]  # the document itself
    follow_ups = ["What does the manual say about calibration?", "How is lubrication checked?",
                  "Which step of the alignment records the reading?", "What about the cooling procedure?"]
    for question in follow_ups:
        record, history = ask(chain, question, history)
        assert record.route.kind == "pro"
        assert "a follow-up about the whole of manual.pdf" in record.route.reason
        assert f"cached context: reused {name}" in record.route.reason
        assert record.usage.cached_tokens == fake_gemini.caches[name].tokens
    assert len(fake_gemini.calls("createCachedContent")) == 1  # created once, for all five answers
    sent = answers_to(fake_gemini)
    assert len(sent) == 5
    for request in sent:  # each answer names the cache and sends only the conversation after it
        assert request.body["cachedContent"] == name
        assert "systemInstruction" not in request.body
        assert "lubrication procedure" not in str(request.body["contents"])


def test_the_ledger_shows_cached_tokens_and_storage(chain, fake_gemini, gemini_settings):
    _, history = ask(chain, "Summarise the whole manual.pdf")
    ask(chain, "What does the manual say about calibration?", history)
    [cached] = fake_gemini.caches.values()
    totals = chain.ledger.session("s1")
    billed = [b for b in fake_gemini.billed if b.model == PRO]
    assert totals.usage.cached_tokens == sum(b.cached_tokens for b in billed) == 2 * cached.tokens
    storage = cached.tokens * 4.50 * (900 / 3600) / 1_000_000  # $4.50 per 1M tokens per hour, 15 min
    assert totals.storage_usd == pytest.approx(storage, rel=1e-6)
    creation = cached.tokens * 2.00 / 1_000_000 + storage
    answers = sum((b.prompt_tokens - b.cached_tokens) * 2.00 + b.cached_tokens * 0.20
                  + (b.output_tokens + b.thinking_tokens) * 12.00 for b in billed) / 1_000_000
    pro = chain.ledger.models("s1")[PRO]
    assert pro.cost_usd == pytest.approx(creation + answers, rel=1e-6)
    assert pro.cache_saved_usd == pytest.approx(2 * cached.tokens * 1.80 / 1_000_000, rel=1e-6)


def test_the_cache_is_deleted_when_the_session_ends(chain, fake_gemini):
    ask(chain, "Summarise the whole manual.pdf")
    ask(chain, "Summarise the entire manual.pdf", session="s2")  # another question: no answer-cache hit
    assert len(fake_gemini.caches) == 2  # one per session
    chain.end_session("s1")
    [deleted] = fake_gemini.calls("deleteCachedContent")
    assert deleted.status == 200 and len(fake_gemini.caches) == 1
    chain.end_session("s1")  # nothing left to delete
    assert len(fake_gemini.calls("deleteCachedContent")) == 1


def test_the_cache_is_dropped_when_its_ttl_passes(chain, fake_gemini, clock):
    _, history = ask(chain, "Summarise the whole manual.pdf")
    [first] = fake_gemini.caches
    clock.advance(901)
    assert fake_gemini.caches == {}  # the API let it expire
    record, _ = ask(chain, "What does the manual say about calibration?", history)
    [deleted] = fake_gemini.calls("deleteCachedContent")  # forgotten, and deleted in case it outlived us
    assert deleted.path.endswith(first)
    [second] = fake_gemini.caches  # the follow-up still sends the whole manual: a new one for those to come
    assert second != first and f"cached context: created {second}" in record.route.reason
    assert answers_to(fake_gemini)[-1].body["cachedContent"] == second


def test_a_short_document_is_not_cached(chain, fake_gemini):
    record, _ = ask(chain, "Summarise the whole handbook.pdf")
    assert "whole of handbook.pdf" in record.route.reason
    assert "below gemini-3.1-pro-preview's 4,096-token minimum" in record.route.reason
    assert fake_gemini.calls("createCachedContent") == []
    assert chain.ledger.session("s1").storage_usd == 0


def test_no_cache_for_a_single_question(chain, fake_gemini):
    one_shot, _ = ask(chain, "Summarise the whole manual.pdf", follow_ups=0)  # the CLI's ask
    assert "no follow-up question expected" in one_shot.route.reason
    ask(chain, "Summarise the entire manual.pdf", session="")  # no session to follow up in
    assert fake_gemini.calls("createCachedContent") == []
    assert "systemInstruction" in answers_to(fake_gemini)[-1].body


def test_no_cache_when_the_storage_would_cost_more_than_the_follow_ups_save(gemini_settings, fake_gemini, clock):
    settings = gemini_settings.model_copy(update={"context_cache_ttl_s": 6 * 3600, "context_cache_followups": 1})
    provider = GeminiProvider(settings)
    store = build_store(settings, provider, docs=MANUAL)
    chain = Chain(settings, provider, store, contexts=ContextCache(settings, provider, clock))
    record, _ = ask(chain, "Summarise the whole manual.pdf")
    assert "no cached context: 1 expected follow-ups would save $0.01" in record.route.reason
    assert "keeping" in record.route.reason and "for 360 min" in record.route.reason
    assert fake_gemini.calls("createCachedContent") == []


def test_a_failed_creation_leaves_the_answer_uncached(chain, fake_gemini):
    fake_gemini.inject(Fault(400, "INVALID_ARGUMENT", "bad cache"), method="createCachedContent")
    record, _ = ask(chain, "Summarise the whole manual.pdf")
    assert "no cached context: creating it failed" in record.route.reason
    assert record.answer and "systemInstruction" in answers_to(fake_gemini)[-1].body
    assert chain.ledger.session("s1").storage_usd == 0


@pytest.mark.slow
def test_the_cli_chat_caches_for_its_follow_ups_and_deletes_at_exit(gemini_settings, fake_gemini):
    build_store(gemini_settings, GeminiProvider(gemini_settings), docs=DOCS + MANUAL)
    fake_gemini.responder = rewrites_as_asked
    env = gemini_env(fake_gemini, gemini_settings.data_dir, collection="tiny-corpus")
    chat = run("rag", "chat", env=env,
               stdin="Summarise the whole manual.pdf\nWhat does the manual say about calibration?\nexit\n")
    assert chat.returncode == 0, chat.stderr
    assert "cached context: created cachedContents/" in chat.stdout
    assert "cached context: reused cachedContents/" in chat.stdout
    assert len(fake_gemini.calls("createCachedContent")) == len(fake_gemini.calls("deleteCachedContent")) == 1
    assert fake_gemini.caches == {}
    one_shot = run("rag", "ask", "Summarise the entire manual.pdf", env=env)
    assert one_shot.returncode == 0, one_shot.stderr
    assert "no cached context: no follow-up question expected" in one_shot.stdout
    assert len(fake_gemini.calls("createCachedContent")) == 1
