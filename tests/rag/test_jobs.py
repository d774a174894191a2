"""Ingest jobs and the queue's Redis keys: a job whose message the queue lost is failed,
saying so, once a client reads it; one whose message is anywhere a worker will still take
it from is left alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from rag.jobs import KEEP_S, NAMESPACE, TASK, Job, Jobs, broker

pytestmark = pytest.mark.redis
GRACE_S = 0.2
QUEUE = f"{NAMESPACE}:gemrag-ingest"


@pytest.fixture
def jobs(settings, redis_url) -> Jobs:
    # A Chroma URL only to pass broker()'s check: nothing here opens the store.
    return Jobs(settings.model_copy(update={"redis_url": redis_url, "chroma_url": "http://127.0.0.1:9",
                                            "job_lost_grace_s": GRACE_S}))


@pytest.fixture
def keys(redis_url) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


def read_after_grace(jobs: Jobs, job: Job) -> Job:
    time.sleep(GRACE_S + 0.05)
    current = jobs.current(job.id)
    assert current is not None
    return current


def dead_lettered(jobs: Jobs, keys: redis.Redis, job: Job) -> None:
    """What Dramatiq does to a message no worker can run (no such actor): fetched, then nacked."""
    worker = broker(jobs.settings)
    assert worker.do_fetch(jobs.settings.job_queue, 1)
    worker.do_nack(jobs.settings.job_queue, job.id)


LOSSES: dict[str, Callable[[Jobs, redis.Redis, Job], object]] = {
    "keys deleted": lambda jobs, keys, job: keys.delete(QUEUE, f"{QUEUE}.msgs"),
    "list evicted": lambda jobs, keys, job: keys.delete(QUEUE),  # its data stays, never fetched again
    "dead-lettered": dead_lettered,
}


@pytest.mark.parametrize("loss", LOSSES)
def test_a_job_the_queue_lost_is_failed_once_read_after_the_grace(jobs, keys, loss):
    """Its record said "queued" for good: no worker would ever run it, and its client's
    progress stream never ended."""
    job = jobs.submit("folder", "docs", "ops", paths=["/srv/docs"])
    LOSSES[loss](jobs, keys, job)
    assert jobs.current(job.id).state == "queued"  # within the grace: maybe being queued right now
    failed = read_after_grace(jobs, job)
    assert failed.state == "failed" and failed.message.endswith("so nothing will run it: submit it again.")
    assert ("dead-lettered" if loss == "dead-lettered" else "no longer in Redis") in failed.message
    assert jobs.get(job.id) == failed and jobs.counts()["failed"] == 1 and jobs.counts()["queued"] == 0


def test_a_lost_job_nobody_reads_is_failed_by_the_counts(jobs, keys):
    """Its submitter gone, nobody read the job again: /metrics counted it as queued for a week."""
    job = jobs.submit("folder", "docs", "ops", paths=["/srv/docs"])
    LOSSES["keys deleted"](jobs, keys, job)
    assert jobs.counts()["queued"] == 1  # within the grace
    time.sleep(GRACE_S + 0.05)
    assert jobs.counts() == {"queued": 0, "running": 0, "retrying": 0, "done": 0, "failed": 1}
    assert jobs.get(job.id).state == "failed"


def test_the_counts_reach_a_lost_job_behind_more_waiting_jobs_than_they_look_at(jobs, keys, monkeypatch):
    """They looked at the oldest jobs past the grace each time: a lost job behind more of them
    than one scrape looks at stayed queued for good."""
    import rag.jobs

    monkeypatch.setattr(rag.jobs, "SETTLED_PER_COUNT", 2)
    waiting = [jobs.submit("folder", "docs", "ops", paths=[f"/srv/{i}"]) for i in range(3)]
    lost = jobs.submit("folder", "docs", "ops", paths=["/srv/lost"])
    keys.hdel(f"{QUEUE}.msgs", lost.id)
    keys.lrem(QUEUE, 0, lost.id)
    time.sleep(GRACE_S + 0.05)
    assert jobs.counts()["failed"] == 0  # the two oldest looked at: on the queue
    assert jobs.counts()["failed"] == 1  # then the next two, the lost one among them
    assert all(jobs.get(j.id).state == "queued" for j in waiting)


def test_the_counts_go_on_when_a_waiting_record_cannot_be_read(jobs, keys):
    job = jobs.submit("folder", "docs", "ops", paths=["/srv/docs"])
    keys.set(f"gemrag:job:{job.id}", '{"an": "older shape"}')
    time.sleep(GRACE_S + 0.05)
    assert jobs.counts()["queued"] == 1


def test_a_lost_upload_says_to_upload_again_and_leaves_no_staged_files(jobs, keys, tmp_path):
    folder = tmp_path / "uploads" / "docs" / ".incoming" / "u1"
    folder.mkdir(parents=True)
    (folder / "notes.md").write_text("# Notes\n")
    job = jobs.submit("upload", "docs", "loader", paths=[str(folder / "notes.md")])
    keys.delete(QUEUE, f"{QUEUE}.msgs")
    failed = read_after_grace(jobs, job)
    assert failed.state == "failed" and failed.message.endswith("upload the files again.")
    assert not folder.exists()


def test_a_job_whose_message_a_worker_will_still_take_is_left_alone(jobs, keys):
    """Fetched by a worker and not yet acknowledged, waiting in the queue, on the delay queue
    for its retry, or queued before messages were filed under their job's id: none is lost,
    however long it waits."""
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    queue = jobs.settings.job_queue
    fetched = jobs.submit("folder", "docs", "ops", paths=["/a"])
    assert broker(jobs.settings).do_fetch(queue, 1)  # a worker took it, and has not acknowledged it
    waiting = jobs.submit("folder", "docs", "ops", paths=["/b"])
    retrying = jobs.save(Job("r" * 32, "folder", "docs", "ops", ["/c"], state="retrying"))
    jobs.broker.enqueue(Message(queue_name=queue, actor_name=TASK, args=(retrying.id,), kwargs={}, options={},
                                message_id=retrying.id), delay=60_000)
    legacy = jobs.save(Job("l" * 32, "folder", "docs", "ops", ["/d"]))
    RedisBroker(url=jobs.settings.redis_url, namespace=NAMESPACE).enqueue(
        Message(queue_name=queue, actor_name=TASK, args=(legacy.id,), kwargs={}, options={}))
    assert keys.hlen(f"{QUEUE}.msgs") == 3 and not keys.hexists(f"{QUEUE}.msgs", legacy.id)  # under a uuid
    for job in (fetched, waiting, retrying, legacy):
        assert read_after_grace(jobs, job).state == job.state, job


def test_counts_leave_out_jobs_whose_records_have_expired(jobs):
    """The state index kept every job id it was ever given, so /metrics' job counts only grew;
    they now count the jobs whose records are still kept, and drop the rest on the way."""
    done = jobs.update(jobs.submit("folder", "docs", "ops", paths=["/srv/a"]).id, state="done")
    jobs.submit("folder", "docs", "ops", paths=["/srv/b"])
    assert jobs.counts() == {"queued": 1, "running": 0, "retrying": 0, "done": 1, "failed": 0}
    week_later = done.updated_at + KEEP_S + 1
    assert jobs.counts(now=week_later) == {"queued": 0, "running": 0, "retrying": 0, "done": 0, "failed": 0}
    assert jobs.counts() == {"queued": 0, "running": 0, "retrying": 0, "done": 0, "failed": 0}  # dropped for good


def test_the_queue_is_looked_at_once_per_grace_period_however_often_the_job_is_read(jobs, keys):
    """A stream polls twice a second: each read of a job waiting past the grace ran the
    script over the queue's keys, which Redis runs alone."""
    job = jobs.submit("folder", "docs", "ops", paths=["/srv/docs"])
    assert read_after_grace(jobs, job).state == "queued"  # looked: its message is on the queue
    LOSSES["keys deleted"](jobs, keys, job)
    assert jobs.current(job.id).state == "queued"  # looked at within this grace period already
    assert read_after_grace(jobs, job).state == "failed"  # the next period's look finds it lost


def test_the_counts_delete_the_plain_state_sets_older_versions_kept(jobs, keys):
    """Until 0efed46 each state's ids were kept in a plain set that only grew; nothing
    reads them now, and the counts delete them."""
    keys.sadd("gemrag:jobs:done", "old-1", "old-2")
    keys.sadd("gemrag:jobs:queued", "old-3")
    assert jobs.counts()["done"] == 0
    assert not keys.exists("gemrag:jobs:done") and not keys.exists("gemrag:jobs:queued")


def test_a_record_a_newer_version_wrote_is_read_without_its_new_fields(jobs, keys):
    """A replica or worker one version behind, during a rolling upgrade, could not read any
    job the newer ones queued (`Job.__init__() got an unexpected keyword argument`; review)."""
    import json

    job = jobs.submit("remove", "docs", "alice", sources=["a.md"])
    stored = json.loads(keys.get(jobs._key(job.id)))
    keys.set(jobs._key(job.id), json.dumps({**stored, "added_in_a_later_version": [1, 2]}))
    read = jobs.get(job.id)
    assert read is not None and (read.id, read.sources, read.owner) == (job.id, ["a.md"], "alice")


def test_the_files_an_upload_or_a_removal_names_are_counted_while_it_waits(jobs):
    """A folder's files are found as the job runs; an upload's and a removal's are known when queued."""
    assert jobs.submit("upload", "docs", "loader", paths=["/stage/a.md", "/stage/b.pdf"]).files_total == 2
    assert jobs.submit("remove", "docs", "loader", sources=["a.md"]).files_total == 1
    assert jobs.submit("folder", "docs", "ops", paths=["/srv/docs"]).files_total == 0
