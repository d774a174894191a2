from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest

from rag.chain import Chain
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
    demo = build_app(settings, Chain(settings, OfflineProvider()))
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
    demo = build_app(ui_settings, Chain(ui_settings, OfflineProvider()))
    assert banner_visible(demo)
    assert "set `GEMINI_API_KEY`" in str(demo.config)


def run_ui(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMRAG_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "ui", *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


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
