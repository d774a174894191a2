"""`python -m ingest.worker` as a child process with the test's settings, and a helper that
waits on a job through the API the way a client would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from rag.settings import Settings

SETTINGS_ENV = {
    "data_dir": "GEMRAG_DATA_DIR",
    "redis_url": "GEMRAG_REDIS_URL",
    "chroma_url": "GEMRAG_CHROMA_URL",
    "base_url": "GEMRAG_BASE_URL",
    "tier": "GEMRAG_TIER",
    "job_heartbeat_s": "GEMRAG_JOB_HEARTBEAT_S",
    "embed_batch_size": "GEMRAG_EMBED_BATCH_SIZE",
    "ingest_batch_chunks": "GEMRAG_INGEST_BATCH_CHUNKS",
    "request_timeout_s": "GEMRAG_REQUEST_TIMEOUT_S",
    "job_max_retries": "GEMRAG_JOB_MAX_RETRIES",
    "job_min_backoff_s": "GEMRAG_JOB_MIN_BACKOFF_S",
}


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **{var: str(getattr(settings, field)) for field, var in SETTINGS_ENV.items()
                            if getattr(settings, field) is not None}}
    if settings.api_key is not None:
        env["GEMINI_API_KEY"] = settings.api_key.get_secret_value()
    process = subprocess.Popen([sys.executable, "-m", "ingest.worker"], env=env, stdout=log.open("ab"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while "ingest worker on queue" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return process


@contextmanager
def running_worker(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`start_worker`, stopped when the block ends."""
    worker = start_worker(settings, log)
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(10)


def wait_job(client: TestClient, job_id: str, until: Callable[[dict], bool], timeout_s: float = 60,
             headers: dict[str, str] | None = None) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers or {}).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job never got there: {job}"
        time.sleep(0.1)
