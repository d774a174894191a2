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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fakes.gemini_cli import run
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
