"""Ingest's spending is in the cost ledger, request by request: exactly what the fake Gemini
answered (retried 429s and 503s are not billed, so not charged), nothing for a re-run that
embeds nothing, and everything up to the moment a run is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.pipeline import ingest_paths
from ingest.spending import ledger_session
from rag.costs import Ledger
from rag.providers.gemini import GeminiProvider
from rag.reports import cost_report
from rag.testing.fake_gemini import TEST_API_KEY, Fault
from tests.ingest.conftest import billed_embeddings, billed_tokens
from tests.ingest.fake_embedder import FakeEmbedder

EMBED = "batchEmbedContents"
REPO = Path(__file__).resolve().parents[2]
SESSION = ledger_session("corpus")


def _folder(root: Path, files: int = 8) -> Path:
    """Files of one chunk each on the Gemini profile: one embedding request per file."""
    root.mkdir()
    for i in range(files):
        (root / f"doc{i}.md").write_text(f"# Doc {i}\n\nParagraph {i} is about topic {i * 7} and nothing else.\n")
    return root


def test_an_online_ingest_charges_what_the_fake_answered_and_a_rerun_nothing(corpus, gemini_settings, fake_gemini):
    settings = gemini_settings.model_copy(update={"embed_batch_size": 2, "ingest_batch_chunks": 2})
    fake_gemini.inject(Fault.rate_limited("0s"), times=2, method=EMBED)
    fake_gemini.inject(Fault.server_error(503), times=1, method=EMBED)
    report = ingest_paths([corpus.root], settings, GeminiProvider(settings))
    assert report.exit_code == 0
    statuses = [r.status for r in fake_gemini.calls(EMBED)]
    assert statuses.count(429) == 2 and statuses.count(503) == 1 and statuses.count(200) >= 2

    spent = Ledger(settings).session(SESSION)
    assert spent.calls == len(billed_embeddings(fake_gemini)) == statuses.count(200)  # a retried request once
    assert spent.usage.prompt_tokens == billed_tokens(fake_gemini)
    assert report.cost_usd == pytest.approx(spent.cost_usd) and spent.cost_usd > 0
    assert cost_report(settings, SESSION).total.cost_usd == pytest.approx(report.cost_usd)  # python -m rag costs

    rerun = ingest_paths([corpus.root], settings, GeminiProvider(settings))
    assert rerun.cost_usd == 0 and Ledger(settings).session(SESSION) == spent


def test_the_cli_summary_shows_the_cost_the_ledger_recorded(corpus, gemini_settings, fake_gemini, monkeypatch, capsys):
    for name, value in {"GEMINI_API_KEY": TEST_API_KEY, "GEMRAG_BASE_URL": fake_gemini.url,
                        "GEMRAG_TIER": "unlimited", "GEMRAG_REQUEST_TIMEOUT_S": "5"}.items():
        monkeypatch.setenv(name, value)
    assert main([str(corpus.root), "--data-dir", str(gemini_settings.data_dir), "-q"]) == 0
    out = capsys.readouterr().out
    spent = Ledger(gemini_settings).session(SESSION)
    assert spent.cost_usd > 0 and f"{spent.cost_usd:.6f}" in out
    assert f"python -m rag costs --session {SESSION}" in out


def test_an_offline_ingest_records_its_calls_at_no_cost(corpus, settings):
    fake = FakeEmbedder()
    report = ingest_paths([corpus.root], settings, fake)
    spent = Ledger(settings).session(SESSION)
    assert spent.calls == len(fake.calls) > 0 and spent.usage.prompt_tokens == len(fake.embedded_texts)
    assert spent.cost_usd == report.cost_usd == 0


def test_a_run_killed_mid_way_has_its_spend_up_to_the_kill_recorded(tmp_path, gemini_settings, fake_gemini):
    """One request at a time, each charged as it returns: the ledger holds exactly the
    requests answered before the kill, but one that was in flight (billed, never received)."""
    folder = _folder(tmp_path / "docs")
    fake_gemini.latency_s = 0.3
    env = {**os.environ, "PYTHONPATH": str(REPO), "GEMINI_API_KEY": TEST_API_KEY, "GEMRAG_BASE_URL": fake_gemini.url,
           "GEMRAG_TIER": "unlimited", "GEMRAG_REQUEST_TIMEOUT_S": "30", "GEMRAG_EMBED_BATCH_SIZE": "1",
           "GEMRAG_EMBED_CONCURRENCY": "1", "GEMRAG_INGEST_BATCH_CHUNKS": "1"}
    args = [sys.executable, "-m", "ingest", str(folder), "-q", "--data-dir", str(gemini_settings.data_dir)]
    ledger = Ledger(gemini_settings)
    child = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while ledger.session(SESSION).calls < 2:
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    answered = billed_embeddings(fake_gemini)
    spent = ledger.session(SESSION)
    assert len(answered) < len(list(folder.iterdir()))  # killed before the end
    assert len(answered) - spent.calls in (0, 1)
    assert spent.usage.prompt_tokens == billed_tokens(fake_gemini, answered[: spent.calls]) > 0
    lost = billed_tokens(fake_gemini, answered[spent.calls :])

    rerun = ingest_paths([folder], gemini_settings, GeminiProvider(gemini_settings))
    assert rerun.exit_code == 0
    total = Ledger(gemini_settings).session(SESSION)
    assert total.usage.prompt_tokens == billed_tokens(fake_gemini) - lost
    assert total.cost_usd == pytest.approx(spent.cost_usd + rerun.cost_usd)
