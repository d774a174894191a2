"""The ledger when its Redis fails (issue #14, item 7): a Redis that keeps nothing on disk is
named at start, and a Redis killed while answers stream loses no charge.

These tests start their own redis-server (port GEMRAG_TEST_OWN_REDIS_PORT, default 6403),
with an append-only file, and kill it with SIGKILL; the shared test Redis is never touched
but to read its configuration."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from rag.chain import Chain
from rag.costs import JOURNAL, Ledger
from rag.kv import StoreUnavailable
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.gemini_cli import run
from tests.fakes.tiny_corpus import build_store
from tests.ui.test_app import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class OwnRedis:
    """A redis-server of this test's own, persisting every write (appendfsync always), or
    keeping nothing on disk at all (persist=False)."""

    def __init__(self, folder: Path, port: int, persist: bool = True) -> None:
        self.folder = folder
        self.port = port
        self.persist = persist
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: .ci/run must install it")
        pytest.skip("redis-server is not installed")
    server = OwnRedis(tmp_path / "redis", int(os.environ.get("GEMRAG_TEST_OWN_REDIS_PORT", "6403")))
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


def test_a_redis_that_keeps_nothing_on_disk_is_named_at_start(own_redis: OwnRedis, tmp_path: Path) -> None:
    volatile = OwnRedis(tmp_path / "volatile", free_port(), persist=False)
    volatile.folder.mkdir()
    volatile.start()
    try:
        env = {**os.environ, "GEMRAG_DATA_DIR": str(tmp_path / "data")}
        warned = run("rag", "costs", env={**env, "REDIS_URL": volatile.url})
        assert warned.returncode == 0, warned.stderr
        assert f"127.0.0.1:{volatile.port}/0 keeps nothing on disk" in warned.stderr
        assert "appendonly yes" in warned.stderr
        quiet = run("rag", "costs", env={**env, "REDIS_URL": own_redis.url})
        assert quiet.returncode == 0 and quiet.stderr == ""
    finally:
        volatile.stop()


def came_true(condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


LONG_ANSWER = " ".join(["Employees receive twenty five days of paid vacation per year [1]."] * 8)


def test_redis_killed_while_two_sessions_stream_loses_no_charge(
    own_redis: OwnRedis, gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    """Every answer completes and is charged, or is refused; afterwards the ledger holds
    exactly what the fake Gemini billed, call for call and token for token."""
    settings = gemini_settings.model_copy(update={"redis_url": own_redis.url})
    provider = GeminiProvider(settings)
    chain = Chain(settings, provider, build_store(gemini_settings, provider))
    fake_gemini.clear_log()
    fake_gemini.responder = lambda request: LONG_ANSWER
    fake_gemini.tokens_per_s = 60  # each answer streams for about a second
    outcomes: dict[str, list[str]] = {"a": [], "b": []}
    redis_back = threading.Event()

    def converse(session: str) -> None:
        for n in range(4):
            try:
                record = chain.ask(f"How many vacation days, question {session}{n}?", session_id=session)
                outcomes[session].append("answered" if record.cost_usd > 0 else f"free: {record}")
            except StoreUnavailable as refused:
                outcomes[session].append("refused" if str(refused).startswith("Not answered") else repr(refused))
                redis_back.wait(60)
            except Exception as failed:  # any other end is this test's failure
                outcomes[session].append(repr(failed))

    threads = [threading.Thread(target=converse, args=(s,)) for s in outcomes]
    for thread in threads:
        thread.start()
    assert came_true(lambda: fake_gemini.streams_open == 2), "both sessions should be streaming when Redis dies"
    own_redis.kill()
    assert came_true(lambda: all(len(o) >= 2 for o in outcomes.values())), outcomes
    own_redis.start()
    redis_back.set()
    for thread in threads:
        thread.join(120)

    # The answers streaming when Redis died completed; the next ones were refused; the rest
    # answered once Redis was back.
    assert outcomes == {s: ["answered", "refused", "answered", "answered"] for s in outcomes}, outcomes
    chain.ledger.replay_journal()
    assert not (settings.data_dir / JOURNAL).read_text()
    ledger = Ledger(settings)
    assert ledger.total().held_usd == 0
    billed = fake_gemini.billed
    answered = sum(o.count("answered") for o in outcomes.values())
    assert len(billed) == answered  # a refused answer sent nothing
    by_model = ledger.models()
    for model in {b.model for b in billed}:
        mine = [b for b in billed if b.model == model]
        totals = by_model[model]
        assert totals.calls == len(mine)
        assert totals.usage.prompt_tokens == sum(b.prompt_tokens for b in mine)
        assert totals.usage.output_tokens == sum(b.output_tokens for b in mine)
        assert totals.usage.thinking_tokens == sum(b.thinking_tokens for b in mine)
    embeddings = [r for r in fake_gemini.calls("batchEmbedContents") if r.status == 200]
    assert by_model[settings.embedding_model].calls == len(embeddings)


def test_with_redis_down_a_keyed_request_is_503_store_unavailable_not_500(
    own_redis: OwnRedis, gemini_settings: Settings
) -> None:
    """The per-key request limit lives in Redis too: with Redis down, every request carrying a
    key, GET /v1/collections included, was a 500 internal_error (operations walkthrough)."""
    from fastapi.testclient import TestClient

    from rag.server.app import create_app
    from rag.server.auth import new_key

    key, line = new_key("bob", "admin")
    settings = gemini_settings.model_copy(update={"api_keys": line, "redis_url": own_redis.url})
    with TestClient(create_app(settings)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/collections", headers=auth).status_code == 200
        own_redis.kill()
        down = client.get("/v1/collections", headers=auth)
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "store_unavailable" and "(REDIS_URL)" in down.json()["message"]
        assert 'gemrag_errors_total{kind="store_unavailable",route="/v1/collections"} 1.0' in client.get(
            "/metrics").text
