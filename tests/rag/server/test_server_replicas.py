"""Two `python -m rag.server` processes sharing one Redis and one Chroma server behave as one
server: one answer cache, one ledger, and one Gemini rate limit that the fake Gemini never
sees exceeded, however the requests are spread."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.tiny_corpus import build_store

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.chroma_server]
FLASH = Settings().flash_model
FLASH_RPM = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_replica(env: dict[str, str], data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.server", "--no-mounts", "--port", str(port), "--data-dir", str(data_dir)],
        env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(fake, tmp_path_factory) -> Iterator[list[str]]:
    import redis

    from rag.settings import Settings

    redis_url, chroma_url = os.environ.get("GEMRAG_TEST_REDIS_URL"), os.environ.get("GEMRAG_TEST_CHROMA_URL")
    if not (redis_url and chroma_url):
        if os.environ.get("CI"):
            pytest.fail("GEMRAG_TEST_REDIS_URL and GEMRAG_TEST_CHROMA_URL must be set (.ci/run starts both)")
        pytest.skip("needs a Redis and a Chroma server")
    redis.Redis.from_url(redis_url).flushdb()
    base = tmp_path_factory.mktemp("replicas")
    collection = f"replicas-{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=base / "seed", api_key="k", base_url=fake.url, chroma_url=chroma_url,
                        collection=collection, tier="unlimited")
    build_store(settings, GeminiProvider(settings), name=collection)
    fake.clear_log()
    fake.rate_limit(FLASH_RPM, model=FLASH)  # the fake answers 429 past this, as the real API would
    env = {
        "GEMINI_API_KEY": "k", "GEMRAG_BASE_URL": fake.url, "GEMRAG_REDIS_URL": redis_url,
        "GEMRAG_CHROMA_URL": chroma_url, "GEMRAG_COLLECTION": collection, "GEMRAG_TIER": "unlimited",
        "GEMRAG_MODELS": json.dumps({FLASH: {"limits": {"unlimited": {"rpm": FLASH_RPM}}}}),
        "GEMRAG_QUEUE_MAX_WAIT_S": "1.5", "GEMRAG_MAX_ATTEMPTS": "1",
        # No Flash-Lite to give way to: this test is about the shared limit (rag/headroom.py
        # would otherwise move answers to Flash-Lite as Flash fills up).
        "GEMRAG_LITE_MODEL": FLASH,
    }
    started = [start_replica(env, base / f"r{i}", base / f"r{i}.log") for i in range(2)]
    for i, (process, url) in enumerate(started):
        wait_ready(process, url, base / f"r{i}.log")
    yield [url for _, url in started]
    for process, _ in started:
        process.terminate()
        process.wait(10)


def ask(url: str, question: str, session: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/ask", json={"question": question, "session_id": session, "stream": False},
                      timeout=30)


def test_replicas_share_one_answer_cache_and_one_ledger(replicas):
    a, b = replicas
    first = ask(a, "How many days of paid vacation do employees get?", "one").json()
    again = ask(b, "How many days of paid vacation do employees get?", "two").json()
    assert first["cached"] is False and again["cached"] is True and again["answer"] == first["answer"]
    spent = httpx.get(f"{b}/v1/sessions/one/costs").json()["total"]  # charged on a, read on b
    assert spent["answers"] == 1 and first["cost_usd"] > 0 and spent["cost_usd"] == pytest.approx(first["cost_usd"])
    saved = httpx.get(f"{a}/v1/sessions/two/costs").json()["total"]
    assert (saved["cache_hits"], saved["cost_usd"]) == (1, 0) and saved["saved_usd"] == pytest.approx(
        first["cost_usd"])


def test_one_rate_limit_across_replicas_the_fake_never_sees_exceeded(replicas, fake):
    used = len(fake.calls("streamGenerateContent", FLASH))  # the previous test's answer
    questions = [f"Question number {i} about expense reports?" for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: ask(replicas[i % 2], questions[i], f"user{i}"), range(10)))
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(ok) == FLASH_RPM - used and len(refused) == 10 - len(ok)
    assert all(int(r.headers["retry-after"]) >= 1 and r.json()["error"] == "quota_exhausted" for r in refused)
    assert [r for r in fake.calls() if r.status == 429] == []  # our limiter held every replica back
    assert len(fake.calls("streamGenerateContent", FLASH)) == FLASH_RPM
    metrics = httpx.get(f"{replicas[0]}/metrics").text
    assert f'gemrag_quota_requests_today{{model="{FLASH}"}} {float(FLASH_RPM)}' in metrics
    assert 'gemrag_errors_total{kind="quota_exhausted",route="/v1/ask"}' in metrics
