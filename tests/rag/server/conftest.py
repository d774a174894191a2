"""An API server on a real socket (uvicorn in a thread) over the tiny corpus, on the Gemini
path against the fake Gemini server, so streams, disconnects and clients are tested as a
user meets them."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi import FastAPI

from rag.backend import Backend
from rag.chain import Chain
from rag.providers.gemini import GeminiProvider
from rag.server.app import create_app
from rag.server.auth import new_key
from rag.server.metrics import MeteredLedger, Metrics
from rag.settings import Settings
from rag.stores import Stores
from tests.fakes.tiny_corpus import build_store


@dataclass
class Running:
    url: str
    app: FastAPI
    chain: Chain


def serve_in_thread(app: FastAPI) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def gemini_app(settings: Settings) -> tuple[FastAPI, Chain]:
    metrics = Metrics()
    provider = GeminiProvider(settings)
    backend = Backend.build(settings, provider, ledger=MeteredLedger(settings, metrics),
                            stores=Stores(settings, build_store(settings, provider)))
    return create_app(settings, backend, mounts=[], metrics=metrics), backend.chain


@pytest.fixture
def api_settings(gemini_settings: Settings) -> Settings:
    return gemini_settings.model_copy(update={"collection": "tiny-corpus"})


@pytest.fixture
def api(api_settings: Settings) -> Iterator[Running]:
    app, chain = gemini_app(api_settings)
    for url in serve_in_thread(app):
        yield Running(url, app, chain)


@pytest.fixture
def keyed_settings(gemini_settings, redis_url, chroma_server_url):
    """Settings for the job routes (Redis, a Chroma server the worker shares, a fresh
    collection) and the headers of a reader, a loader and an admin key."""
    keys, lines = {}, []
    for name, role in (("reader", "ask"), ("loader", "ingest"), ("ops", "admin")):
        keys[name], line = new_key(name, role)
        lines.append(line)
    settings = gemini_settings.model_copy(update={
        "redis_url": redis_url, "chroma_url": chroma_server_url, "api_keys": ",".join(lines), "job_min_backoff_s": 1.0,
        "collection": f"upl-{uuid.uuid4().hex[:12]}"})
    return settings, {name: {"X-API-Key": key} for name, key in keys.items()}
