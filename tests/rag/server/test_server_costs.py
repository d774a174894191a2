"""`GET /v1/sessions/{id}/costs` and `python -m rag costs --session ID --json` over the same
ledger: the walkthrough found the API's output_tokens (50) not explaining a cost that
included 24 thinking tokens, and an unknown session a 200 with zeros from the API but exit 1
with nothing on stdout from the CLI."""

from __future__ import annotations

import json

import httpx
import pytest

from rag.costs import price_usd
from rag.server.auth import LOCAL_CALLER
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from rag.types import Usage
from tests.fakes.gemini_cli import gemini_env, run
from tests.rag.server.conftest import Running

pytestmark = pytest.mark.slow
QUESTION = "How many days of paid vacation do employees get?"


def cli_costs(fake: FakeGemini, settings: Settings, session: str) -> tuple[int, dict]:
    done = run("rag", "costs", "--session", session, "--json", env=gemini_env(fake, settings.data_dir))
    return done.returncode, json.loads(done.stdout)


def test_the_api_and_the_cli_report_a_session_with_the_same_fields_and_thinking_tokens(
    api: Running, api_settings: Settings, fake_gemini: FakeGemini
) -> None:
    asked = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "session_id": "s1", "stream": False},
                       timeout=10)
    assert asked.status_code == 200, asked.text
    served = httpx.get(f"{api.url}/v1/sessions/s1/costs").json()
    assert served["total"]["usage"]["thinking_tokens"] > 0 and served["note"] is None
    for model, row in served["by_model"].items():  # the tokens shown explain the money shown
        assert price_usd(api_settings, model, Usage(**row["usage"])) == pytest.approx(row["cost_usd"])

    code, printed = cli_costs(fake_gemini, api_settings, f"{LOCAL_CALLER}/s1")
    assert code == 0
    assert printed["total"] == served["total"] and printed["models"] == served["by_model"]


def test_an_unknown_session_is_an_empty_report_with_a_note_from_both(
    api: Running, api_settings: Settings, fake_gemini: FakeGemini
) -> None:
    served = httpx.get(f"{api.url}/v1/sessions/nosuch/costs")
    assert served.status_code == 200
    code, printed = cli_costs(fake_gemini, api_settings, "nosuch")
    assert code == 1  # README, Exit codes: "done, but ... a session with no calls"
    note = "no calls recorded for session 'nosuch': not used yet, or not this id"
    assert served.json()["note"] == printed["note"] == note
    assert served.json()["total"] == printed["total"] and printed["total"]["cost_usd"] == 0


def test_a_session_id_in_the_path_is_an_ask_s_or_an_ingest_s(api: Running) -> None:
    """A 5,000-character path was read and echoed back: the path holds an ask's session id
    or "ingest:<collection>", the session an ingest's spending is charged to."""
    for bad in ("x" * 5_000, "a%20b", "ingest:" + "x" * 201, "other:docs"):
        refused = httpx.get(f"{api.url}/v1/sessions/{bad}/costs")
        assert refused.status_code == 422, bad
        assert refused.json()["fields"][0]["field"] == "path.session_id"
    for good in ("x" * 128, "ingest:" + "x" * 200, "ingest:my-docs"):
        assert httpx.get(f"{api.url}/v1/sessions/{good}/costs").status_code == 200, good
