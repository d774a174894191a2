"""The API's published contract: the checked-in OpenAPI schema and the README's clients."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag.providers.gemini import GeminiProvider
from rag.server.app import create_app
from rag.settings import Settings
from tests.rag.server.conftest import serve_in_thread

ROOT = Path(__file__).resolve().parents[3]
README_URL = "http://127.0.0.1:8000"


def test_checked_in_openapi_schema_matches_the_app(settings):
    served = json.loads(json.dumps(create_app(settings, mounts=[]).openapi()))
    checked_in = json.loads((ROOT / "rag/server/openapi.json").read_text())
    assert served == checked_in, "regenerate it: python -m rag.server openapi > rag/server/openapi.json"
    assert {"/v1/ask", "/v1/collections", "/v1/models", "/v1/sessions/{session_id}/costs", "/healthz",
            "/readyz"} <= set(checked_in["paths"])


def test_every_keyed_route_documents_the_refusals_it_really_sends(settings):
    """POST /v1/ask listed 200, 422 and 429 only: a client generated from the schema knew
    nothing of the 401, 403, 404 and 402 it could get."""
    paths = create_app(settings, mounts=[]).openapi()["paths"]
    keyed = {(path, method): op["responses"] for path, ops in paths.items() for method, op in ops.items()
             if path.startswith("/v1/")}
    assert len(keyed) >= 9 and all({"401", "403", "422", "429", "500", "503"} <= set(r) for r in keyed.values())
    assert {"402", "404", "429", "502"} <= set(keyed[("/v1/ask", "post")])  # 500, 502: API walkthrough
    assert "404" in keyed[("/v1/jobs/{job_id}", "get")] and "413" in keyed[("/v1/collections/{name}/documents", "post")]
    # The body's own refusals (API walkthrough: a 415, 413, 408 and 400 came, none was listed).
    for json_body in (("/v1/ask", "post"), ("/v1/collections/{name}/ingest", "post")):
        assert {"400", "408", "413", "415"} <= set(keyed[json_body])


def test_the_schema_describes_the_streams_delta_event(settings):
    """/v1/ask's description named DeltaEvent, which the schema did not hold: no route returns
    it as JSON, so a generated client had no type for `delta` events."""
    schema = create_app(settings, mounts=[]).openapi()
    assert schema["components"]["schemas"]["DeltaEvent"]["properties"] == {"text": {"title": "Text", "type": "string"}}
    assert "DeltaEvent" in schema["paths"]["/v1/ask"]["post"]["responses"]["200"]["description"]


def test_the_schema_says_how_a_key_is_sent_so_docs_can_send_one(settings):
    """/docs had no "Authorize" button: the schema named no security scheme, and every "Try it
    out" of a keyed route was a 401 (operations walkthrough)."""
    schema = create_app(settings, mounts=[]).openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer" and schemes["APIKeyHeader"]["name"] == "X-API-Key"
    keyed = [op for path, ops in schema["paths"].items() for op in ops.values() if path.startswith("/v1/")]
    assert keyed and all(op["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}] for op in keyed)


def readme_block(language: str, containing: str) -> str:
    section = (ROOT / "README.md").read_text().split("### Test client", 1)[1]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    return next(b for b in blocks if containing in b)


@pytest.fixture
def sample_api(gemini_settings: Settings) -> Iterator[str]:
    """What the README's clients talk to: a server over the sample corpus, ingested as the
    README says (`python -m ingest corpus/`), on the Gemini path against the fake server."""
    settings = gemini_settings.model_copy(update={"collection": "corpus"})
    assert ingest_paths([ROOT / "corpus"], settings, GeminiProvider(settings), collection="corpus").exit_code == 0
    yield from serve_in_thread(create_app(settings, mounts=[]))


def test_readme_curl_client_streams_an_answer(sample_api: str):
    script = readme_block("bash", "curl").replace(README_URL, sample_api)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("event: delta\ndata: {")
    done = json.loads(out.split("event: done\ndata: ", 1)[1].splitlines()[0])
    assert done["session_id"] == "demo" and done["route"]["model"] == "gemini-3.8-flash"
    assert [c["source"] for c in done["citations"]] == ["retries.md"]  # the README's example answer cites it


def test_readme_python_client_prints_the_answer_sources_and_cost(sample_api: str):
    script = readme_block("python", "httpx.stream").replace(README_URL, sample_api)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    answer, sources = run.stdout.rsplit("\nsources: ", 1)
    assert "[1]" in answer and "retries.md" in sources and "cost: $" in sources
