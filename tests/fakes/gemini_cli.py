"""Running a command (`python -m ingest`, `python -m rag`) as a user would, in its own process,
on the Gemini path against a fake Gemini server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini


def gemini_env(fake: FakeGemini, data_dir: Path, **settings: object) -> dict[str, str]:
    """The environment of a user with a key, pointed at `fake`, with fast retries; `settings`
    become GEMRAG_* variables (session_budget_usd=0.01 → GEMRAG_SESSION_BUDGET_USD=0.01)."""
    env = {
        **os.environ,
        "GEMINI_API_KEY": TEST_API_KEY,
        "GEMRAG_BASE_URL": fake.url,
        "GEMRAG_DATA_DIR": str(data_dir),
        "GEMRAG_TIER": "unlimited",
        "GEMRAG_REQUEST_TIMEOUT_S": "2",
        "GEMRAG_BACKOFF_INITIAL_S": "0.01",
        "GEMRAG_BACKOFF_MAX_S": "0.05",
        "GEMRAG_DEADLINE_S": "10",
    }
    env.update({f"GEMRAG_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def run(module: str, *args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], input=stdin, capture_output=True, text=True, env=env, timeout=300
    )
