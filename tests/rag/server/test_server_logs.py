"""The server's request id: taken from X-Request-ID (or made), echoed back, and on every log
line of the request, including the model calls it made (JSON logs)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest

from rag.settings import Settings
from tests.fakes.logs import captured_logs
from tests.rag.server.conftest import Running


@pytest.fixture
def log_lines(api_settings: Settings) -> Iterator[io.StringIO]:
    with captured_logs(api_settings.model_copy(update={"log_format": "json", "log_level": "info"})) as out:
        yield out


def test_request_id_follows_the_request_into_model_calls(api: Running, log_lines: io.StringIO) -> None:
    answer = httpx.post(f"{api.url}/v1/ask", json={"question": "How many vacation days?", "stream": False},
                        headers={"X-Request-ID": "trace-42"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == "trace-42"
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    mine = [line for line in lines if line["request_id"] == "trace-42"]
    assert any(line.get("model") and line["message"].endswith("call done") for line in mine), lines
    assert any(line["message"].startswith("POST /v1/ask 200") for line in mine)
    # At info the HTTP clients' own lines (each Chroma and Gemini request) buried these.
    assert not [line for line in lines if line["logger"].startswith(("httpx", "httpcore", "chromadb"))]


def test_the_deployments_log_requests_at_info() -> None:
    """With the default level (warning) the shipped configurations logged no request or job
    line at all (operations walkthrough)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "deploy"
    assert "GEMRAG_LOG_LEVEL: info" in (root / "k8s" / "base" / "configmap.yaml").read_text()
    assert "GEMRAG_LOG_LEVEL: info" in (root / "compose.yaml").read_text()


def test_a_request_without_an_id_gets_one_and_a_hostile_one_is_replaced(api: Running) -> None:
    made = httpx.get(f"{api.url}/healthz").headers["x-request-id"]
    assert len(made) == 16
    hostile = httpx.get(f"{api.url}/healthz", headers={"X-Request-ID": "a b\"{}"}).headers["x-request-id"]
    assert hostile != "a b\"{}" and len(hostile) == 16
