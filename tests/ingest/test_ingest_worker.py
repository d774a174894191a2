"""An ingest job survives a worker killed mid-run: the queue hands it to another worker,
and the collection ends with exactly the chunks of a clean ingest, none lost or doubled."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.pipeline import ingest_paths
from rag.providers.gemini import GeminiProvider
from rag.server.app import create_app
from rag.store import Store
from tests.fakes.worker import start_worker, wait_job
from tests.ingest.conftest import billed_tokens

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.chroma_server]
WORDS = "retry quota stream token budget cache embed chunk vector answer source page".split()


def write_folder(root: Path, files: int = 24) -> Path:
    root.mkdir()
    for i in range(files):
        paragraphs = [" ".join(WORDS[(i + j + k) % len(WORDS)] + str(k % 7) for k in range(180)) for j in range(5)]
        (root / f"doc{i:02d}.md").write_text(f"# Document {i}\n\n" + "\n\n".join(paragraphs))
    return root


@pytest.fixture
def job_settings(gemini_settings, redis_url, chroma_server_url, tmp_path):
    return gemini_settings.model_copy(update={
        "redis_url": redis_url, "chroma_url": chroma_server_url, "job_heartbeat_s": 3.0, "job_min_backoff_s": 1.0,
        "embed_batch_size": 8, "ingest_batch_chunks": 8, "collection": f"jobs-{uuid.uuid4().hex[:12]}",
    })


def test_job_survives_a_killed_worker_with_nothing_lost_or_duplicated(job_settings, fake_gemini, tmp_path):
    folder = write_folder(tmp_path / "docs")
    fake_gemini.latency_s = 0.3  # each embedding batch takes a while: the kill lands mid-run
    name = job_settings.collection
    with TestClient(create_app(job_settings, mounts=[])) as api:
        job = api.post(f"/v1/collections/{name}/ingest", json={"path": str(folder)}).json()
        assert job["state"] == "queued"
        first = start_worker(job_settings, tmp_path / "worker1.log")
        running = wait_job(api, job["id"], lambda j: j["files_done"] >= 3)
        assert running["state"] == "running" and running["files_done"] < running["files_total"]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_worker(job_settings, tmp_path / "worker2.log")
        try:
            done = wait_job(api, job["id"], lambda j: j["state"] in ("done", "failed"), timeout_s=90)
        finally:
            second.terminate()
            second.wait(10)
        # Charged to the key that queued it, each answered request once, the killed worker's
        # included; a request it had in flight (answered, never received) is missing.
        costs = api.get(f"/v1/sessions/ingest:{name}/costs").json()["total"]
    assert done["state"] == "done" and done["attempts"] == 2 and done["errors"] == {}
    assert done["outcomes"].get("unchanged", 0) >= 3  # the first attempt's files were kept, not redone
    assert 0 < costs["prompt_tokens"] <= billed_tokens(fake_gemini) and costs["cost_usd"] > 0

    provider = GeminiProvider(job_settings)
    reference = ingest_paths([folder], job_settings, provider, collection=f"{name}-ref")
    assert reference.exit_code == 0
    stored = Store(job_settings, provider.embedding_id, name)
    expected = Store(job_settings, provider.embedding_id, f"{name}-ref").ids()
    assert stored.ids() == expected and stored.collection.count() == len(expected)


def test_a_fault_of_ours_fails_the_job_and_a_removal_never_makes_a_dropped_collection(
    job_settings, fake_gemini, tmp_path, monkeypatch
):
    """An error that was not a refusal (a full disk, a bug) escaped the job: it stayed
    "running" for good, and a client polling it waited forever. A removal from a collection
    dropped after the API checked it made that collection again, empty."""
    import ingest.worker as worker_module
    from ingest.worker import run_job
    from rag.jobs import Jobs
    from rag.providers import Embedders
    from rag.store import list_collections

    jobs = Jobs(job_settings)
    settings = job_settings.model_copy(update={"job_max_retries": 0})  # the first failure is the last

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", "/srv/gemrag/data/uploads/x.md")

    monkeypatch.setattr(worker_module, "ingest_paths", disk_full)
    folder = write_folder(tmp_path / "docs", files=1)
    job = jobs.submit("folder", job_settings.collection, "tester", paths=[str(folder)])
    run_job(job.id, jobs, settings, Embedders(settings))
    failed = jobs.get(job.id)
    assert failed is not None and failed.state == "failed"
    assert "unexpected error (OSError)" in failed.message and "/srv" not in failed.message  # no server path

    gone = jobs.submit("remove", "dropped-meanwhile", "tester", sources=["a.md"])
    run_job(gone.id, jobs, settings, Embedders(settings))
    refused = jobs.get(gone.id)
    assert refused is not None and refused.state == "failed" and "No collection 'dropped-meanwhile'" in refused.message
    assert "dropped-meanwhile" not in list_collections(settings)


def test_a_removal_whose_every_file_is_gone_already_says_none_could_be_removed(job_settings, fake_gemini, tmp_path):
    """It said "no file could be ingested" of a removal (API walkthrough)."""
    from ingest.worker import run_job
    from rag.jobs import Jobs
    from rag.providers import Embedders

    jobs = Jobs(job_settings)
    folder = write_folder(tmp_path / "docs", files=1)
    added = jobs.submit("folder", job_settings.collection, "tester", paths=[str(folder)])
    run_job(added.id, jobs, job_settings, Embedders(job_settings))
    assert jobs.get(added.id).state == "done"  # type: ignore[union-attr]
    twice = [jobs.submit("remove", job_settings.collection, "tester", sources=["doc00.md"]) for _ in range(2)]
    for job in twice:
        run_job(job.id, jobs, job_settings, Embedders(job_settings))
    first, second = (jobs.get(job.id) for job in twice)
    assert first is not None and (first.state, first.outcomes) == ("done", {"removed": 1})
    assert second is not None and second.state == "failed"
    assert second.message == "no file could be removed: `errors` says why for each"


def test_a_job_past_the_time_limit_is_retried_then_failed_not_left_running(
    job_settings, fake_gemini, tmp_path, monkeypatch
):
    """Dramatiq stops a job past its time limit by raising TimeLimitExceeded into its thread,
    an Interrupt and no Exception: it went past the worker's handler, and the job stayed
    "running" for good on its last attempt, its progress stream never ending."""
    from dramatiq.middleware import TimeLimitExceeded

    import ingest.worker as worker_module
    from ingest.worker import run_job
    from rag.jobs import Jobs
    from rag.providers import Embedders

    jobs = Jobs(job_settings)
    settings = job_settings.model_copy(update={"job_max_retries": 1})

    def too_long(*args: object, **kwargs: object) -> None:
        raise TimeLimitExceeded()

    monkeypatch.setattr(worker_module, "ingest_paths", too_long)
    job = jobs.submit("folder", job_settings.collection, "tester", paths=[str(write_folder(tmp_path / "docs", 1))])
    with pytest.raises(TimeLimitExceeded):  # raised on, so the queue retries it
        run_job(job.id, jobs, settings, Embedders(settings))
    retrying = jobs.get(job.id)
    assert retrying is not None and retrying.state == "retrying"
    run_job(job.id, jobs, settings, Embedders(settings))  # the last attempt
    failed = jobs.get(job.id)
    assert failed is not None and failed.state == "failed"
    assert failed.message == "the job ran past the worker's time limit of 24 hours"


def test_a_retried_job_is_never_taken_for_lost(job_settings, fake_gemini, tmp_path):
    """Each message is filed under its job's id (rag.jobs), its retry too: on the delay queue
    for its backoff, then back on the queue. Read all along past a tiny grace, the job is
    looked for in the queue at every read, and never failed as lost."""
    import redis

    from rag.jobs import NAMESPACE
    from rag.testing.fake_gemini import Fault
    from tests.fakes.worker import running_worker

    settings = job_settings.model_copy(update={"job_lost_grace_s": 0.01})
    folder = write_folder(tmp_path / "docs", files=1)
    keys = redis.Redis.from_url(settings.redis_url)
    queue = f"{NAMESPACE}:{settings.job_queue}"
    filed = []  # at each read while it waits for its retry: whether its message is under its id

    def finished(job: dict) -> bool:
        if job["state"] == "retrying":
            filed.append(any(keys.hexists(f"{name}.msgs", job["id"]) for name in (queue, f"{queue}.DQ")))
        return job["state"] in ("done", "failed")

    with TestClient(create_app(settings, mounts=[])) as api, running_worker(settings, tmp_path / "worker.log"):
        fake_gemini.inject(Fault.invalid_key())  # the first attempt stops on it, and is retried
        job = api.post(f"/v1/collections/{settings.collection}/ingest", json={"path": str(folder)}).json()
        done = wait_job(api, job["id"], finished)
    assert done["state"] == "done" and done["attempts"] == 2, done
    assert filed and all(filed)


def test_a_failed_attempt_waits_long_enough_for_a_store_restart(job_settings):
    """Retries waited 1 s, doubling: five of them spent 31 s, and every job tried while a
    Chroma server restarted (45 s) failed for good, its upload discarded (operations
    walkthrough). The first wait is `job_min_backoff_s` (15 s: about 8 minutes in all)."""
    from ingest.worker import build_worker
    from rag.jobs import TASK, Jobs
    from rag.settings import Settings

    assert Settings().job_min_backoff_s * (2 ** Settings().job_max_retries - 1) > 300
    settings = job_settings.model_copy(update={"job_min_backoff_s": 7.5})
    jobs = Jobs(settings)
    build_worker(settings, 1, jobs)
    assert jobs.broker.get_actor(TASK).options["min_backoff"] == 7_500


def test_a_worker_waits_for_rate_limit_slots_as_a_background_job_may():
    """The interactive wait (20 s) applied in the worker: on the free tier the limiter's
    pacing of a 4,800-chunk ingest was reported as a spent quota after 40 s, failing the job."""
    from ingest.worker import worker_settings
    from rag.settings import Settings

    worker = worker_settings(Settings(api_key=None))
    assert worker.queue_max_wait_s == 300.0
    assert worker.deadline_s >= 300.0 + worker.request_timeout_s  # the call's deadline bounds the wait too
    assert worker_settings(Settings(api_key=None, queue_max_wait_s=900.0)).queue_max_wait_s == 900.0


def test_a_job_a_budget_stops_fails_at_once_rather_than_retrying(job_settings, fake_gemini, tmp_path):
    """A retry cannot pass a budget before it is raised: the job was retried five times over
    about 8 minutes, each attempt refused again."""
    from ingest.worker import run_job
    from rag.jobs import Jobs
    from rag.providers import Embedders

    settings = job_settings.model_copy(update={"daily_budget_usd": 0.0})
    jobs = Jobs(settings)
    job = jobs.submit("folder", settings.collection, "tester", paths=[str(write_folder(tmp_path / "docs", 1))])
    run_job(job.id, jobs, settings, Embedders(settings))  # returns: nothing for the queue to retry
    failed = jobs.get(job.id)
    assert failed is not None and failed.state == "failed" and failed.attempts == 1
    assert "daily budget would be exceeded" in failed.message
    assert fake_gemini.calls("batchEmbedContents") == []


def test_a_job_failed_on_the_data_dir_tells_its_client_no_server_path(caplog):
    """The job's message, which its client reads, named the server's data dir (review)."""
    from ingest.worker import failure_message
    from rag.errors import DataDirUnwritable

    told = failure_message(DataDirUnwritable("data dir /srv/gemrag is not writable; set GEMRAG_DATA_DIR"), "j1")
    assert "/srv/gemrag" not in told and "cannot write to its data directory" in told
    assert "/srv/gemrag" in caplog.text  # the operator's log has it


def test_a_worker_with_another_data_dir_than_the_server_leaves_its_jobs_alone(job_settings, fake_gemini, tmp_path,
                                                                             caplog):
    """A worker started without the server's GEMRAG_DATA_DIR kept its manifest elsewhere and
    took every stored file of the (shared) Chroma collection that the job did not name for an
    orphan: re-uploading one file of two deleted the other's chunks (operations walkthrough).
    It now hands the job back to the queue, for a worker of the right data dir; which data dir
    is told by a file in it, not by its path (one share mounted at two paths is one)."""
    from ingest.worker import OTHER_DATA_DIR, JobStopped, run_job
    from rag.jobs import DATA_DIR_ID, Jobs
    from rag.providers import Embedders

    provider = GeminiProvider(job_settings)
    ingest_paths([write_folder(tmp_path / "docs", 2)], job_settings, provider)
    stored = Store(job_settings, provider.embedding_id).count()
    jobs = Jobs(job_settings)
    job = jobs.submit("folder", job_settings.collection, "tester", paths=[str(tmp_path / "docs")], prune=True)
    elsewhere = job_settings.model_copy(update={"data_dir": tmp_path / "worker-data"})
    with pytest.raises(JobStopped):  # the queue retries it, maybe on another worker
        run_job(job.id, jobs, elsewhere, Embedders(elsewhere))
    left = jobs.get(job.id)
    assert left is not None and (left.state, left.message, left.attempts) == ("retrying", OTHER_DATA_DIR, 0)
    assert str(tmp_path) not in left.message and str((tmp_path / "worker-data").resolve()) in caplog.text
    assert Store(job_settings, provider.embedding_id).count() == stored  # nothing removed
    assert [p.name for p in (tmp_path / "worker-data").iterdir()] == [DATA_DIR_ID]  # no manifest, no store there
    mounted_again = tmp_path / "same-share"
    mounted_again.symlink_to(job_settings.data_dir)
    again = job_settings.model_copy(update={"data_dir": mounted_again})
    run_job(job.id, jobs, again, Embedders(again))  # the same folder by another path: its job
    done = jobs.get(job.id)
    assert done is not None and done.state == "done"


def test_a_job_whose_every_file_is_skipped_fails_and_every_skipped_file_says_why(settings, redis_url,
                                                                                chroma_server_url, tmp_path):
    """API walkthrough: an image uploaded with no key was "done", its file counted "skipped",
    and why dropped: the client saw a success, and nothing was searchable."""
    from PIL import Image

    from ingest.worker import run_job
    from rag.jobs import Jobs
    from rag.providers import Embedders

    offline = settings.model_copy(update={"redis_url": redis_url, "chroma_url": chroma_server_url,
                                          "collection": f"skipped-{uuid.uuid4().hex[:12]}"})
    jobs = Jobs(offline)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (200, 100), "white").save(images / "blank.png")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (200, 100), "white").save(mixed / "blank.png")
    (mixed / "notes.md").write_text("# Notes\n\nThe canteen opens at 11:30.")
    only, some = (jobs.submit("folder", offline.collection, "tester", paths=[str(f)]) for f in (images, mixed))
    for job in (only, some):
        run_job(job.id, jobs, offline, Embedders(offline))
    refused, done = jobs.get(only.id), jobs.get(some.id)
    assert refused is not None and (refused.state, refused.outcomes) == ("failed", {"skipped": 1})
    assert refused.message == "no file could be ingested: `errors` and `skipped` say why for each"
    assert "GEMINI_API_KEY" in refused.skipped["blank.png"] and refused.errors == {}
    assert done is not None and (done.state, done.outcomes) == ("done", {"added": 1, "skipped": 1})
    assert done.skipped == refused.skipped and done.message == ""
