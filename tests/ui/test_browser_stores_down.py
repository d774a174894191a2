"""The page with its Redis down (issue #14, item 4): every panel shows one clear line and the
rest keeps working; a question is refused with the reason, because an answer whose cost
cannot be recorded is not given unless `answer_without_stores` says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from rag.backend import Backend
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from tests.ui.test_app import free_port
from tests.ui.test_browser import answers, ask, open_page, open_tab
from ui.app import build_app, launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def serve(settings: Settings) -> tuple[object, str]:
    demo = build_app(settings, Backend.build(settings, OfflineProvider()))
    port = free_port()
    launch(demo, settings, "127.0.0.1", port)
    return demo, f"http://127.0.0.1:{port}"


@pytest.fixture
def down_settings(ui_settings: Settings) -> Settings:
    """The UI corpus, with cache and ledger on a Redis port where nothing listens."""
    return ui_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})


@pytest.fixture
def page_of(browser: Browser) -> Iterator[object]:
    served: list[object] = []

    def open_app(settings: Settings) -> Page:
        demo, url = serve(settings)
        served.append(demo)
        return open_page(browser, url)

    yield open_app
    for demo in served:
        demo.close()  # type: ignore[attr-defined]


def no_error_badges(page: Page) -> None:
    """Gradio marks a component whose handler raised with a bare "Error"."""
    assert "\nError\n" not in f"\n{page.locator('body').inner_text()}\n"


def finished(page: Page, count: int) -> str:
    page.wait_for_function(
        "n => { const b = document.querySelectorAll('[data-testid=bot]');"
        " return b.length >= n && b[n - 1].querySelector('.meta, .error') !== null; }",
        arg=count,
    )
    return answers(page)[count - 1]


def test_with_redis_down_each_panel_says_so_and_a_question_is_refused_with_the_reason(
    page_of, down_settings: Settings  # type: ignore[no-untyped-def]
) -> None:
    page = page_of(down_settings)
    totals = page.locator("#totals")
    totals.get_by_text("Costs unavailable").wait_for()
    assert "Redis at 127.0.0.1" in totals.inner_text()
    open_tab(page, "Documents")
    assert "corpus" in page.locator("#corpus").inner_text()  # Chroma still answers

    ask(page, "Where is the office badge collected?")
    refused = finished(page, 1)
    assert "Not answered" in refused and "Redis at 127.0.0.1" in refused
    assert "GEMRAG_ANSWER_WITHOUT_STORES" in refused
    assert "Costs unavailable" in totals.inner_text()
    no_error_badges(page)
    page.locator("#new-chat").click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=bot]').length === 0")
    no_error_badges(page)


def test_with_answer_without_stores_set_the_answer_comes_and_the_costs_panel_says_unavailable(
    page_of, down_settings: Settings  # type: ignore[no-untyped-def]
) -> None:
    page = page_of(down_settings.model_copy(update={"answer_without_stores": True}))
    ask(page, "Where is the office badge collected?")
    answer = finished(page, 1)
    assert "second floor" in answer
    assert "Costs unavailable" in page.locator("#totals").inner_text()
    no_error_badges(page)
