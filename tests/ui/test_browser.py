"""The app driven by a real Chromium (conftest.py): the first screen, citation chips that open
the PDF page with the cited sentence highlighted, ratings that reach `python -m rag.eval feedback`, Ask
and Stop, hostile documents, a 400 px phone, the keyboard alone, uploads, two sessions and
the Gemini path. Screenshots of each state go to a temp dir (path printed), and also to
$GEMRAG_SCREENSHOTS when set (how docs/screenshots/ is refreshed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from ingest.pipeline import ingest_paths
from rag.backend import Backend
from rag.providers.gemini import GeminiProvider
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.conftest import TEST_API_KEY
from tests.ui.conftest import HOSTILE_QUESTION, Shots, write_corpus
from tests.ui.test_app import free_port
from ui.app import build_app, launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STREAM_DELAY_S = 0.04  # per word, so a person (and this test) can watch the answer grow
WAIT_MS = 60_000
DESKTOP = {"width": 1200, "height": 820}
PHONE = {"width": 400, "height": 860}
BADGE = "Where is the office badge collected?"


@pytest.fixture(scope="module")
def app_url(ui_settings: Settings) -> Iterator[str]:
    backend = Backend.build(ui_settings, OfflineProvider(stream_delay_s=STREAM_DELAY_S))
    demo: gr.Blocks = build_app(ui_settings, backend)
    port = free_port()
    launch(demo, ui_settings, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    demo.close()


def open_page(browser: Browser, url: str, viewport: dict[str, int] = DESKTOP) -> Page:
    page = browser.new_context(viewport=viewport).new_page()  # a context each: its own session
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.locator("#question textarea").wait_for()
    page.locator("#chat .welcome").wait_for()
    return page


def ask(page: Page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


def answers(page: Page) -> list[str]:
    return page.locator('#chat [data-testid="bot"]').all_inner_texts()


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


def toggle_drawer(page: Page, is_open: bool) -> None:
    if (page.locator("#drawer.open").count() > 0) != is_open:
        page.locator("#drawer button[aria-label='Toggle Sidebar']").click()


def open_tab(page: Page, name: str) -> None:
    """A tab of the drawer (Sources, Documents, Settings), opening the drawer first."""
    toggle_drawer(page, True)
    page.get_by_role("tab", name=name).click()


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def highlighted_pixels(page: Page) -> int:
    """Pixels of the highlight's yellow in the page image the browser shows."""
    image = page.locator("#page-image img")
    image.wait_for()
    page.wait_for_function("() => document.querySelector('#page-image img').naturalWidth > 0")
    png = page.request.get(image.evaluate("image => image.src")).body()  # the link is relative to the page
    r, g, b = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int).transpose(2, 0, 1)
    return int(((r > 240) & (g > 200) & (g < 245) & (b < 180)).sum())


def feedback_cases(settings: Settings) -> list[dict]:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-m", "rag.eval", "feedback", "--collection", "corpus", "--data-dir",
         str(settings.data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_first_screen_then_a_chip_opens_the_pdf_page_with_the_sentence_highlighted(
    browser: Browser, app_url: str, shots: Shots
) -> None:
    page = open_page(browser, app_url)
    assert page.locator("#offline-banner").inner_text().startswith("Offline mode:")
    card = page.locator("#chat .card[data-collection='corpus']")
    assert "3 documents" in card.inner_text() and "onboarding.pdf" in card.inner_text()
    suggestions = page.locator("#chat button.suggest").all_inner_texts()
    assert 3 <= len(suggestions) <= 5
    shots(page, "01-first-screen")

    # Enter sends; Shift+Enter only breaks the line.
    box = page.locator("#question textarea")
    box.fill("Where is the office")
    box.press("Shift+Enter")
    box.type("badge collected?")
    assert box.input_value() == "Where is the office\nbadge collected?" and not answers(page)
    box.fill(BADGE)
    box.press("Enter")
    seen = watch_answer(page, 1)
    assert any(s.strip() and "Searching" not in s and len(s) < len(seen[-1]) for s in seen[:-1])  # it streamed
    final = seen[-1]
    assert "second floor" in final and "Offline mode: no Gemini key" not in final  # the note is said once, up top

    chip = page.locator("#chat button.cite").first
    chip.hover()
    popover = chip.locator(".pop")
    popover.wait_for(state="visible")
    assert "onboarding.pdf" in popover.inner_text() and "page 3" in popover.inner_text()
    assert "second floor" in popover.locator("mark").inner_text()
    shots(page, "02-answer-with-chips")

    chip.click()
    assert highlighted_pixels(page) > 2_000
    assert "onboarding.pdf" in page.locator("#viewer").inner_text()
    sources = page.locator("#sources li")
    assert sources.count() == len(set(sources.all_inner_texts()))  # each source once
    assert "cited" in page.locator("#sources li.cited").first.inner_text()
    assert page.locator("#sources li.uncited").count() >= 1
    shots(page, "03-pdf-page-highlighted")

    # A suggested question asks itself.
    toggle_drawer(page, False)
    page.locator("#new-chat").click()
    page.locator("#chat button.suggest").first.wait_for()
    page.locator("#chat button.suggest").first.click()
    watch_answer(page, 1)
    assert suggestions[0] in page.locator("#chat .turn .q").first.inner_text()
    page.close()


def test_rating_an_answer_reaches_the_feedback_test_cases(
    browser: Browser, app_url: str, shots: Shots, ui_settings: Settings
) -> None:
    page = open_page(browser, app_url)
    question = "How many days of paid vacation does every employee get per year?"
    ask(page, question)
    watch_answer(page, 1)
    page.locator("#chat button.rate[aria-label='Bad answer']").click()
    assert page.locator("#chat button.rate[aria-label='Bad answer']").get_attribute("aria-pressed") == "true"
    page.locator("#feedback-title", has_text="rated bad").wait_for()
    page.locator("#feedback-source input").click()
    page.get_by_role("option", name="handbook.md").first.click()
    page.locator("#feedback-comment textarea").fill("27 days is in the handbook")
    page.locator("#feedback-save").click()
    page.locator("#feedback-status", has_text="Saved").wait_for()
    shots(page, "04-rated")
    case = next(c for c in feedback_cases(ui_settings) if c["question"] == question)
    assert case["tags"] == ["feedback", "rated-down"] and case["relevant"] == [{"source": "handbook.md"}]
    assert case["comment"] == "27 days is in the handbook" and "27 days" in case["reference_answer"]
    page.close()


def test_stop_ends_the_answer_and_hostile_documents_stay_text(browser: Browser, app_url: str) -> None:
    page = open_page(browser, app_url)
    page.add_init_script("window.__pwned = undefined")
    ask(page, "When do unused vacation days expire, and how early must requests go to the manager?")  # not cached
    page.locator("#stop").wait_for(state="visible")
    expect(page.locator("#ask")).to_be_hidden()  # one control: Stop while answering
    page.wait_for_function("() => document.querySelector('#chat [data-testid=bot]')?.innerText.includes('Based on')")
    page.locator("#stop").click()
    page.locator("#chat .stopped").wait_for()
    page.locator("#ask").wait_for(state="visible")
    stopped = answers(page)[0]
    time.sleep(1.0)
    assert answers(page)[0] == stopped and "first token" not in stopped and "cost $" in stopped
    assert stat(page, "answers") == "0"  # a stopped answer is not counted as one

    ask(page, HOSTILE_QUESTION)
    hostile = watch_answer(page, 2)[-1]
    assert "<script>" in hostile or "<img src=x" in hostile
    page.locator("#chat .turn").nth(1).locator("button.link").click()  # its sources
    page.locator("#sources button.src", has_text="hostile.md").first.click()
    page.wait_for_function("() => document.querySelector('#viewer').innerText.includes('<script>')")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0 and page.locator("#chat script, #viewer script").count() == 0
    page.close()


def test_a_phone_gets_a_full_width_input_no_horizontal_scroll_and_sources_in_a_drawer(
    browser: Browser, app_url: str, shots: Shots
) -> None:
    page = open_page(browser, app_url, PHONE)
    assert no_horizontal_scroll(page)
    box = page.locator("#question textarea").bounding_box()
    assert box is not None and box["width"] >= 0.85 * PHONE["width"]
    shots(page, "05-phone-first-screen")
    ask(page, BADGE)
    watch_answer(page, 1)
    assert no_horizontal_scroll(page)
    shots(page, "06-phone-answer")
    page.locator("#chat button.cite").first.click()
    assert highlighted_pixels(page) > 500
    assert no_horizontal_scroll(page)
    shots(page, "07-phone-source-drawer")
    page.close()


# A code block with a line longer than a phone is wide.
BACKUPS = """# Backups

To back up the database every night, add these two lines to the crontab of the app user:

```
0 2 * * * rsync -az --delete /var/lib/app/database/ backup-host.example.org:/srv/backups/app/database/nightly/
30 2 * * * pg_dump --format=custom --file=/srv/backups/app/database/nightly/app.dump app
```
"""


@pytest.fixture(scope="module")
def runbook_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app over a collection of its own: a runbook whose code has long lines."""
    folder = tmp_path_factory.mktemp("runbook")
    (folder / "docs").mkdir()
    (folder / "docs" / "backups.md").write_text(BACKUPS)
    settings = Settings(data_dir=folder / "data", api_key=None, tier="unlimited", collection="runbook")
    assert ingest_paths([folder / "docs"], settings, OfflineProvider(), collection="runbook").exit_code == 0
    with pytest.MonkeyPatch.context() as env:  # build_app points Gradio's process-wide upload folder at its
        env.setenv("GRADIO_TEMP_DIR", "")      # data dir: the other app's uploads keep theirs
        demo: gr.Blocks = build_app(settings, Backend.build(settings, OfflineProvider()))
    port = free_port()
    launch(demo, settings, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    demo.close()


def test_a_quoted_code_block_keeps_its_lines_and_a_long_one_scrolls_in_its_box_on_a_phone(
    browser: Browser, runbook_url: str, shots: Shots
) -> None:
    """An offline reply quotes a code block with its lines, its chip after the block: a
    150-character line made a 400 px phone's page 980 px wide, and ran out of the answer's
    box on a desktop, its end unreadable."""
    page = open_page(browser, runbook_url, PHONE)
    ask(page, "How do I back up the database every night?")
    watch_answer(page, 1)
    block = page.locator("#chat [data-testid='bot'] li pre").first
    assert "rsync -az" in block.inner_text() and "\n30 2 * * * pg_dump" in block.inner_text()
    assert page.locator("#chat pre button.cite, #chat code button.cite").count() == 0
    assert no_horizontal_scroll(page)
    assert block.evaluate("pre => pre.scrollWidth > pre.clientWidth")  # the long line scrolls inside it
    shots(page, "08-phone-code-block")
    page.close()


def test_a_narrow_window_keeps_half_its_width_for_the_chat_beside_the_open_drawer(
    browser: Browser, app_url: str
) -> None:
    """At 900 px the 520 px drawer left the chat a 186 px column beside 98 px of empty margin."""
    page = open_page(browser, app_url, {"width": 900, "height": 900})
    ask(page, BADGE)
    watch_answer(page, 1)
    page.locator("#chat button.cite").first.click()
    assert highlighted_pixels(page) > 500
    page.wait_for_timeout(500)  # the drawer slides in
    chat, drawer = (page.locator(f"#{name}").bounding_box() for name in ("chat", "drawer"))
    assert chat is not None and drawer is not None
    assert chat["width"] >= 360 and chat["x"] + chat["width"] <= drawer["x"] + 1 and no_horizontal_scroll(page)
    page.close()


def assert_popover_inside_the_conversation(page: Page, chip: Locator) -> None:
    """The chip's popover shows within the chat's box, so never over the question box below it."""
    chip.locator(".pop").wait_for(state="visible")
    shown = (chip.locator(".pop"), page.locator("#chat"), page.locator("#question"))
    pop, chat, box = (e.bounding_box() for e in shown)
    assert pop is not None and chat is not None and box is not None
    assert chat["y"] - 1 <= pop["y"] and pop["y"] + pop["height"] <= chat["y"] + chat["height"] + 1, (pop, chat)
    assert pop["y"] + pop["height"] <= box["y"], (pop, box)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_popover_stays_inside_the_conversation_and_never_covers_the_question_box(
    browser: Browser, app_url: str, viewport: dict[str, int]
) -> None:
    """Under the last answer, the popover opened below the answer box, over the question box."""
    page = open_page(browser, app_url, viewport)
    ask(page, BADGE)
    watch_answer(page, 1)
    chip = page.locator("#chat button.cite").last
    chip.hover()
    assert_popover_inside_the_conversation(page, chip)
    page.mouse.move(2, 2)
    page.keyboard.press("Shift")  # after a key, a focus shows the popover (:focus-visible)
    chip.focus()
    assert_popover_inside_the_conversation(page, chip)
    page.close()


def test_the_keyboard_alone_reaches_every_control_with_a_visible_focus(browser: Browser, app_url: str) -> None:
    page = open_page(browser, app_url)
    page.get_by_role("textbox", name="Your question").wait_for()  # every control has a name
    ask(page, BADGE)
    watch_answer(page, 1)
    for name in ("Good answer", "Bad answer", "Source 1: onboarding.pdf, page 3"):
        assert page.get_by_role("button", name=name).count() == 1
    page.locator("body").click(position={"x": 2, "y": 2})
    reached: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
            return { id: e.closest('[id]')?.id || '',
                     label: e.getAttribute('aria-label') || e.innerText?.slice(0, 30) || '', cls: e.className || '',
                     ring: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 }; }"""
        )
        if focused["cls"] and ("cite" in focused["cls"] or "rate" in focused["cls"] or "suggest" in focused["cls"]):
            assert focused["ring"], f"no visible focus on {focused}"
        reached.append(f"{focused['id']}|{focused['label']}|{focused['cls']}")
    text = "\n".join(reached)
    wanted = ("|Source 1: onboarding.pdf, page 3|cite", "|Good answer|rate", "|Bad answer|rate", "question|", "ask|")
    for control in wanted:
        assert control in text, f"Tab never reached {control!r}:\n{text}"
    chip = page.locator("#chat button.cite").first
    chip.focus()
    chip.locator(".pop").wait_for(state="visible")
    page.keyboard.press("Escape")  # a popover covering the lines below can be dismissed
    chip.locator(".pop").wait_for(state="hidden")
    page.keyboard.press("Enter")  # a chip opens its source from the keyboard too
    assert highlighted_pixels(page) > 2_000
    page.close()


def test_uploads_reach_the_corpus_and_two_sessions_keep_apart(
    browser: Browser, app_url: str, tmp_path: Path, ui_settings: Settings
) -> None:
    first, second = open_page(browser, app_url), open_page(browser, app_url)
    canteen = tmp_path / "canteen menu.md"
    canteen.write_text("# Canteen\n\nThe canteen serves lunch from 11:30 to 14:00 on weekdays, on floor 5.\n")
    open_tab(first, "Documents")
    first.locator("#upload input[type=file]").set_input_files(str(canteen))
    first.locator("#upload-status", has_text="canteen menu.md: added").wait_for()
    assert (ui_settings.data_dir / "uploads" / "corpus" / "canteen menu.md").exists()
    assert not list((ui_settings.data_dir / "gradio").rglob("*.md"))  # Gradio's own copy is gone
    printer = tmp_path / "printer.md"  # a second file: the box was emptied, so it goes alone
    printer.write_text("# Printer\n\nThe printer is on floor 2, next to the kitchen.\n")
    first.locator("#upload input[type=file]").set_input_files(str(printer))
    first.locator("#upload-status", has_text="printer.md: added").wait_for()
    assert "canteen menu.md" not in first.locator("#upload-status").inner_text()
    toggle_drawer(first, False)
    questions = {first: "When does the canteen serve lunch?", second: "What does a lost badge cost?"}
    for page, question in questions.items():
        ask(page, question)  # both stream at the same time
    for page, question in questions.items():
        footer = watch_answer(page, 1)[-1]
        chat = page.locator("#chat").inner_text()
        assert question in chat and all(q not in chat for p, q in questions.items() if p is not page)
        assert stat(page, "answers") == "1" and f"{stat(page, 'tokens')} tokens" in footer
    assert "11:30" in answers(first)[0]
    first.locator("#new-chat").click()
    first.locator("#chat .welcome").wait_for()
    assert stat(first, "answers") == "1"  # a cleared chat was still paid for
    first.close()
    second.close()


def test_a_file_gradio_refuses_replaces_the_last_uploads_status_with_why(
    browser: Browser, app_url: str, tmp_path: Path
) -> None:
    """Gradio refuses a type it does not take in the browser, with a toast that goes away: the
    status went on saying the last upload was added, as if this one had been."""
    page = open_page(browser, app_url)
    library = tmp_path / "library.md"
    library.write_text("# Library\n\nThe library lends books for four weeks.\n")
    tool = tmp_path / "tool.exe"
    tool.write_bytes(b"MZ")
    open_tab(page, "Documents")
    status = page.locator("#upload-status")
    page.locator("#upload input[type=file]").set_input_files(str(library))
    status.get_by_text("library.md: added").wait_for()
    page.locator("#upload input[type=file]").set_input_files(str(tool))
    status.get_by_text("tool.exe: file type .exe is not supported").wait_for()
    assert "library.md" not in status.inner_text()
    page.close()


def test_gemini_answers_show_cost_and_a_repeated_question_is_served_from_cache(
    browser: Browser, gemini_settings: Settings, fake_gemini: FakeGemini, tmp_path: Path, shots: Shots
) -> None:
    provider = GeminiProvider(gemini_settings)
    assert ingest_paths([write_corpus(tmp_path / "corpus")], gemini_settings, provider).exit_code == 0
    demo = build_app(gemini_settings, Backend.build(gemini_settings, provider))
    port = free_port()
    launch(demo, gemini_settings, "127.0.0.1", port)
    try:
        fake_gemini.reply(
            "Where is the office badge collected?\nWhat does a lost badge cost?\nWhen must laptops be encrypted?",
            "The office badge is collected from the reception desk on the second floor [1].",
        )  # the first screen's questions (the cheap model), then the answer
        page = open_page(browser, f"http://127.0.0.1:{port}")
        assert page.locator("#chat button.suggest").all_inner_texts()[1] == "What does a lost badge cost?"
        assert not page.locator("#offline-banner").is_visible()
        ask(page, BADGE)
        first = watch_answer(page, 1)[-1]
        assert "gemini-3.8-flash · Flash" in first and "second floor" in first
        cost = float(stat(page, "cost").lstrip("$"))
        assert cost > 0 and stat(page, "cache-hits") == "0" and f"cost {stat(page, 'cost')}" in first
        page.locator("#chat button.cite").first.click()
        assert highlighted_pixels(page) > 2_000  # the paraphrase found its sentence
        shots(page, "08-gemini-answer")
        calls = len(fake_gemini.calls("streamGenerateContent"))

        fake_gemini.reply(BADGE)  # the follow-up rewrite: already standalone
        ask(page, BADGE)
        second = watch_answer(page, 2)[-1]
        assert "cached answer" in second and "saved $" in second
        assert len(fake_gemini.calls("streamGenerateContent")) == calls  # no model call
        assert stat(page, "cache-hits") == "1" and float(stat(page, "saved").lstrip("$")) > 0
        assert float(stat(page, "cost").lstrip("$")) < 2 * cost  # only the small rewrite call was paid
        assert TEST_API_KEY not in page.content()
    finally:
        demo.close()
