"""The UI over the Gemini path, against the fake Gemini server: the route, tokens and errors
a user sees, and the key never in anything sent to the page."""

from __future__ import annotations

import base64
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from ingest.pipeline import ingest_paths
from rag.backend import Backend
from rag.costs import dollars
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini, Fault
from rag.types import THINKING_ALLOWANCE_TOKENS
from tests.conftest import TEST_API_KEY
from tests.ui.conftest import write_corpus
from tests.ui.test_handlers import linked_image
from ui.handlers import Handlers
from ui.session import SessionState
from ui.suggest import MAX_SUGGESTIONS
from ui.suggest import SESSION as SUGGESTIONS

QUESTION = "Where is the office badge collected?"


@pytest.fixture
def handlers(gemini_settings: Settings, tmp_path: Path) -> Handlers:
    provider = GeminiProvider(gemini_settings)
    assert ingest_paths([write_corpus(tmp_path / "corpus")], gemini_settings, provider).exit_code == 0
    return Handlers(gemini_settings, Backend.build(gemini_settings, provider))


def test_a_gemini_answer_shows_flash_its_tokens_and_its_sources(handlers: Handlers, fake_gemini: FakeGemini) -> None:
    state = SessionState()
    *_, final = handlers.respond(QUESTION, state, "corpus", "hybrid", 4, "")
    chat, _, _, _, _, details, sources, _, _, _, _, totals = final
    assert "gemini-3.8-flash · Flash" in chat
    assert "data-route='flash'" in details and "onboarding.pdf" in sources
    record = state.turns[0].record
    assert record is not None and record.usage.total_tokens > 0 and record.cost_usd > 0
    assert f"<b>{record.usage.total_tokens:,}</b>" in totals and f"<b>{dollars(record.cost_usd)}</b>" in totals
    assert f"cost {dollars(record.cost_usd)}" in chat
    assert len(fake_gemini.calls("streamGenerateContent")) == 1
    assert TEST_API_KEY not in str(final)


def test_a_follow_up_shows_its_rewrite_and_answers_add_up_to_the_session_total(
    handlers: Handlers, fake_gemini: FakeGemini
) -> None:
    state = SessionState()
    fake_gemini.reply("The office badge is collected from the reception desk on the second floor [1].")
    list(handlers.respond(QUESTION, state, "corpus", "hybrid", 4, ""))
    fake_gemini.reply("What fee is charged for a lost office badge?")  # the rewrite call
    fake_gemini.reply("A lost badge is replaced for a fee of 25 euros [1].")
    *_, final = handlers.respond("And if I lose it?", state, "corpus", "hybrid", 4, "")
    assert "Searched as: What fee is charged for a lost office badge?" in final[0]
    follow_up = state.turns[1]
    assert follow_up.record is not None and follow_up.spent_usd is not None
    assert follow_up.spent_usd == pytest.approx(follow_up.record.cost_usd)  # rewrite + embedding + answer
    assert len(fake_gemini.calls("generateContent")) == 1  # the rewrite was a paid call of its own
    total = handlers.backend.ledger.session(state.session_id).cost_usd
    assert sum(t.spent_usd or 0 for t in state.turns) == pytest.approx(total)
    assert f"cost {dollars(follow_up.spent_usd)}" in final[0]


def test_a_forced_model_goes_to_that_model(handlers: Handlers, fake_gemini: FakeGemini) -> None:
    *_, final = handlers.respond(QUESTION, SessionState(), "corpus", "hybrid", 4, "gemini-3.1-pro-preview")
    assert "gemini-3.1-pro-preview · your choice" in final[0] and "· Flash" not in final[0]
    assert [c.model for c in fake_gemini.calls("streamGenerateContent")] == ["gemini-3.1-pro-preview"]


def test_quota_and_key_errors_read_as_messages_in_the_chat(handlers: Handlers, fake_gemini: FakeGemini) -> None:
    state = SessionState()
    fake_gemini.inject(Fault.rate_limited("0s"), times=None, method="streamGenerateContent")
    *_, final = handlers.respond(QUESTION, state, "corpus", "hybrid", 4, "")
    message = final[0]
    assert "class='error' role='alert'" in message and "gemini-3.8-flash" in message and "Traceback" not in message
    fake_gemini.clear_faults()
    fake_gemini.inject(Fault.invalid_key(), times=None, method="streamGenerateContent")
    *_, final = handlers.respond(QUESTION, state, "corpus", "hybrid", 4, "")
    message = final[0]
    assert "GEMINI_API_KEY" in message and TEST_API_KEY not in message
    assert state.history() == []


def test_a_spent_budget_is_refused_in_the_chat_before_any_model_call(
    gemini_settings: Settings, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    provider = GeminiProvider(gemini_settings)  # ingest is held to the budgets too: it comes first
    assert ingest_paths([write_corpus(tmp_path / "corpus")], gemini_settings, provider).exit_code == 0
    settings = gemini_settings.model_copy(update={"session_budget_usd": 0.000001})
    provider = GeminiProvider(settings)
    handlers = Handlers(settings, Backend.build(settings, provider))
    fake_gemini.clear_log()
    photo = tmp_path / "badge.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(photo)
    *_, final = handlers.respond(QUESTION, SessionState(), "corpus", "hybrid", 4, "", str(photo))
    message = final[0]
    assert "role='alert'>Refused before calling the model: the session budget would be exceeded" in message
    assert final[1] == QUESTION and final[4] == {"__type__": "update"}  # the question and its image kept to retry
    assert "GEMRAG_SESSION_BUDGET_USD" in message and fake_gemini.requests == []
    assert "<b>$0.0000</b>" in final[-1]  # nothing was charged


def test_with_a_key_the_cheap_model_writes_the_suggestions_once_per_corpus_version(
    handlers: Handlers, fake_gemini: FakeGemini, gemini_settings: Settings, tmp_path: Path
) -> None:
    fake_gemini.reply("Where is the office badge collected?\n- How many vacation days are there?\n3. What is X?")
    first = handlers.load(SessionState())[0]
    assert "data-q='Where is the office badge collected?'" in first and "How many vacation days are there?" in first
    calls = fake_gemini.calls("generateContent")
    assert [c.model for c in calls] == [gemini_settings.lite_model]
    assert calls[0].body["generationConfig"]["maxOutputTokens"] == 60 * MAX_SUGGESTIONS + THINKING_ALLOWANCE_TOKENS
    assert handlers.backend.ledger.session(SUGGESTIONS).cost_usd > 0  # paid, and recorded
    assert handlers.load(SessionState())[0] == first  # cached: no second call
    assert len(fake_gemini.calls("generateContent")) == 1

    (tmp_path / "corpus" / "canteen.md").write_text("# Canteen\n\nLunch is served from 11:30 on floor 5.\n")
    ingest_paths([tmp_path / "corpus"], gemini_settings, handlers.backend.embedder_for("corpus"))  # new version
    fake_gemini.reply("When is lunch served?")
    assert "When is lunch served?" in handlers.load(SessionState())[0]
    fake_gemini.inject(Fault.invalid_key(), times=None, method="generateContent")
    (tmp_path / "corpus" / "canteen.md").write_text("# Canteen\n\nLunch is served from 12:00 on floor 5.\n")
    ingest_paths([tmp_path / "corpus"], gemini_settings, handlers.backend.embedder_for("corpus"))
    assert "data-act='ask'" in handlers.load(SessionState())[0]  # the model failed: headings instead


def test_an_attached_image_reaches_gemini_with_the_documents_and_is_never_cached(
    handlers: Handlers, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    photo = tmp_path / "badge.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(photo)
    question = "Is this the badge the onboarding guide describes?"
    for _ in range(2):  # two sessions, so no follow-up rewrite: the same question twice
        fake_gemini.reply("It is a red square; the guide says badges come from reception [1].")
        *_, final = handlers.respond(question, SessionState(), "corpus", "hybrid", 4, "", str(photo))
        assert "(with 1 image)" in final[0] and final[4] == {"__type__": "update", "value": None}
    calls = fake_gemini.calls("streamGenerateContent")
    assert len(calls) == 2  # the same question with an image is asked again, not served from the cache
    parts = calls[-1].body["contents"][-1]["parts"]
    assert "onboarding.pdf" in parts[0]["text"]  # the documents as context
    inline = parts[1]["inlineData"]  # the SDK spells its fields mime_type, which the API also takes
    assert inline["data"] == base64.b64encode(photo.read_bytes()).decode()
    assert (inline.get("mimeType") or inline.get("mime_type")) == "image/png"


def test_offline_the_image_box_is_disabled_and_says_why(ui_settings: Settings) -> None:
    from rag.providers.offline import OfflineProvider
    from ui.app import IMAGE_OFFLINE, build_app

    demo = build_app(ui_settings, Backend.build(ui_settings, OfflineProvider()))
    (attach,) = [c for c in demo.config["components"] if c["props"].get("elem_id") == "attach"]
    assert attach["props"]["interactive"] is False and attach["props"]["label"] == IMAGE_OFFLINE
    assert "Gemini key" in IMAGE_OFFLINE


def test_an_uploaded_image_is_described_and_an_uploaded_deck_cited_by_slide(
    handlers: Handlers, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    from tests.fakes.media import pptx

    chart = tmp_path / "chart.png"
    Image.new("RGB", (400, 300), (0, 0, 255)).save(chart)
    summary, *_ = handlers.upload([str(chart), str(pptx(tmp_path / "deck.pptx"))], "corpus", SessionState())

    assert "chart.png: added, 1 chunk" in summary and "deck.pptx: added, 3 chunks" in summary
    assert "1 chunks" not in summary
    assert "1 figures and scans read by Gemini" in summary
    described = [c for c in fake_gemini.calls("generateContent") if "inlineData" in str(c.body)]
    assert [c.model for c in described] == ["gemini-3.5-flash-lite"]
    figure = next(c for c in handlers.backend.stores.get("corpus").chunks() if c.source == "chart.png")
    assert figure.kind == "figure" and figure.text == "Figure: An image of 400x300 pixels, mostly #0000ff."

    state = SessionState()
    list(handlers.respond("What shows an image of 400x300 pixels, mostly blue?", state, "corpus", "hybrid", 4, ""))
    assert state.turns[0].record.citations[0].place == "figure"
    _, _, image, viewer, _, *_ = handlers.act(state, gr.SelectData(None, {"index": [0, "cite"], "value": "1"}))
    assert image["visible"] and "alt='chart.png, figure'" in image["value"]  # the image itself, as a preview copy
    with Image.open(linked_image(handlers.settings, image["value"])) as shown:
        assert shown.size == (400, 300)
    assert "chart.png" in viewer and "figure" in viewer and "400x300 pixels" in viewer


@pytest.fixture
def impatient_handlers(gemini_settings: Settings, tmp_path: Path) -> Handlers:
    """Handlers that stop waiting for a reply after a second (the fake's slow replies take 1.5 s)."""
    settings = gemini_settings.model_copy(update={"request_timeout_s": 1.0})
    provider = GeminiProvider(settings)
    assert ingest_paths([write_corpus(tmp_path / "corpus")], settings, provider).exit_code == 0
    return Handlers(settings, Backend.build(settings, provider))


def test_a_suggestions_attempt_abandoned_on_timeout_is_charged_though_its_retry_answered(
    impatient_handlers: Handlers, fake_gemini: FakeGemini, gemini_settings: Settings
) -> None:
    """Google may serve and bill a call the client stopped waiting for: only the retry was in
    the ledger."""
    lite = gemini_settings.lite_model
    fake_gemini.inject(Fault.slow(1.5), times=1, method="generateContent", model=lite)
    fake_gemini.reply("Where is the office badge collected?", "Where is the office badge collected?")
    assert "data-q='Where is the office badge collected?'" in impatient_handlers.load(SessionState())[0]
    billed = fake_gemini.billed_for(lite, count=2)
    spent = impatient_handlers.backend.ledger.models(SUGGESTIONS)[lite]
    assert (len(billed), spent.calls) == (2, 2)
    assert spent.usage.prompt_tokens == pytest.approx(sum(b.prompt_tokens for b in billed), rel=0.25)


def test_suggestions_whose_every_attempt_timed_out_fall_back_to_headings_and_each_attempt_is_charged(
    impatient_handlers: Handlers, fake_gemini: FakeGemini, gemini_settings: Settings
) -> None:
    lite = gemini_settings.lite_model
    fake_gemini.inject(Fault.slow(1.5), times=None, method="generateContent", model=lite)
    assert "data-act='ask'" in impatient_handlers.load(SessionState())[0]  # the headings' questions
    attempts = len(fake_gemini.calls("generateContent", model=lite))
    billed = fake_gemini.billed_for(lite, count=attempts)
    spent = impatient_handlers.backend.ledger.models(SUGGESTIONS)[lite]
    assert attempts >= 2 and (spent.calls, spent.usage.output_tokens) == (attempts, 0)
    assert spent.usage.prompt_tokens == pytest.approx(sum(b.prompt_tokens for b in billed), rel=0.25)
    assert impatient_handlers.backend.ledger.session(SUGGESTIONS).held_usd == 0  # the hold is settled
