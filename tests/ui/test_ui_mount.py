"""The UI reaches the API server through the `gemrag.mounts` entry point declared in
pyproject.toml, and logs users in with their API key when keys are configured."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag.server.app import create_app
from rag.server.auth import new_key
from rag.server.mounts import GROUP
from rag.uploads import incoming_dir
from ui.uploads import UploadRejected, stage

ROOT = Path(__file__).resolve().parents[2]


def declared() -> list[EntryPoint]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][GROUP]
    return [EntryPoint(name, value, GROUP) for name, value in table.items()]


def test_pyproject_declares_the_ui_and_the_server_mounts_it_at_ui(ui_settings):
    app = create_app(ui_settings, mounts=declared())
    assert app.state.mounted == ["ui"]
    with TestClient(app) as client:
        page = client.get("/ui/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert "img-src 'self'" in page.headers["content-security-policy"]  # as under python -m ui
        assert client.get("/v1/collections").status_code == 200  # the API beside it


def test_the_mounted_ui_has_no_gradio_footer_as_under_python_m_ui(ui_settings):
    """Under `python -m rag.server` the page ended in "Use via API · Built with Gradio · Settings",
    a second Settings beside the drawer's; `python -m ui` shows no footer."""
    with TestClient(create_app(ui_settings, mounts=declared())) as client:
        assert client.get("/ui/config").json()["footer_links"] == []


def test_with_api_keys_the_ui_asks_for_the_key(ui_settings):
    key, line = new_key("alice", "ask")
    app = create_app(ui_settings.model_copy(update={"api_keys": line}), mounts=declared())
    with TestClient(app) as client:
        assert client.get("/ui/config").status_code == 401  # nothing of the app without a login
        assert client.post("/ui/login", data={"username": "alice", "password": "wrong"}).status_code == 400
        assert client.post("/ui/login", data={"username": "alice", "password": key}).status_code == 200
        assert client.get("/ui/config").status_code == 200


def gradio_size(n: int) -> str:
    """The limit as Gradio's upload widget words it when a file is over it (its frontend's
    default "jedec" format: steps of 1,024, one decimal, units b, Kb, Mb...)."""
    units, value = ["b", "Kb", "Mb", "Gb"], float(n)
    step = 0
    while value >= 1024:
        value, step = value / 1024, step + 1
    return f"{value:.1f} {units[step]}"


def test_gradio_states_the_upload_limit_the_ui_label_and_the_refusal_state(ui_settings, tmp_path):
    settings = ui_settings.model_copy(update={"max_upload_mb": 20})
    with TestClient(create_app(settings, mounts=declared())) as client:
        config = client.get("/ui/config").json()
    labels = [c["props"].get("label") or "" for c in config["components"]]
    assert "Add documents (up to 20 MB each)" in labels
    assert gradio_size(config["max_file_size"]) == "20.0 Mb"  # was "19.1 Mb" for 20,000,000 bytes
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * (config["max_file_size"] + 1))
    with pytest.raises(UploadRejected, match=rf"over the upload limit of 20 MB \({config['max_file_size']:,} bytes"):
        stage(big, "big.md", settings, incoming_dir(settings, "corpus"))


def test_a_file_up_to_the_upload_limit_reaches_the_mounted_ui(ui_settings):
    """Gradio uploads to its own route, which the body limit held to the 64 kB of a JSON
    request: a 200 kB handbook dropped on the UI served by `python -m rag.server` was refused
    with 413, though the box said up to 20 MB. Past the upload limit it still is."""
    settings = ui_settings.model_copy(update={"max_upload_mb": 1})
    with TestClient(create_app(settings, mounts=declared())) as client:
        sent = client.post("/ui/gradio_api/upload", files=[("files", ("handbook.md", b"# Rules\n" + b"x" * 200_000))])
        too_big = client.post("/ui/gradio_api/upload",
                              files=[("files", ("huge.md", b"x" * (settings.max_upload_bytes + 100_000)))])
        elsewhere = client.post("/v1/ask", content=b"x" * 200_000, headers={"content-type": "application/json"})
    assert sent.status_code == 200, sent.text
    assert sent.json()[0].endswith("handbook.md")
    assert too_big.status_code == 413
    assert elsewhere.status_code == 413 and "64 kB" in elsewhere.json()["message"]  # other bodies keep theirs


def test_every_ui_request_is_counted_under_one_route(ui_settings):
    """Gradio routes the UI's requests by its own templates: they were counted as "/config",
    "/gradio_api/info", "/assets/{path:path}" and a "/" that was not the API's, as many
    series as Gradio has routes, renamed by its upgrades. Now they are all "/ui"."""
    with TestClient(create_app(ui_settings, mounts=declared())) as client:
        for path in ("/ui/", "/ui/config", "/ui/gradio_api/info", "/ui/assets/missing.js"):
            client.get(path)
        client.get("/healthz")
        scraped = client.get("/metrics").text
    routes = {m.group(1) for m in re.finditer(r'^gemrag_http_requests_total\{.*route="([^"]*)"', scraped, re.M)}
    assert routes == {"/ui", "/healthz"}
    assert 'gemrag_http_requests_total{method="GET",route="/ui",status="200"} 3.0' in scraped


@pytest.mark.slow
def test_a_logged_in_user_adds_documents_only_with_an_ingest_key_and_spends_under_their_own(ui_settings, tmp_path):
    """An ask-only key was refused by the API's upload route but added a file to any
    collection through the mounted UI; and the UI's answers counted against the shared
    "local" account, so a key past its own budget went on asking there."""
    from gradio_client import Client, handle_file

    from rag.backend import Backend
    from rag.costs import account_of
    from rag.providers.offline import OfflineProvider
    from rag.store import Store
    from tests.rag.server.conftest import serve_in_thread

    alice, alice_line = new_key("alice", "ask")
    ing, ing_line = new_key("ing", "ingest")
    settings = ui_settings.model_copy(update={"api_keys": f"{alice_line},{ing_line}"})
    backend = Backend.build(settings, OfflineProvider())
    app = create_app(settings, backend=backend, mounts=declared())
    planted = tmp_path / "planted.md"
    planted.write_text("# Refunds\n\nRefunds are wired to the account named in this note.\n")
    for url in serve_in_thread(app):
        as_alice = Client(f"{url}/ui/", auth=("alice", alice), verbose=False)
        refused = as_alice.predict(files=[handle_file(str(planted))], collection="corpus", api_name="/upload")
        as_ing = Client(f"{url}/ui/", auth=("ing", ing), verbose=False)
        added = as_ing.predict(files=[handle_file(str(planted))], collection="team", api_name="/upload")
        as_alice.predict("Where is the office badge collected?", api_name="/respond")
    assert "Key 'alice' has role 'ask'; this needs 'ingest'." in refused[0]
    assert "planted.md" not in {c.source for c in Store(settings, OfflineProvider.embedding_id, "corpus").chunks()}
    assert "✅" in added[0] and "planted.md" in added[0]
    chats = [session for session in backend.ledger.sessions() if "ui-" in session]
    assert chats and {account_of(session) for session in chats} == {"alice"}, chats
    assert "ing/ingest:team" in backend.ledger.sessions()  # the upload's ingest, under its key too
