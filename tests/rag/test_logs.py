"""Structured logs: JSON lines tagged with the request id of the work they belong to, in
threads that copy the context too, and never a Gemini key."""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from rag.logs import bound, request_id
from rag.settings import Settings
from tests.fakes.logs import captured_logs


@pytest.fixture
def lines(settings: Settings) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    keyed = settings.model_copy(
        update={"log_format": "json", "log_level": "info", "api_key": SecretStr("AIza-main-key")}
    )
    with captured_logs(keyed) as out:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_the_request_id_into_threads(lines: Callable[[], list[dict[str, Any]]]) -> None:
    log = logging.getLogger("rag.test")
    with bound("req-1"):
        log.info("answered", extra={"model": "gemini-3.8-flash", "cost_usd": 0.001})
        worker = threading.Thread(target=contextvars.copy_context().run, args=(log.warning, "from a thread"))
        worker.start()
        worker.join()
    log.info("outside")
    first, second, third = lines()
    assert first["request_id"] == "req-1" and first["model"] == "gemini-3.8-flash" and first["level"] == "info"
    assert second["request_id"] == "req-1" and second["message"] == "from a thread"
    assert third["request_id"] == "-"
    assert request_id.get() == "-"


def test_no_key_is_ever_logged(lines: Callable[[], list[dict[str, Any]]]) -> None:
    logging.getLogger("rag.test").warning("call failed with key %s, again %s", "AIza-main-key", "AIza-main-key")
    (line,) = lines()
    assert "AIza" not in json.dumps(line)
    assert line["message"].count("[redacted]") == 2
