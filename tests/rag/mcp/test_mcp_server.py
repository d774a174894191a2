"""`python -m rag.mcp` as an MCP client meets it, on stdio and on streamable HTTP: the
`search` and `ask` tools over the offline default and an ingested collection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from rag.conversations import Conversations
from rag.refusal import PHRASES
from tests.fakes.tiny_corpus import build_store

pytestmark = pytest.mark.slow


@pytest.fixture
def corpus(settings, offline_provider):
    build_store(settings, offline_provider)
    return ["--collection", "tiny-corpus", "--data-dir", str(settings.data_dir)]


async def use_tools(client: Client) -> None:
    tools = {tool.name: tool.description or "" for tool in (await client.list_tools()).tools}
    assert set(tools) == {"search", "ask"} and all(phrase in tools["ask"] for phrase in PHRASES)
    found = await client.call_tool("search", {"query": "paid vacation days per year", "k": 3})
    passages = found.structured_content["result"]
    assert len(passages) == 3 and passages[0]["source"] == "handbook.pdf" and passages[0]["page"] == 2
    files = (await client.call_tool("search", {"query": "handbook pages", "k": 4, "per_file": True})).structured_content
    sources = [p["source"] for p in files["result"]]
    assert len(sources) == 4 and len(set(sources)) == 4 and "handbook.pdf" in sources
    answered = await client.call_tool("ask", {"question": "How many days of paid vacation do employees get?"})
    answer = answered.structured_content
    assert "25 days" in answer["answer"] and answer["citations"][0]["source"] == "handbook.pdf"
    assert answer["route"].startswith("offline") and answer["cached"] is False
    missing = await client.call_tool("search", {"query": "x", "collection": "nothing-here"})
    assert missing.is_error and "nothing-here" in json.dumps(missing.model_dump())
    for k in (0, 51):  # were clamped to 1 and 50 without a word
        assert (await client.call_tool("search", {"query": "vacation", "k": k})).is_error
    only = await client.call_tool("search", {"query": "vacation", "sources": ["security.md"]})
    assert {p["source"] for p in only.structured_content["result"]} == {"security.md"}
    typo = await client.call_tool("search", {"query": "vacation", "sources": ["nope.md"]})
    assert typo.is_error and "holds no file 'nope.md'" in json.dumps(typo.model_dump())


async def follow_up(client: Client, settings) -> None:
    """A session keeps its turns where the API keeps its own: the follow-up is read with the
    question before it (it was searched as asked; "how is it measured?" was refused)."""
    first = await client.call_tool("ask", {"question": "How many days of paid vacation do employees get?",
                                           "session_id": "s1"})
    follow = await client.call_tool("ask", {"question": "and until when can unused ones be carried over?",
                                            "session_id": "s1"})
    assert not first.is_error and "March" in follow.structured_content["answer"]
    kept = Conversations(settings).history("mcp/s1")
    assert [m.text for m in kept if m.role == "user"] == ["How many days of paid vacation do employees get?",
                                                          "and until when can unused ones be carried over?"]


def test_refused_arguments_are_named_in_one_line(corpus, settings, offline_provider):
    """A tool's refused arguments read as the API's 422 does: each argument and the reason,
    not pydantic's report with its error types and links."""
    from rag.chain import Chain
    from rag.mcp.tools import build_server

    server = build_server(Chain(settings.model_copy(update={"collection": "tiny-corpus"}), offline_provider))

    async def session() -> list[str]:
        async with Client(server) as client:
            calls = [client.call_tool("search", {"query": "vacation", "k": 0}),
                     client.call_tool("search", {"k": 51, "mode": "fuzzy"}),
                     client.call_tool("ask", {"question": "why?", "session_id": ""})]
            results = [await call for call in calls]
        assert all(r.is_error for r in results)
        return [r.content[0].text for r in results]  # type: ignore[union-attr]

    assert anyio.run(session) == [
        "search refused its arguments: k: Input should be greater than or equal to 1.",
        "search refused its arguments: query: Field required; k: Input should be less than or equal to 50; "
        "mode: Input should be 'hybrid', 'vector' or 'bm25'.",
        "ask refused its arguments: session_id: String should have at least 1 character.",
    ]


def test_stdio(corpus, settings):
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.mcp", *corpus], env=dict(os.environ))

    async def session() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            await use_tools(client)
            await follow_up(client, settings)

    anyio.run(session)


def test_streamable_http_on_loopback(corpus, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "mcp.log"
    server = subprocess.Popen([sys.executable, "-m", "rag.mcp", "--http", "--port", str(port), *corpus],
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b"Uvicorn running" not in log.read_bytes() and b"gemrag MCP on" not in log.read_bytes():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(1)

        async def session() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=120) as client:
                await use_tools(client)

        anyio.run(session)
    finally:
        server.terminate()
        server.wait(10)


def test_a_busy_port_is_one_line_and_exit_2(corpus):
    """It printed its banner, then uvicorn's bind error, and ended with exit 3."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "rag.mcp", "--http", "--port", str(port), *corpus],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr == (
        f"error: cannot serve on 127.0.0.1:{port}: Address already in use; choose another port with --port\n")


def test_http_on_another_address_is_refused():
    run = subprocess.run([sys.executable, "-m", "rag.mcp", "--http", "--host", "0.0.0.0"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "no authentication" in run.stderr


def test_a_data_dir_or_collection_with_nothing_ingested_is_refused_before_serving(tmp_path):
    """An assistant launching it from another folder read .gemrag there (created it, too),
    and every call then failed with "no collection"."""
    run = subprocess.run([sys.executable, "-m", "rag.mcp", "--data-dir", str(tmp_path / "typo")],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("error: No collection 'corpus' in ") and "(no such folder)" in run.stderr
    assert not (tmp_path / "typo").exists()
