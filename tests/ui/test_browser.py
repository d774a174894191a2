"""The app driven by a real Chromium: streaming, sources with pages, counters, stop, upload,
hostile documents, and two sessions at once. Screenshots go to a temp dir (path printed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from playwright.sync_api import Browser, Page

from ingest.pipeline import ingest_paths
from rag.chain import Chain
from rag.providers.gemini import GeminiProvider
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.conftest import TEST_API_KEY
from tests.ui.conftest import HOSTILE_QUESTION, write_corpus
from tests.ui.test_app import free_port
from ui.app import build_app, launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STREAM_DELAY_S = 0.04  # per word, so a person (and this test) can watch the answer grow
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def app_url(ui_settings: Settings) -> Iterator[str]:
    demo: gr.Blocks = build_app(ui_settings, Chain(ui_settings, OfflineProvider(stream_delay_s=STREAM_DELAY_S)))
    port = free_port()
    launch(demo, ui_settings, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    demo.close()


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.locator("#question textarea").wait_for()
    return page


def ask(page: Page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


def answers(page: Page) -> list[str]:
    return page.locator('[data-testid="bot"]').all_inner_texts()


def watch_answer(page: Page, count: int) -> list[str]:
    """Every distinct text the `count`-th answer showed until it finished (its footer)."""
    seen: list[str] = []
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        texts = answers(page)
        if len(texts) >= count:
            if not seen or texts[count - 1] != seen[-1]:
                seen.append(texts[count - 1])
            if "first token" in seen[-1]:
                return seen
        time.sleep(0.03)
    raise AssertionError(f"answer {count} did not finish; last seen: {seen[-1:] or 'nothing'}")


def stat(page: Page, name: str) -> str:
    return page.locator(f"#totals [data-stat='{name}'] b").inner_text()


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_chat_streams_cites_pages_counts_stops_uploads_and_runs_no_document_html(
    browser: Browser, app_url: str, shots: Path, tmp_path: Path, ui_settings: Settings
) -> None:
    page = open_page(browser, app_url)
    page.add_init_script("window.__pwned = undefined")
    assert page.locator("#offline-banner").inner_text().startswith("Offline mode.")
    assert stat(page, "tokens") == "0"
    page.screenshot(path=shots / "01-empty.png")

    # 1. A handbook question: the answer streams in, then sources with pages and counters.
    ask(page, "Where is the office badge collected?")
    seen = watch_answer(page, 1)
    final = seen[-1]
    partial = [s for s in seen[:-1] if s.strip() and "Searching" not in s]
    assert partial, f"no partial answer was ever shown: {seen}"
    assert any(len(p) < len(final) and final.startswith(p.strip()[:20]) for p in partial)
    assert "second floor" in final
    sources = page.locator("#sources").inner_text()
    assert "onboarding.pdf · page 3" in sources
    assert "second floor" in page.locator("#passage").inner_text()
    assert stat(page, "answers") == "1" and int(stat(page, "tokens").replace(",", "")) > 0
    assert page.locator("#details").inner_text().count("offline") >= 1
    page.screenshot(path=shots / "02-answer-with-sources.png")

    # 2. Clicking another citation shows that passage.
    other = page.locator("#citations label").nth(1)
    other_label = other.inner_text()
    other.click()
    page.wait_for_function(
        "n => document.querySelector('#passage [data-n]')?.dataset.n === n", arg=other_label[1]
    )
    page.screenshot(path=shots / "03-other-citation.png")

    # 3. Stop: the partial text stays, marked stopped, and stops growing.
    ask(page, "How many days of paid vacation does every employee get per year?")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll('[data-testid=bot]'); "
        "return b.length === 2 && b[1].innerText.includes('Based on'); }"
    )
    page.locator("#stop").click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=bot]')[1].innerText.includes('(stopped)')"
    )
    stopped = answers(page)[1]
    time.sleep(1.0)
    assert answers(page)[1] == stopped and "first token" not in stopped
    assert stat(page, "answers") == "1"  # a stopped answer is not counted as one
    page.screenshot(path=shots / "04-stopped.png")

    # 4. A document full of HTML is shown as text and runs nothing.
    ask(page, HOSTILE_QUESTION)
    hostile = watch_answer(page, 3)[-1]
    assert "<script>" in hostile or "<img src=x" in hostile
    open_tab(page, "Sources")
    page.locator("#citations label", has_text="hostile.md").first.click()
    page.wait_for_function("() => document.querySelector('#passage').innerText.includes('<script>')")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0 and page.locator("#chat script").count() == 0
    page.screenshot(path=shots / "05-hostile-document-as-text.png")

    # 5. Clicking an earlier answer shows its sources again.
    page.locator('[data-testid="bot"]').first.click()
    page.wait_for_function(
        "() => document.querySelector('#sources').innerText.includes('office badge')"
    )

    # 6. Upload a file, see it in the corpus, and ask about it.
    canteen = tmp_path / "canteen menu.md"
    canteen.write_text("# Canteen\n\nThe canteen serves lunch from 11:30 to 14:00 on weekdays, on floor 5.\n")
    open_tab(page, "Corpus")
    page.locator("#upload input[type=file]").set_input_files(str(canteen))
    page.locator("#upload-status", has_text="canteen menu.md: added").wait_for()
    assert (ui_settings.data_dir / "uploads" / "corpus" / "canteen menu.md").exists()
    assert not list((ui_settings.data_dir / "gradio").rglob("*.md"))  # Gradio's own copy is gone
    assert "4" in page.locator("#corpus tr[data-collection='corpus'] td").nth(1).inner_text()
    page.screenshot(path=shots / "06-uploaded.png")
    ask(page, "When does the canteen serve lunch?")
    assert "11:30" in watch_answer(page, 4)[-1]
    open_tab(page, "Sources")
    assert "canteen menu.md" in page.locator("#sources").inner_text()
    page.screenshot(path=shots / "07-answer-from-upload.png")
    page.close()


def test_two_browser_sessions_keep_separate_histories_and_costs(
    browser: Browser, app_url: str, shots: Path
) -> None:
    first, second = (browser.new_context().new_page() for _ in range(2))
    questions = {first: "How much may a hotel night cost without approval?", second: "What does a lost badge cost?"}
    for page in questions:
        page.set_default_timeout(WAIT_MS)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(app_url)
        page.locator("#question textarea").wait_for()
    for page, question in questions.items():
        ask(page, question)  # both stream at the same time
    for page, question in questions.items():
        footer = watch_answer(page, 1)[-1]
        chat = page.locator("#chat").inner_text()
        others = [q for p, q in questions.items() if p is not page]
        assert question in chat and all(q not in chat for q in others)
        assert stat(page, "answers") == "1"
        assert f"{stat(page, 'tokens')} tokens" in footer  # this session's answer alone
    first.screenshot(path=shots / "08-session-a.png")
    second.screenshot(path=shots / "09-session-b.png")
    ask(first, "And who approves it?")
    watch_answer(first, 2)
    assert stat(first, "answers") == "2" and stat(second, "answers") == "1"
    assert len(answers(second)) == 1
    first.locator("#chat button[aria-label='Clear']").click()
    first.wait_for_function("() => document.querySelectorAll('[data-testid=bot]').length === 0")
    assert stat(first, "answers") == "2"  # a cleared chat was still paid for
    ask(first, "Which floor is the reception desk on?")
    watch_answer(first, 1)
    assert len(answers(first)) == 1 and stat(first, "answers") == "3"

def test_gemini_answers_show_cost_and_a_repeated_question_is_served_from_cache(
    browser: Browser, gemini_settings: Settings, fake_gemini: FakeGemini, tmp_path: Path, shots: Path
) -> None:
    provider = GeminiProvider(gemini_settings)
    assert ingest_paths([write_corpus(tmp_path / "corpus")], gemini_settings, provider).exit_code == 0
    demo = build_app(gemini_settings, Chain(gemini_settings, provider))
    port = free_port()
    launch(demo, gemini_settings, "127.0.0.1", port)
    try:
        fake_gemini.reply("The office badge is collected from the reception desk on the second floor [1].")
        page = open_page(browser, f"http://127.0.0.1:{port}")
        assert not page.locator("#offline-banner").is_visible()
        ask(page, "Where is the office badge collected?")
        first = watch_answer(page, 1)[-1]
        assert "gemini-3.8-flash · Flash" in first and "second floor" in first
        cost = float(stat(page, "cost").lstrip("$"))
        assert cost > 0 and stat(page, "cache-hits") == "0"
        page.screenshot(path=shots / "10-gemini-answer.png")
        calls = len(fake_gemini.calls("streamGenerateContent"))

        fake_gemini.reply("Where is the office badge collected?")  # the follow-up rewrite: already standalone
        ask(page, "Where is the office badge collected?")
        second = watch_answer(page, 2)[-1]
        assert "cached answer" in second and "saved $" in second
        assert len(fake_gemini.calls("streamGenerateContent")) == calls  # no model call
        assert stat(page, "cache-hits") == "1" and float(stat(page, "saved").lstrip("$")) > 0
        assert float(stat(page, "cost").lstrip("$")) < 2 * cost  # only the small rewrite call was paid
        assert "data-route=\"cached\"" in page.locator("#details").inner_html()
        page.screenshot(path=shots / "11-gemini-cached.png")
        assert TEST_API_KEY not in page.content()
    finally:
        demo.close()
