"""The viewer's images (a cited PDF page, highlighted) are linked without the server's paths
and served by the UI's own route, under `python -m ui` and under `python -m rag.server`
alike, which gives nothing but the previews of a collection's files: no `..`, no absolute
path, no symbolic link out of the previews folder, no preview of a file the collection does
not hold, and under API keys nothing before the login."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import gradio as gr
import httpx
import pytest
from playwright.sync_api import Browser

from rag.backend import Backend
from rag.providers.offline import OfflineProvider
from rag.server.app import create_app
from rag.server.auth import new_key
from rag.settings import Settings
from tests.rag.server.conftest import serve_in_thread
from tests.ui.test_app import free_port
from tests.ui.test_browser import BADGE, open_page
from tests.ui.test_handlers import click
from tests.ui.test_ui_mount import declared
from ui import preview, source_images
from ui.app import build_app, launch
from ui.handlers import Handlers
from ui.session import SessionState


@pytest.fixture(scope="module")
def standalone(ui_settings: Settings) -> Iterator[str]:
    """The app as `python -m ui` serves it: its root is the page."""
    demo: gr.Blocks = build_app(ui_settings, Backend.build(ui_settings, OfflineProvider()))
    port = free_port()
    launch(demo, ui_settings, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def mounted(ui_settings: Settings) -> Iterator[str]:
    """The app as `python -m rag.server` mounts it beside the API: the page is /ui/."""
    for url in serve_in_thread(create_app(ui_settings, mounts=declared())):
        yield f"{url}/ui/"


@pytest.fixture(scope="module")
def shown(ui_settings: Settings) -> str:
    """The viewer's image link for the badge answer's first chip (onboarding.pdf, page 3)."""
    handlers = Handlers(ui_settings, Backend.build(ui_settings, OfflineProvider()))
    state = SessionState()
    list(handlers.respond(BADGE, state, "corpus", "hybrid", 4, ""))
    image = click(handlers, state, 0, "cite", "1")[2]
    found = re.search(r"<img src='([^']+)'", image["value"])
    assert found is not None, image
    return found[1]


def test_the_handler_links_the_page_by_collection_and_name(shown: str, ui_settings: Settings) -> None:
    prefix, collection, name = shown.split("/")
    assert (prefix, collection) == ("source-images", "corpus") and preview.SHOWN.fullmatch(name)
    assert source_images.find(ui_settings, "corpus", name) == ui_settings.path(preview.FOLDER).resolve() / name


@pytest.mark.parametrize("server", ["standalone", "mounted"])
def test_the_page_is_served_under_either_server(
    server: str, shown: str, ui_settings: Settings, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(server)
    got = httpx.get(root + shown)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    path = source_images.find(ui_settings, "corpus", shown.split("/")[-1])
    assert path is not None and got.content == path.read_bytes()


def raw_get(root: str, path: str) -> int:
    """The status of a GET of `path` sent as written: an HTTP client would resolve its `..`."""
    where = urlsplit(root)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    try:
        connection.request("GET", where.path.rstrip("/") + path)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("server", ["standalone", "mounted"])
def test_nothing_but_a_collections_previews_is_served(
    server: str, shown: str, ui_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(server)
    _, _, name = shown.split("/")
    content = name[:24]
    previews = ui_settings.path(preview.FOLDER)
    database = ui_settings.data_dir.resolve() / "chroma" / "chroma.sqlite3"
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for readers")
    linked = previews / f"{content}-p1-{'0' * 16}.png"  # a name the viewer could give, and a file it holds
    linked.symlink_to(secret)
    unheld = previews / f"{'f' * 24}-p1-{'0' * 16}.png"  # a real image, but of no file the collection holds
    unheld.write_bytes((previews / name).read_bytes())
    plain = previews / f"{content}-p3.png"  # the page before its highlight: never linked
    try:
        assert plain.exists()
        refused = [
            "/source-images/corpus/..%2F..%2Fchroma%2Fchroma.sqlite3",
            f"/source-images/corpus/%2E%2E%2Fpreviews%2F{name}",
            f"/source-images/corpus/{quote(str(database), safe='')}",  # an absolute path, as one name
            f"/source-images/corpus/{database}",
            f"/source-images/../source-images/corpus/{name}",
            "/source-images/corpus/../../chroma/chroma.sqlite3",
            f"/source-images/%2E%2E/{name}",
            f"/source-images/nope/{name}",  # a collection that does not hold the file
            f"/source-images/corpus/{linked.name}",
            f"/source-images/corpus/{unheld.name}",
            f"/source-images/corpus/{plain.name}",
            f"/source-images/corpus/{name}.bak",
        ]
        statuses = {path: raw_get(root, path) for path in refused}
        assert statuses == dict.fromkeys(refused, 404)
        assert raw_get(root, "/" + shown) == 200  # the same client, the right link
    finally:
        linked.unlink()
        unheld.unlink()


def test_under_api_keys_a_page_image_needs_the_login(shown: str, ui_settings: Settings) -> None:
    """... and a key that reaches its collection: one limited to others gets no image of it."""
    key, line = new_key("alice", "ask")
    other, other_line = new_key("bob", "ask", ["team-x"])
    settings = ui_settings.model_copy(update={"api_keys": f"{line},{other_line}"})
    for url in serve_in_thread(create_app(settings, mounts=declared())):
        with httpx.Client(base_url=f"{url}/ui/") as client:
            assert client.get(shown).status_code == 401
            assert client.post("login", data={"username": "alice", "password": key}).status_code == 200
            assert client.get(shown).status_code == 200
        with httpx.Client(base_url=f"{url}/ui/") as client:
            assert client.post("login", data={"username": "bob", "password": other}).status_code == 200
            assert client.get(shown).status_code == 404


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("server", ["standalone", "mounted"])
def test_a_reader_opening_a_cited_page_learns_no_server_path(
    server: str, browser: Browser, ui_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """The page image was Gradio's /gradio_api/file=/…/data/gradio/…/p3.png: the data dir's
    absolute path, in the page and in the request the browser made for it."""
    root = request.getfixturevalue(server)
    page = open_page(browser, root)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(unquote(r.url)))
    page.locator("#question textarea").fill(BADGE)
    page.locator("#ask").click()
    page.locator("#chat button.cite").first.click()
    page.wait_for_function("() => document.querySelector('#page-image img')?.naturalWidth > 0")
    src = page.locator("#page-image img").evaluate("image => image.src")
    assert src.startswith(f"{root}source-images/corpus/")
    data_dir = str(ui_settings.data_dir.resolve())
    assert data_dir not in page.content()
    assert src in requested and not [url for url in requested if data_dir in url]
    page.close()
