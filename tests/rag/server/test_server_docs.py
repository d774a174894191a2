"""The API's published contract: the checked-in OpenAPI schema and the README's clients."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from rag.server.app import create_app
from tests.rag.server.conftest import Running

ROOT = Path(__file__).resolve().parents[3]
README_URL = "http://127.0.0.1:8000"


def test_checked_in_openapi_schema_matches_the_app(settings):
    served = json.loads(json.dumps(create_app(settings, mounts=[]).openapi()))
    checked_in = json.loads((ROOT / "rag/server/openapi.json").read_text())
    assert served == checked_in, "regenerate it: python -m rag.server openapi > rag/server/openapi.json"
    assert {"/v1/ask", "/v1/collections", "/v1/models", "/v1/sessions/{session_id}/costs", "/healthz",
            "/readyz"} <= set(checked_in["paths"])


def readme_block(language: str, containing: str) -> str:
    section = (ROOT / "README.md").read_text().split("### Test client", 1)[1]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    return next(b for b in blocks if containing in b)


def test_readme_curl_client_streams_an_answer(api: Running):
    script = readme_block("bash", "curl").replace(README_URL, api.url)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("event: delta\ndata: {")
    done = json.loads(out.split("event: done\ndata: ", 1)[1].splitlines()[0])
    assert done["session_id"] == "demo" and done["route"]["model"] == "gemini-3.8-flash"


def test_readme_python_client_prints_the_answer_sources_and_cost(api: Running):
    script = readme_block("python", "httpx.stream").replace(README_URL, api.url)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    answer, sources = run.stdout.rsplit("\nsources: ", 1)
    assert "[1]" in answer and "handbook.pdf" in sources and "cost: $" in sources
