"""The budget holds for the answer actually sent (issue #14, item 1): checked after routing
against the chosen model and the counted prompt, with the output bounded, and reserved so
concurrent answers of one session cannot all pass before any is charged."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from ingest.pipeline import ingest_paths
from rag.chain import Chain
from rag.costs import price_usd
from rag.errors import BudgetExceeded
from rag.providers.gemini import GeminiProvider
from rag.rewrite import output_bound
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini
from rag.types import Message, Usage
from tests.fakes.gemini_cli import gemini_env, run
from tests.fakes.tiny_corpus import build_store

QUESTION = "How many days of paid vacation do employees get?"


def handbook(folder: Path, sections: int = 60) -> Path:
    """A long handbook (about 30,000 tokens): whole, it goes to Pro."""
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"## Section {n}\n\n" + " ".join(f"Rule {n}.{k} says employees file form {n}-{k} on time." for k in range(60))
        + "\n\n"
        for n in range(sections)
    )
    (folder / "employee-handbook.md").write_text("# Employee handbook\n\n" + body)
    return folder


@pytest.mark.slow
def test_summarising_a_whole_document_never_sends_pro_past_the_budget(
    gemini_settings: Settings, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    """Before: the estimate assumed Flash and top_k chunks, so a session with a few cents left
    sent the whole handbook to Pro; only the next question was refused. Now the router prices
    Pro on the counted document first: with too little left it answers from the best passages
    on Flash and says why (rag/headroom.py); with too little even for that, it refuses."""
    assert ingest_paths([handbook(tmp_path / "docs")], gemini_settings, GeminiProvider(gemini_settings)).exit_code == 0
    fake_gemini.clear_log()
    env = gemini_env(fake_gemini, gemini_settings.data_dir, session_budget_usd=0.03)  # a Flash answer fits
    done = run("rag", "ask", "Summarise the whole employee handbook", env=env)
    assert done.returncode == 0, done.stderr
    route = next(line for line in done.stdout.splitlines() if line.startswith("Route:"))
    assert route.startswith(f"Route: flash · {gemini_settings.flash_model}")
    assert "was not sent to Pro" in route and "budget left" in route
    assert [c.model for c in fake_gemini.calls("streamGenerateContent")] == [gemini_settings.flash_model]
    cost = float(re.search(r"Cost: \$([\d.]+)", done.stdout)[1])  # type: ignore[index]
    assert cost <= 0.03

    fake_gemini.clear_log()
    refused = run("rag", "ask", "Summarise the whole employee handbook",
                  env={**env, "GEMRAG_SESSION_BUDGET_USD": "0.001"})  # not even a Flash answer fits
    assert refused.returncode != 0, refused.stdout
    assert "session budget would be exceeded" in refused.stderr
    assert fake_gemini.calls("streamGenerateContent") == []
    allowed = run("rag", "ask", "Summarise the whole employee handbook", env={**env, "GEMRAG_SESSION_BUDGET_USD": "1"})
    assert allowed.returncode == 0, allowed.stderr
    assert f"Route: pro · {gemini_settings.pro_model}" in allowed.stdout
    [sent] = fake_gemini.calls("streamGenerateContent")
    assert sent.body["generationConfig"]["maxOutputTokens"] == gemini_settings.budget_output_tokens


def test_the_answer_call_carries_the_output_bound_the_budget_assumes(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    provider = GeminiProvider(gemini_settings)
    Chain(gemini_settings, provider, build_store(gemini_settings, provider)).ask(QUESTION)
    [sent] = fake_gemini.calls("streamGenerateContent")
    assert sent.body["generationConfig"]["maxOutputTokens"] == gemini_settings.budget_output_tokens


def test_concurrent_answers_of_one_session_cannot_all_pass_the_budget(
    store_settings: Settings, fake_gemini: FakeGemini
) -> None:
    """Before: each answer checked the spend so far (nothing yet) and all were sent."""
    settings = store_settings.model_copy(update={"api_key": SecretStr(TEST_API_KEY), "base_url": fake_gemini.url,
                                                  "tier": "unlimited", "answer_cache": False})
    provider = GeminiProvider(settings)
    store = build_store(settings, provider)
    with pytest.raises(BudgetExceeded) as refused:
        Chain(settings.model_copy(update={"session_budget_usd": 0.0}), provider, store).ask(QUESTION)
    one_answer = float(re.search(r"would cost about \$(\d+\.\d+)", str(refused.value)).group(1))  # type: ignore[union-attr]
    chain = Chain(settings.model_copy(update={"session_budget_usd": one_answer * 1.5}), provider, store)
    fake_gemini.ttft_s = 0.5  # all four are in flight together
    outcomes: list[str] = []

    def ask(n: int) -> None:
        try:
            chain.ask(f"{QUESTION} ({n})", session_id="shared")
            outcomes.append("answered")
        except BudgetExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["answered", "refused", "refused", "refused"]
    assert len(fake_gemini.calls("streamGenerateContent")) == 1
    spent = chain.ledger.session("shared")
    assert spent.held_usd == 0 and spent.cost_usd <= chain.settings.session_budget_usd


def test_pro_is_chosen_when_its_answer_fits_the_budget_the_first_hold_included(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    """Before: routing counted the answer's own first (Flash-sized) hold as spent, so with
    $0.075 and nothing spent a $0.063 Pro answer "did not fit the $0.057 left". Pro's hold
    replaces that one: Pro is chosen when its answer fits, and still never past the budget."""
    settings = gemini_settings.model_copy(update={"pro_threshold_tokens": 200, "answer_cache": False})
    provider = GeminiProvider(settings)
    store = build_store(settings, provider)
    probe = Chain(settings, provider, store).ask(QUESTION, session_id="probe")
    assert probe.route.kind == "pro"
    pro_usd = price_usd(settings, settings.pro_model, Usage(probe.route.prompt_tokens, settings.budget_output_tokens))
    with pytest.raises(BudgetExceeded) as refused:
        Chain(settings.model_copy(update={"session_budget_usd": 0.0}), provider, store).ask(QUESTION)
    first_hold = float(re.search(r"would cost about \$(\d+\.\d+)", str(refused.value))[1])  # type: ignore[index]

    # Less than Pro plus the first hold; its other calls (reranking) are a small part of it.
    fits = Chain(settings.model_copy(update={"session_budget_usd": pro_usd + first_hold / 2}), provider, store)
    assert fits.ask(QUESTION, session_id="fits").route.kind == "pro"
    short = Chain(settings.model_copy(update={"session_budget_usd": pro_usd - 0.000_001}), provider, store)
    flash = short.ask(QUESTION, session_id="short").route
    assert (flash.kind, flash.decision) == ("flash", "pro_budget")
    for chain, session in ((fits, "fits"), (short, "short")):
        spent = chain.ledger.session(session)
        assert spent.held_usd == 0 and spent.cost_usd <= chain.settings.session_budget_usd


def test_a_cached_answer_is_served_when_the_budget_is_spent(gemini_settings: Settings, fake_gemini: FakeGemini) -> None:
    """Before: with the default on_budget_spent ("refuse") the budget was checked before the
    cache, so an answer that costs nothing to serve was refused ("would cost about $0.0180")."""
    provider = GeminiProvider(gemini_settings)
    store = build_store(gemini_settings, provider)
    first = Chain(gemini_settings, provider, store).ask(QUESTION, session_id="rich")
    fake_gemini.clear_log()
    spent = gemini_settings.model_copy(update={"session_budget_usd": 0.00001})
    poor = Chain(spent, GeminiProvider(spent), store)
    record = poor.ask(QUESTION, session_id="poor")
    assert (record.answer, record.cached, record.route.kind) == (first.answer, True, "cached")
    assert record.route.decision == ""  # an ordinary hit: the budget changed nothing
    assert fake_gemini.requests == []
    assert poor.ledger.session("poor").cost_usd == 0 and poor.ledger.session("poor").cache_hits == 1


def test_a_refused_follow_up_says_its_cost_includes_the_rewrite_before_the_cache(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    """A follow-up's cache key is its standalone form, a paid rewrite away: with the budget
    spent it is refused before that call, and the refusal says what the cost is for."""
    spent = gemini_settings.model_copy(update={"session_budget_usd": 0.00001})
    provider = GeminiProvider(spent)
    chain = Chain(spent, provider, build_store(spent, provider))
    history = [Message("user", QUESTION), Message("model", "25 days [1].")]
    with pytest.raises(BudgetExceeded) as refused:
        chain.ask("Can they be carried over?", history=history, session_id="poor")
    assert "session budget would be exceeded" in str(refused.value)
    assert re.search(r"That is for rewriting this follow-up as a standalone question \(about \$0\.0\d+\), "
                     r"a paid call needed before the answer cache can be looked up, and for answering it "
                     r"\(about \$0\.\d+\)\.$", str(refused.value))
    assert fake_gemini.calls("generateContent") == [] and fake_gemini.calls("streamGenerateContent") == []


def test_a_follow_up_rewrite_is_sent_with_the_output_bound_it_is_held_against(
    gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    """The rewrite went out with no maxOutputTokens: a model that wrote on billed 30,000 output
    tokens past a session's budget, and its text became the "question"."""
    provider = GeminiProvider(gemini_settings)
    chain = Chain(gemini_settings, provider, build_store(gemini_settings, provider))
    history = [Message("user", QUESTION), Message("model", "25 days [1].")]
    chain.ask("Can they be carried over?", history=history, session_id="s")
    [rewrite] = fake_gemini.calls("generateContent", model=gemini_settings.lite_model)
    assert rewrite.body["generationConfig"]["maxOutputTokens"] == output_bound("Can they be carried over?")
