"""The UI tests' shared pieces: a small ingested corpus (a handbook in Markdown, a three-page
PDF whose facts live on known pages, and a hostile document full of HTML that must never
run) and the headless Chromium the browser tests drive."""

from __future__ import annotations

import os
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from ingest.pipeline import ingest_paths
from rag.providers.offline import OfflineProvider
from rag.settings import Settings

HANDBOOK = """# Team handbook

## Vacation

Every employee gets 27 days of paid vacation per calendar year. Unused vacation days expire
on the 31st of March of the following year. Requests go to your manager at least two weeks ahead.

## Expenses

Travel expenses are reimbursed within 14 days of submitting the receipt in the expense tool.
Hotel stays above 180 euros per night need written approval from the finance team.
"""

PDF_PAGES = [
    "Onboarding guide. This guide explains the first weeks at the company for new colleagues.",
    "Laptops. Every new colleague receives a laptop on the first day. The laptop must be encrypted "
    "with full disk encryption before it is connected to the office network.",
    "Badges. The office badge is collected from the reception desk on the second floor. A lost badge "
    "is replaced for a fee of 25 euros.",
]

HOSTILE = """# Hostile notes

The parking garage opens at 6 am. <script>window.__pwned = 1</script>
Guests park on level minus two. <img src=x onerror="window.__pwned = 1"> The garage closes at 11 pm.
"""

HOSTILE_QUESTION = "When does the parking garage open and close?"


def write_pdf(path: Path, pages: list[str]) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))


def write_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "handbook.md").write_text(HANDBOOK)
    (root / "hostile.md").write_text(HOSTILE)
    write_pdf(root / "onboarding.pdf", PDF_PAGES)
    return root


def ingested_settings(base: Path) -> Settings:
    settings = Settings(data_dir=base / "data", api_key=None, tier="unlimited")
    report = ingest_paths([write_corpus(base / "corpus")], settings, OfflineProvider())
    assert report.exit_code == 0, report.files
    return settings


@pytest.fixture(scope="module")
def ui_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Offline settings over a fresh data dir holding the ingested UI corpus."""
    return ingested_settings(tmp_path_factory.mktemp("ui"))


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = os.environ.get("GEMRAG_BROWSER", "/usr/bin/chromium")
    if not Path(executable).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no browser at {executable}: .ci/run must install chromium")
        pytest.skip(f"no browser at {executable} (apt-get install chromium, or set GEMRAG_BROWSER)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Shots:
    """Saves a screenshot per state into a temp dir, and also into $GEMRAG_SCREENSHOTS when set
    (how docs/screenshots/ is refreshed); a 128-colour palette keeps each PNG small to commit."""

    def __init__(self, folder: Path) -> None:
        extra = os.environ.get("GEMRAG_SCREENSHOTS")
        self.folders = [folder, *([Path(extra)] if extra else [])]

    def __call__(self, page: Page, name: str) -> None:
        image = Image.open(BytesIO(page.screenshot())).convert("RGB").quantize(colors=128)
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{name}.png", optimize=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Shots:
    folder = tmp_path_factory.mktemp("ui-screenshots")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"UI screenshots: {folder}")
    return Shots(folder)
