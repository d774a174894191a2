"""The chain with its cache and ledger store down (issue #14, item 4): refused with the reason
before any model call, unless `answer_without_stores` allows answering unrecorded."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.chain import Chain
from rag.kv import StoreUnavailable
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.tiny_corpus import build_store


def dead_redis() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


@pytest.fixture
def down(gemini_settings: Settings) -> Settings:
    return gemini_settings.model_copy(update={"redis_url": dead_redis()})


def chain_over(settings: Settings) -> Chain:
    from rag.providers.gemini import GeminiProvider

    provider = GeminiProvider(settings)
    store = build_store(settings.model_copy(update={"redis_url": None}), provider)
    return Chain(settings, provider, store)


def test_a_question_is_refused_with_the_reason_and_nothing_is_sent(down: Settings, fake_gemini: FakeGemini) -> None:
    chain = chain_over(down)
    fake_gemini.clear_log()
    with pytest.raises(StoreUnavailable, match=r"Not answered: Cannot use Redis at 127\.0\.0\.1") as refused:
        chain.ask("How many days of paid vacation do employees get?")
    assert "GEMRAG_ANSWER_WITHOUT_STORES=true" in str(refused.value)
    assert fake_gemini.requests == []  # not even the query embedding


def test_with_answer_without_stores_the_answer_comes_uncached(down: Settings, fake_gemini: FakeGemini) -> None:
    chain = chain_over(down.model_copy(update={"answer_without_stores": True}))
    fake_gemini.reply("25 days [1].")
    record = chain.ask("How many days of paid vacation do employees get?")
    assert record.answer == "25 days [1]." and not record.cached
    with pytest.raises(StoreUnavailable):
        chain.ledger.check()  # and whoever shows costs can tell they are not recorded


@pytest.fixture
def own_chroma(tmp_path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Chroma server of this test's own, which it may stop."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    server = subprocess.Popen([str(chroma), "run", "--host", "127.0.0.1", "--port", str(port), "--path",
                               str(tmp_path / "chroma")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, server
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_a_chroma_server_lost_after_the_store_opened_is_a_store_refusal(
    gemini_settings: Settings, fake_gemini: FakeGemini, own_chroma: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """chromadb checks its server only when its client is made: stopped later, every question
    was an unexpected httpx.ConnectError (exit 3, HTTP 500) while /readyz said it was down.
    No setting answers without the documents, so the cache-and-ledger advice is not given."""
    url, server = own_chroma
    chain = chain_over(gemini_settings.model_copy(update={"chroma_url": url}))
    server.kill()
    server.wait()
    port = url.rsplit(":", 1)[1]
    with pytest.raises(StoreUnavailable, match=rf"Cannot reach the Chroma server at 127\.0\.0\.1:{port}") as refused:
        chain.ask("How many days of paid vacation do employees get?")
    assert refused.value.documents and "GEMRAG_ANSWER_WITHOUT_STORES" not in str(refused.value)
    assert re.search(r"\w\. Start it or fix CHROMA_URL \(one process alone, not a server with ingest workers",
                     str(refused.value)), refused.value  # it ran on: "Connection refused Start it, ... or unset it"
    with pytest.raises(StoreUnavailable, match="CHROMA_URL"):  # a listing too, through the client
        chain.stores.files("tiny-corpus")
