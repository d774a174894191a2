"""`python -m rag.server`'s port: checked when the arguments are read, and bound before the
banner and the models, so a busy or impossible port ends in one line and exit 2."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.costs import Ledger
from rag.providers.gemini import GeminiProvider
from rag.server.__main__ import main
from rag.settings import Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini
from tests.fakes.tiny_corpus import build_store


def run_server(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMRAG_DATA_DIR": str(data_dir), "GEMRAG_API_KEYS": "", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "rag.server", "--no-mounts", "--host", "127.0.0.1", *args],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_up(server: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "python -m rag.server did not come up in 90 s"
            time.sleep(0.3)


def test_a_busy_port_is_one_line_and_exit_2_without_the_banner(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = run_server("--port", str(port), data_dir=tmp_path)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 2 and out == ""
    assert err == f"error: cannot serve on 127.0.0.1:{port}: Address already in use; choose another port with --port\n"


@pytest.mark.parametrize(("port", "shown"), [("99999", "99999"), ("0", "0"), ("-1", "-1"), ("http", "'http'")])
def test_a_port_outside_1_to_65535_is_a_usage_error(port: str, shown: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_:
        main(["--port", port])
    said = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2
    assert said == [f"python -m rag.server: error: argument --port: {shown} is not a port number (1-65535)"]


def test_the_server_serves_on_the_port_it_bound_and_ctrl_c_ends_it_with_0(tmp_path: Path):
    port = free_port()
    server = run_server("--port", str(port), data_dir=tmp_path)
    try:
        wait_up(server, port)
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert f"gemrag API on http://127.0.0.1:{port} " in out


def test_a_host_is_bound_as_asyncio_binds_it_and_shown_as_a_browser_takes_it():
    """localhost resolved, "[::1]" as a URL writes it, IPv6 alone on an IPv6 address; an
    unknown host is one line (rag.server.ports)."""
    from rag.errors import ConfigError
    from rag.server.ports import bind, url

    with bind("localhost", 0) as sock:
        assert sock.getsockname()[0] in ("127.0.0.1", "::1")
    if socket.has_ipv6:
        with bind("[::1]", 0) as sock:
            assert sock.family == socket.AF_INET6
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    assert url("::1", 8000) == "http://[::1]:8000" and url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError, match=r"^cannot serve on nosuchhost\.invalid:80: "):
        bind("nosuchhost.invalid", 80)


@dataclasses.dataclass
class Replica:
    """A `python -m rag.server` whose fake Gemini answers in about 10 s (10 tokens/s)."""

    process: subprocess.Popen[str]
    url: str
    fake: FakeGemini
    settings: Settings
    err: str = ""

    def term(self) -> None:
        """SIGTERM, as a rolling update sends it (once: a second one makes uvicorn quit at once)."""
        self.process.send_signal(signal.SIGTERM)

    def exited(self) -> None:
        """Waits for the process to end, keeping its stderr."""
        _, self.err = self.process.communicate(timeout=60)


@contextlib.contextmanager
def long_answers(tmp_path: Path, **env: str) -> Iterator[Replica]:
    with FakeGemini(tokens_per_s=10, chunk_tokens=2) as fake:
        settings = Settings(data_dir=tmp_path, api_key=TEST_API_KEY, base_url=fake.url, tier="unlimited")
        build_store(settings, GeminiProvider(settings))
        fake.reply(" ".join(["Wait at least the server's retry delay [1]."] * 12))  # ~10 s at 10 tokens/s
        port = free_port()
        env = {"GEMINI_API_KEY": TEST_API_KEY, "GEMRAG_BASE_URL": fake.url, "GEMRAG_TIER": "unlimited", **env}
        server = run_server("--port", str(port), "--collection", "tiny-corpus", data_dir=tmp_path, env=env)
        try:
            wait_up(server, port)
            yield Replica(server, f"http://127.0.0.1:{port}", fake, settings)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


QUESTION_429 = "How long should a client wait after a 429?"


@pytest.mark.slow
def test_sigterm_lets_an_open_answer_stream_finish(tmp_path: Path):
    """A rolling update sends SIGTERM: the replica takes no new connections but an answer
    already streaming ends with its `done` event (within `drain_s`), then the process exits.
    Cut after 5 s, a reader lost the rest of the answer and its citations mid-sentence."""
    with long_answers(tmp_path) as replica:
        with httpx.stream("POST", f"{replica.url}/v1/ask", json={"question": QUESTION_429}, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines) == "event: delta"
            replica.term()
            events = [line for line in lines if line.startswith("event: ")]
        replica.exited()
    assert events[-1] == "event: done", replica.err
    assert replica.process.returncode in (0, -signal.SIGTERM), replica.err  # uvicorn re-raises the signal


@pytest.mark.slow
def test_sigterm_ends_an_answer_that_would_outlast_the_drain_with_a_last_event(tmp_path: Path):
    """An answer longer than `drain_s` was cancelled by uvicorn at its deadline: no last event,
    and its hold never settled. DRAIN_MARGIN_S before the deadline it ends itself."""
    with long_answers(tmp_path, GEMRAG_DRAIN_S="7") as replica:  # the answers' own deadline: 2 s after the signal
        question = {"question": QUESTION_429, "session_id": "cut"}
        with httpx.stream("POST", f"{replica.url}/v1/ask", json=question, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines) == "event: delta"
            replica.term()
            rest = list(lines)
        replica.exited()
    events = [line for line in rest if line.startswith("event: ")]
    assert events[-1] == "event: error" and '"error":"server_draining"' in "".join(rest), replica.err
    held = Ledger(replica.settings).session("local/cut")
    assert held.held_usd == 0 and held.cost_usd > 0, replica.err  # settled: what was written, charged


@pytest.mark.slow
def test_a_json_answer_cut_by_the_shutdown_deadline_is_settled(tmp_path: Path):
    """A non-streamed answer longer than `drain_s` was cancelled at the deadline: its model
    stream was never closed, so its hold stayed counted against every budget (review)."""
    replies = []
    with long_answers(tmp_path, GEMRAG_DRAIN_S="7") as replica:
        question = {"question": QUESTION_429, "session_id": "json", "stream": False}

        def ask() -> None:
            with contextlib.suppress(httpx.HTTPError):  # cut by the shutdown: the ledger tells
                replies.append(httpx.post(f"{replica.url}/v1/ask", json=question, timeout=60))

        asking = threading.Thread(target=ask)
        asking.start()
        deadline = time.monotonic() + 30
        while not replica.fake.streams_open and time.monotonic() < deadline:
            time.sleep(0.05)
        replica.term()
        replica.exited()
        asking.join(30)
    held = Ledger(replica.settings).session("local/json")
    assert held.held_usd == 0 and held.cost_usd > 0, replica.err  # settled: what was written, charged
    assert [r.status_code for r in replies] == [503] and replies[0].json()["error"] == "server_draining"
