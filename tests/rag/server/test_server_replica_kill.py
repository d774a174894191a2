"""A replica killed (SIGKILL) in the middle of a stream loses no recorded cost: the answer's
money was set aside in the shared ledger before the model call was sent, so another replica
reports the session's spending at least as high as what the model had produced."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest

from rag.costs import price_usd
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini, Reply, count_tokens
from rag.types import Usage
from tests.fakes.tiny_corpus import build_store
from tests.rag.server.test_server_replicas import start_replica, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.chroma_server]
ANSWER = " ".join(f"word{i}" for i in range(600))  # 20 s at 30 tokens/s: the kill lands mid-stream


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(tokens_per_s=30) as server:
        yield server


def test_replica_killed_mid_stream_loses_no_recorded_cost(fake, redis_url, chroma_server_url, tmp_path):
    collection = f"kill-{uuid.uuid4().hex[:10]}"
    seed = Settings(data_dir=tmp_path / "seed", api_key="k", base_url=fake.url, chroma_url=chroma_server_url,
                    collection=collection, tier="unlimited")
    build_store(seed, GeminiProvider(seed), name=collection)
    env = {"GEMINI_API_KEY": "k", "GEMRAG_BASE_URL": fake.url, "GEMRAG_REDIS_URL": redis_url,
           "GEMRAG_CHROMA_URL": chroma_server_url, "GEMRAG_COLLECTION": collection, "GEMRAG_TIER": "unlimited"}
    replicas = [start_replica(env, tmp_path / f"r{i}", tmp_path / f"r{i}.log") for i in range(2)]
    (doomed, doomed_url), (_, survivor_url) = replicas
    try:
        for i, (process, url) in enumerate(replicas):
            wait_ready(process, url, tmp_path / f"r{i}.log")
        fake.reply(Reply(ANSWER))
        body = {"question": "How many days of paid vacation do employees get?", "session_id": "doomed"}
        with httpx.stream("POST", f"{doomed_url}/v1/ask", json=body, timeout=30) as response:
            deltas = 0
            for line in response.iter_lines():
                deltas += line.startswith("data: ")
                if deltas == 5:
                    os.kill(doomed.pid, signal.SIGKILL)  # the replica dies with the answer half written
                    break
        doomed.wait(10)
        [call] = fake.calls("streamGenerateContent")
        produced = Usage(prompt_tokens=sum(count_tokens(p["text"]) for c in call.body["contents"] for p in c["parts"]),
                         output_tokens=5 * 4)  # at least the 5 pieces the client saw, 4 tokens each
        spent = httpx.get(f"{survivor_url}/v1/sessions/doomed/costs", timeout=10).json()["total"]["cost_usd"]
        assert spent >= price_usd(seed, seed.flash_model, produced) > 0
    finally:
        for process, _ in replicas:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
