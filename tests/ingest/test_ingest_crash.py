"""kill -9 at any point of an ingest run, then run again: the collection must hold exactly
the chunks of the current files, as a clean ingest into an empty data dir gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from tests.ingest.conftest import snapshot
from tests.ingest.fake_embedder import FakeEmbedder

SCRIPT = Path(__file__).with_name("crash_run.py")
REPO = Path(__file__).resolve().parents[2]


def _grow(corpus) -> None:
    for i in range(6):
        body = "\n\n".join(f"Paragraph {j} of file {i} talks about topic {i * 10 + j}." for j in range(8))
        corpus.path(f"more/file{i}.md").parent.mkdir(exist_ok=True)
        corpus.path(f"more/file{i}.md").write_text(f"# File {i}\n\n{body}\n")


def _change(corpus) -> None:
    """Edits, a deletion and an addition: every kind of write a run makes."""
    corpus.path("notes.txt").unlink()
    guide = corpus.path("guide.md")
    guide.write_text(guide.read_text().replace("server-sent events", "SSE frames"))
    corpus.path("more/file2.md").write_text("# File 2\n\nCompletely rewritten.\n")
    corpus.path("added.md").write_text("# Added\n\nA file that is new in this run.\n")


def _forget_open_clients() -> None:
    """Embedded Chroma keeps one client per path per process, with the HNSW index in memory,
    and does not see another process's writes through it (it is single-process by design).
    The test process must reopen the store after the child wrote to it, as a new run would."""
    from chromadb.api.client import SharedSystemClient

    from rag import store

    store._clients.clear()  # the app's one client per data dir, made afresh on next use
    SharedSystemClient.clear_system_cache()


def _run_killed(settings, corpus, step: str, nth: int, when: str) -> subprocess.CompletedProcess:
    _forget_open_clients()
    env = {**os.environ, "GEMRAG_INGEST_BATCH_CHUNKS": "3", "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(SCRIPT), step, str(nth), when, "--",
            str(corpus.root), "--prune", "--quiet", "--data-dir", str(settings.data_dir)]
    try:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    finally:
        _forget_open_clients()


def _expected(tmp_path: Path, corpus, fake_id: str):
    clean = tmp_path / "clean"
    from rag.settings import Settings

    clean_settings = Settings(data_dir=clean, api_key=None)
    ingest_paths([corpus.root], clean_settings, FakeEmbedder())
    return snapshot(clean_settings, fake_id)


CRASH_POINTS = [
    ("forget", 1, "after"),  # pruned file forgotten, its chunks not yet deleted
    ("embed", 2, "before"),
    ("upsert", 2, "after"),  # chunks stored, files not committed
    ("commit", 1, "after"),  # committed, old chunks not yet deleted
    ("delete", 2, "before"),
    ("bump", 2, "before"),  # changed, version not yet bumped
]


@pytest.mark.parametrize(
    ("step", "nth", "when"),
    [pytest.param(*p, marks=[] if p[0] == "upsert" else [pytest.mark.slow]) for p in CRASH_POINTS],
)
def test_sigkill_at_each_step_then_rerun_gives_exactly_the_current_files(
    corpus, small_batches, tmp_path, step, nth, when
):
    _grow(corpus)
    first = ingest_paths([corpus.root], small_batches, FakeEmbedder())
    _change(corpus)

    killed = _run_killed(small_batches, corpus, step, nth, when)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert f"{step} {nth}" in killed.stdout.splitlines()

    fake = FakeEmbedder()
    rerun = ingest_paths([corpus.root], small_batches, fake, prune=True)
    assert rerun.exit_code == 0
    assert snapshot(small_batches, fake.embedding_id) == _expected(tmp_path, corpus, fake.embedding_id)
    assert rerun.version > first.version


@pytest.mark.slow
def test_sigkill_from_outside_mid_run_then_rerun(corpus, small_batches, tmp_path):
    _grow(corpus)
    env = {**os.environ, "GEMRAG_INGEST_BATCH_CHUNKS": "3", "PYTHONPATH": str(REPO), "FAKE_EMBED_DELAY_S": "0.2"}
    args = [sys.executable, str(SCRIPT), "none", "0", "before", "--",
            str(corpus.root), "--quiet", "--data-dir", str(small_batches.data_dir)]
    _forget_open_clients()
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "upsert 3":
                proc.send_signal(signal.SIGKILL)
                break
        assert proc.wait(timeout=60) == -signal.SIGKILL
    _forget_open_clients()
    fake = FakeEmbedder()
    ingest_paths([corpus.root], small_batches, fake)
    assert snapshot(small_batches, fake.embedding_id) == _expected(tmp_path, corpus, fake.embedding_id)
