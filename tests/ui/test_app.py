from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from rag.backend import Backend
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from ui.app import build_app, launch

KEY = "test-key-PLANTED-ui-config-77a"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def banner_visible(demo: gr.Blocks) -> bool:
    (banner,) = [c for c in demo.config["components"] if c["props"].get("elem_id") == "offline-banner"]
    return bool(banner["props"]["visible"])


@pytest.fixture
def online_app(ui_settings: Settings) -> Iterator[tuple[gr.Blocks, str]]:
    settings = ui_settings.model_copy(update={"api_key": KEY})
    assert settings.online
    demo = build_app(settings, Backend.build(settings, OfflineProvider()))
    port = free_port()
    launch(demo, settings, "127.0.0.1", port)
    yield demo, f"http://127.0.0.1:{port}"
    demo.close()


def test_the_key_is_never_sent_to_the_browser(online_app: tuple[gr.Blocks, str]) -> None:
    demo, url = online_app
    for path in ("/", "/config", "/gradio_api/info"):
        assert KEY not in get(url + path)
    assert not banner_visible(demo)


def test_offline_banner_says_how_to_enable_gemini(ui_settings: Settings) -> None:
    demo = build_app(ui_settings, Backend.build(ui_settings, OfflineProvider()))
    assert banner_visible(demo)
    assert "set `GEMINI_API_KEY`" in str(demo.config)


def model_box(demo: gr.Blocks) -> Any:
    (box,) = [c["props"] for c in demo.config["components"] if c["props"].get("label") == "Model"]
    return box


def test_offline_the_model_box_names_the_extractive_answerer_not_gemini(ui_settings: Settings) -> None:
    """Offline, Settings showed "Automatic: Flash, Pro for long contexts" above "Offline mode has
    one model: the extractive answerer"."""
    box = model_box(build_app(ui_settings, Backend.build(ui_settings, OfflineProvider())))
    shown = box["choices"][0][0]
    assert len(box["choices"]) == 1 and "extractive answerer" in shown and "Flash" not in shown
    assert box["value"] == "" and box["interactive"] is False


def run_ui(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMRAG_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "ui", *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def test_the_ui_loads_the_local_model_before_its_first_question(ui_settings: Settings, monkeypatch) -> None:
    from rag import backend as backend_module
    from rag.providers.minilm import MiniLM
    from ui.app import create_app

    model = MiniLM()
    monkeypatch.setattr(backend_module, "shared_minilm", lambda: model)
    create_app(ui_settings)
    assert {"session", "tokenizer"} <= set(vars(model))


@pytest.mark.slow
def test_python_m_ui_serves_the_app_and_refuses_a_busy_port(ui_settings: Settings) -> None:
    port = free_port()
    server = run_ui("--port", str(port), "--collection", "corpus", data_dir=ui_settings.data_dir)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = get(f"http://127.0.0.1:{port}/config")
                break
            except OSError:
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "python -m ui did not come up in 60 s"
                time.sleep(0.3)
        assert "Offline mode" in page and "corpus" in page
        busy = run_ui("--port", str(port), data_dir=ui_settings.data_dir)
        out, err = busy.communicate(timeout=60)
        assert busy.returncode == 2
        assert f"cannot serve on 127.0.0.1:{port}" in err and "Traceback" not in err + out
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.slow
def test_two_concurrent_first_requests_to_a_fresh_ui_both_succeed(tmp_path: Path) -> None:
    """Two browser tabs open a UI that has not touched its store yet: each page load lists the
    corpus while the other asks. Creating the first Chroma client from two threads at once
    used to fail both ("Could not connect to tenant", missing bindings)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.ui.conftest import write_corpus
    from ui.handlers import Handlers
    from ui.session import SessionState

    data = tmp_path / "data"
    ingested = subprocess.run(  # in another process, so this one has no client for the data dir yet
        [sys.executable, "-m", "ingest", str(write_corpus(tmp_path / "corpus")), "-q", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    settings = Settings(data_dir=data, api_key=None)
    handlers = Handlers(settings, Backend.build(settings, OfflineProvider()))

    def first_requests() -> tuple[str, SessionState]:
        state = SessionState()
        _, _, corpus_panel, _ = handlers.load(state)  # the page load
        list(handlers.respond("Where is the office badge collected?", state, "corpus", "hybrid", 4, ""))
        return corpus_panel, state

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: first_requests(), range(2)))

    for corpus_panel, state in results:
        assert "data-collection='corpus'" in corpus_panel and "3 documents" in corpus_panel
        [turn] = state.turns
        assert turn.status == "done" and turn.record is not None and "second floor" in turn.answer


def test_no_event_shows_its_progress_over_the_drawer_which_wraps_the_page(ui_settings: Settings) -> None:
    """While another session's answer streamed, a question waiting its turn blanked the whole
    page under "queue: 1/1", and a failed click covered it with "Error": both were drawn over
    the drawer, an output that wraps the page."""
    demo = build_app(ui_settings, Backend.build(ui_settings, OfflineProvider()))
    (drawer,) = [c["id"] for c in demo.config["components"] if c["props"].get("elem_id") == "drawer"]
    filling = [d for d in demo.config["dependencies"] if drawer in d["outputs"]]
    assert filling and all(d["show_progress_on"] and drawer not in d["show_progress_on"] for d in filling)
