"""`python -m ingest --batch` against the fake Gemini's Batch API: half price, one job per run
even when the run is killed after submitting it, each chunk stored once, and online
embedding for what a failed or expired job left."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.batchjobs import BatchRun, Origin
from ingest.cli import main
from ingest.manifest import Manifest
from ingest.pipeline import MANIFEST, ingest_paths
from ingest.report import Status
from ingest.spending import ledger_session
from rag.costs import Ledger, price_usd
from rag.providers.gemini import GeminiProvider
from rag.store import Store
from rag.testing.fake_gemini import TEST_API_KEY, Fault, count_tokens
from rag.types import Usage
from tests.ingest.conftest import billed_tokens, snapshot

CREATE = "asyncBatchEmbedContent"
ONLINE = "batchEmbedContents"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def batch_settings(gemini_settings):
    return gemini_settings.model_copy(update={"batch_poll_s": 0.02})


def _batch(corpus, **kwargs) -> BatchRun:
    return BatchRun(Origin([str(corpus.root)]), **kwargs)


def _clean(gemini_settings, corpus):
    clean = gemini_settings.model_copy(update={"data_dir": gemini_settings.data_dir.parent / "clean"})
    provider = GeminiProvider(clean)
    ingest_paths([corpus.root], clean, provider)
    return snapshot(clean, provider.embedding_id)


def _job_texts(fake_gemini) -> list[str]:
    body = fake_gemini.calls(CREATE)[0].body
    return [r["request"]["content"]["parts"][0]["text"] for r in body["batch"]["inputConfig"]["requests"]["requests"]]


def _cli_env(monkeypatch, fake_gemini) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("GEMRAG_BASE_URL", fake_gemini.url)
    monkeypatch.setenv("GEMRAG_TIER", "unlimited")
    monkeypatch.setenv("GEMRAG_REQUEST_TIMEOUT_S", "5")
    monkeypatch.setenv("GEMRAG_BATCH_POLL_S", "0.02")


def _kill_batch_run(corpus, settings, fake_gemini, tmp_path, when: Callable[[], bool]) -> None:
    """`python -m ingest DIR --batch` in a child process, killed with SIGKILL once `when()` holds."""
    env = {
        **os.environ, "PYTHONPATH": str(REPO), "GEMINI_API_KEY": TEST_API_KEY, "GEMRAG_BASE_URL": fake_gemini.url,
        "GEMRAG_TIER": "unlimited", "GEMRAG_REQUEST_TIMEOUT_S": "30", "GEMRAG_BATCH_POLL_S": "0.02",
    }
    args = [sys.executable, "-m", "ingest", str(corpus.root), "--batch", "-q", "--data-dir", str(settings.data_dir)]
    child = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not when():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)


def test_a_batch_run_embeds_every_new_chunk_in_one_job_at_half_price(corpus, batch_settings, fake_gemini):
    provider = GeminiProvider(batch_settings)
    report = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus))
    assert report.exit_code == 0 and report.count(Status.ADDED) == 4
    assert len(fake_gemini.calls(CREATE)) == 1 and fake_gemini.calls(ONLINE) == []
    stored = list(Store(batch_settings, provider.embedding_id).chunks())
    assert len(stored) == report.chunks and sorted(_job_texts(fake_gemini)) == sorted({c.embedded_text for c in stored})
    assert snapshot(batch_settings, provider.embedding_id) == _clean(batch_settings, corpus)
    # Charged once, in the ledger, at half the online price of the tokens the job reported.
    price = batch_settings.models[batch_settings.embedding_model].price.input
    job_tokens = sum(count_tokens(t) for t in _job_texts(fake_gemini))
    assert report.cost_usd == pytest.approx(job_tokens * price / 1e6 * 0.5)
    assert report.batch_saved_usd == pytest.approx(report.cost_usd)
    spent = Ledger(batch_settings).session(ledger_session("corpus"))
    assert spent.cost_usd == pytest.approx(report.cost_usd) and spent.usage.prompt_tokens == job_tokens
    assert Manifest(batch_settings.path(MANIFEST), "corpus").jobs() == []  # nothing left pending


def test_no_wait_then_resume_stores_the_job_once_and_charges_it_once(corpus, batch_settings, fake_gemini):
    fake_gemini.batch_run_s = 60.0
    provider = GeminiProvider(batch_settings)
    submitted = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus, wait=False))
    assert submitted.exit_code == 0 and submitted.pending_jobs and submitted.chunks == 0
    assert Store(batch_settings, provider.embedding_id).count() == 0
    # Still running: a resume that does not wait finds it so and leaves it alone.
    looked = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus, wait=False, resume=True))
    assert looked.pending_jobs and looked.pending_jobs[0].endswith(("pending", "running"))
    fake_gemini.batch_run_s = 0.0
    resumed = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus, resume=True))
    assert resumed.exit_code == 0 and resumed.count(Status.ADDED) == 4
    assert len(fake_gemini.calls(CREATE)) == 1 and fake_gemini.calls(ONLINE) == []
    assert snapshot(batch_settings, provider.embedding_id) == _clean(batch_settings, corpus)
    spent = Ledger(batch_settings).session(ledger_session("corpus"))
    assert spent.calls == 1 and spent.cost_usd == pytest.approx(resumed.cost_usd) and spent.cost_usd > 0


@pytest.mark.parametrize("fault", [Fault.job_expired(), Fault.job_failed()], ids=["expired", "failed"])
def test_an_expired_or_failed_job_falls_back_to_online_embedding(corpus, batch_settings, fake_gemini, fault):
    fake_gemini.inject(fault, method=CREATE)
    provider = GeminiProvider(batch_settings)
    report = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus))
    state = "expired" if fault.job_state == "BATCH_STATE_EXPIRED" else "failed"
    assert report.exit_code == 0 and report.count(Status.ADDED) == 4
    assert any(f" {state}: its " in note and "embedded online" in note for note in report.notes)
    online = sum(len(r.body["requests"]) for r in fake_gemini.calls(ONLINE))
    assert len(fake_gemini.calls(CREATE)) == 1 and online == len(set(_job_texts(fake_gemini)))
    billed = billed_tokens(fake_gemini)  # before the clean ingest below adds its own
    assert snapshot(batch_settings, provider.embedding_id) == _clean(batch_settings, corpus)
    price = batch_settings.models[batch_settings.embedding_model].price.input
    # The online price of what was embedded online, nothing for the job, as the ledger has it.
    assert report.cost_usd == pytest.approx(billed * price / 1e6) and report.cost_usd > 0
    assert report.batch_saved_usd == 0
    assert Ledger(batch_settings).session(ledger_session("corpus")).cost_usd == pytest.approx(report.cost_usd)


def test_files_changed_while_the_job_ran_are_embedded_online_and_said(corpus, batch_settings, fake_gemini):
    fake_gemini.batch_run_s = 60.0
    provider = GeminiProvider(batch_settings)
    ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus, wait=False))
    corpus.path("late.md").write_text("# Late\n\nA file written after the job was submitted.\n")
    fake_gemini.batch_run_s = 0.0
    report = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus, resume=True))
    assert report.count(Status.ADDED) == 5 and len(fake_gemini.calls(CREATE)) == 1
    assert sum(len(r.body["requests"]) for r in fake_gemini.calls(ONLINE)) == 1
    assert any("1 chunks were not in the batch jobs" in n for n in report.notes)


def test_a_run_killed_around_submission_resumes_the_same_job(corpus, batch_settings, fake_gemini, tmp_path):
    """The child is killed with SIGKILL while its create request is in flight: the job exists
    at the API, but the child never learnt its name. The resume finds it by display name."""
    fake_gemini.inject(Fault.slow(1.5), method=CREATE)  # the server creates the job after this pause
    _kill_batch_run(corpus, batch_settings, fake_gemini, tmp_path, when=lambda: bool(fake_gemini.calls(CREATE)))
    pending = Manifest(batch_settings.path(MANIFEST), "corpus").jobs()
    assert len(pending) == 1 and pending[0].name == ""  # the intent, recorded before the create was sent
    time.sleep(1.6)  # the server finishes the create the child never saw answered
    provider = GeminiProvider(batch_settings)
    report = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus, resume=True))
    assert report.exit_code == 0 and report.count(Status.ADDED) == 4
    assert len(fake_gemini.calls(CREATE)) == 1 and fake_gemini.calls(ONLINE) == []
    assert fake_gemini.calls("listBatches")  # found by its display name
    assert snapshot(batch_settings, provider.embedding_id) == _clean(batch_settings, corpus)


def test_a_run_killed_while_submitting_leaves_no_hold_behind(corpus, batch_settings, fake_gemini, tmp_path,
                                                             monkeypatch):
    """Every job's hold is set aside before the first is sent; rows were written one job at a
    time, so a run killed while sending the first left the others' holds with no row, never
    released, and the resume embedded their chunks online on top (review)."""
    monkeypatch.setenv("GEMRAG_BATCH_JOB_CHUNKS", "1")  # the child's: one job per text
    fake_gemini.inject(Fault.slow(1.5), method=CREATE)
    _kill_batch_run(corpus, batch_settings, fake_gemini, tmp_path, when=lambda: bool(fake_gemini.calls(CREATE)))
    rows = Manifest(batch_settings.path(MANIFEST), "corpus").jobs()
    assert len(rows) > 1 and all(r.hold for r in rows) and Ledger(batch_settings).today().held_usd > 0
    time.sleep(1.6)  # the first job is created all the same
    settings = batch_settings.model_copy(update={"batch_job_chunks": 1})
    report = ingest_paths([corpus.root], settings, GeminiProvider(settings), batch=_batch(corpus, resume=True))
    today = Ledger(settings).today()
    assert report.exit_code == 0 and report.count(Status.ADDED) == 4 and len(fake_gemini.calls(CREATE)) == 1
    assert today.held_usd == 0 and today.cost_usd == pytest.approx(report.cost_usd)
    assert Manifest(settings.path(MANIFEST), "corpus").jobs() == []


def test_a_run_killed_while_waiting_resumes_without_resubmitting(corpus, batch_settings, fake_gemini, tmp_path):
    fake_gemini.batch_run_s = 60.0
    # Killed once it has submitted the job, recorded its name and polled it.
    _kill_batch_run(corpus, batch_settings, fake_gemini, tmp_path, when=lambda: len(fake_gemini.calls("getBatch")) >= 3)
    assert Manifest(batch_settings.path(MANIFEST), "corpus").jobs()[0].name.startswith("batches/")
    fake_gemini.batch_run_s = 0.0
    provider = GeminiProvider(batch_settings)
    # Running the same --batch command again resumes the job too.
    report = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus))
    assert report.exit_code == 0 and report.count(Status.ADDED) == 4
    assert len(fake_gemini.calls(CREATE)) == 1 and fake_gemini.calls(ONLINE) == []
    assert snapshot(batch_settings, provider.embedding_id) == _clean(batch_settings, corpus)
    again = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus))
    assert again.count(Status.UNCHANGED) == 4 and len(fake_gemini.calls(CREATE)) == 1


def test_cli_no_wait_then_bare_resume(capsys, monkeypatch, corpus, batch_settings, fake_gemini):
    _cli_env(monkeypatch, fake_gemini)
    fake_gemini.batch_run_s = 60.0
    data = str(batch_settings.data_dir)
    code = main([str(corpus.root), "--batch", "--no-wait", "--data-dir", data, "-q"])
    out, _ = capsys.readouterr()
    assert code == 0 and "Batch embedding jobs submitted" in out and "python -m ingest --resume" in out
    fake_gemini.batch_run_s = 0.0
    code = main(["--resume", "--data-dir", data, "-q"])  # no PATH: the job's own
    out, _ = capsys.readouterr()
    assert code == 0 and re.search(r"files added +│ +4 ", out) and "saved by the Batch API" in out
    assert len(fake_gemini.calls(CREATE)) == 1


def test_cli_dry_run_shows_both_prices(capsys, monkeypatch, corpus, batch_settings, fake_gemini):
    _cli_env(monkeypatch, fake_gemini)
    code = main([str(corpus.root), "--dry-run", "--data-dir", str(batch_settings.data_dir), "-q"])
    out, _ = capsys.readouterr()
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if line.count("│") == 3}
    assert code == 0 and fake_gemini.calls(ONLINE) == fake_gemini.calls(CREATE) == []  # priced, not sent
    online, batch = float(rows["cost online (USD)"]), float(rows["cost with --batch (USD)"])
    assert online > 0 and batch == pytest.approx(online / 2, abs=2e-6)


def test_cli_resume_with_nothing_pending_is_refused_in_one_line(capsys, monkeypatch, batch_settings, fake_gemini):
    _cli_env(monkeypatch, fake_gemini)
    code = main(["--resume", "--data-dir", str(batch_settings.data_dir)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: Nothing to resume: collection 'corpus'") and "--batch" in err


def test_cli_batch_without_a_key_is_refused_in_one_line(capsys, corpus, tmp_path):
    code = main([str(corpus.root), "--batch", "--data-dir", str(tmp_path / "d")])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and out == ""
    assert "--batch and --resume embed through Gemini's Batch API" in err and "set GEMINI_API_KEY" in err
    assert not (tmp_path / "d" / MANIFEST).exists()  # refused before anything was written
    # PATH --resume, offline, is the same refusal, naming the option it was given (CLI walkthrough)
    code = main([str(corpus.root), "--resume", "--data-dir", str(tmp_path / "d")])
    assert code == 2 and "--batch and --resume embed" in capsys.readouterr().err


def test_a_plain_run_refuses_while_a_job_is_pending(capsys, monkeypatch, corpus, batch_settings, fake_gemini):
    _cli_env(monkeypatch, fake_gemini)
    fake_gemini.batch_run_s = 60.0
    data = str(batch_settings.data_dir)
    assert main([str(corpus.root), "--batch", "--no-wait", "--data-dir", data, "-q"]) == 0
    capsys.readouterr()
    code = main([str(corpus.root), "--data-dir", data, "-q"])
    _, err = capsys.readouterr()
    assert code == 2 and "has batch embedding jobs pending (batches/" in err and "--resume" in err
    assert fake_gemini.calls(ONLINE) == []


def test_no_wait_needs_batch_or_resume(capsys, corpus, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main([str(corpus.root), "--no-wait", "--data-dir", str(tmp_path / "d")])
    assert exit_.value.code == 2 and "--no-wait goes with --batch or --resume" in capsys.readouterr().err


def test_a_create_left_unanswered_stops_the_run_and_the_rerun_adopts_the_job(corpus, batch_settings, fake_gemini):
    hasty = batch_settings.model_copy(update={"request_timeout_s": 0.5})
    fake_gemini.inject(Fault.slow(1.0), method=CREATE)
    provider = GeminiProvider(hasty)
    stopped = ingest_paths([corpus.root], hasty, provider, batch=_batch(corpus))
    assert stopped.exit_code == 2 and "may exist all the same" in (stopped.stopped or "")
    assert Store(hasty, provider.embedding_id).count() == 0
    time.sleep(0.7)
    report = ingest_paths([corpus.root], hasty, provider, batch=_batch(corpus))
    assert report.exit_code == 0 and report.count(Status.ADDED) == 4
    assert len(fake_gemini.calls(CREATE)) == 1 and fake_gemini.calls(ONLINE) == []


def test_batch_jobs_the_budget_cannot_cover_together_are_not_submitted(corpus, batch_settings, fake_gemini):
    """Each part was checked against the spending so far, but jobs are charged only when
    collected: parts that each fit passed a budget they exceed together (review)."""
    provider = GeminiProvider(batch_settings)
    tokens = ingest_paths([corpus.root], batch_settings, provider, dry_run=True).tokens
    whole = price_usd(batch_settings, batch_settings.embedding_model, Usage(prompt_tokens=tokens), batch=True)
    tight = batch_settings.model_copy(update={"batch_job_chunks": 1, "daily_budget_usd": whole * 0.6})
    report = ingest_paths([corpus.root], tight, GeminiProvider(tight), batch=_batch(corpus))
    assert report.exit_code == 2 and "daily budget would be exceeded" in (report.stopped or "")
    assert fake_gemini.calls(CREATE) == []


def test_jobs_not_yet_collected_hold_their_price_against_the_budgets(corpus, batch_settings, fake_gemini):
    """Batch jobs were checked against what was spent and charged only when collected, so runs
    that did not wait, into other collections, each passed a budget they passed together
    (security walkthrough): a job's estimate is now held from its submission."""
    fake_gemini.batch_run_s = 60.0
    provider = GeminiProvider(batch_settings)
    tokens = ingest_paths([corpus.root], batch_settings, provider, dry_run=True).tokens
    one = price_usd(batch_settings, batch_settings.embedding_model, Usage(prompt_tokens=tokens), batch=True)
    tight = batch_settings.model_copy(update={"daily_budget_usd": one * 1.5})
    first = ingest_paths([corpus.root], tight, provider, collection="team-a", batch=_batch(corpus, wait=False))
    assert first.exit_code == 0 and first.pending_jobs
    assert Ledger(tight).today().held_usd == pytest.approx(one, rel=0.01)
    second = ingest_paths([corpus.root], tight, provider, collection="team-b", batch=_batch(corpus, wait=False))
    assert second.exit_code == 2 and "daily budget would be exceeded" in (second.stopped or "")
    assert len(fake_gemini.calls(CREATE)) == 1
    fake_gemini.batch_run_s = 0.0
    resumed = ingest_paths([corpus.root], tight, provider, collection="team-a", batch=_batch(corpus, resume=True))
    assert resumed.exit_code == 0 and resumed.count(Status.ADDED) == 4
    today = Ledger(tight).today()
    assert today.held_usd == 0 and today.cost_usd == pytest.approx(resumed.cost_usd) and today.calls == 1


def test_a_job_that_embedded_nothing_releases_its_hold(corpus, batch_settings, fake_gemini):
    fake_gemini.inject(Fault.job_failed(), method=CREATE)
    provider = GeminiProvider(batch_settings)
    report = ingest_paths([corpus.root], batch_settings, provider, batch=_batch(corpus))
    today = Ledger(batch_settings).today()
    assert report.exit_code == 0 and today.held_usd == 0
    assert today.cost_usd == pytest.approx(report.cost_usd) and report.cost_usd > 0  # the online embedding's only
