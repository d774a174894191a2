"""`python -m ingest.worker`: runs the ingest jobs the API enqueues (rag/jobs.py says why
Dramatiq, and why a killed worker loses nothing).

One job at a time per thread; progress goes to the job's record after every file and batch,
so GET /v1/jobs/{id} follows it from any replica. A job whose run raises or stops early (a
spent quota) is retried with backoff up to `job_max_retries` times; a job whose collection
another run holds waits for it, queued again without counting an attempt; a job on a worker that
was killed is handed to another worker once the dead one's heartbeat is `job_heartbeat_s`
old, and counts as one more attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import redis
from dramatiq.middleware import Interrupt, TimeLimitExceeded

from ingest.pipeline import CollectionBusy, ingest_paths, remove_paths
from ingest.report import IngestReport, Progress, Status
from ingest.spending import ledger_session
from ingest.uploads import ingest_staged
from ingest.vision import configured_reader
from rag.commands import Parser, folder_path
from rag.errors import GemragError, remote_message
from rag.jobs import TASK, Jobs, data_dir_id
from rag.logs import bound
from rag.logs import configure as configure_logging
from rag.providers import Embedders
from rag.providers.base import Generator
from rag.settings import Settings, load_settings
from rag.stores import Stores, embedder_for
from rag.uploads import StagedFile, discard

log = logging.getLogger("ingest.worker")
TIME_LIMIT_MS = 24 * 3600 * 1000  # an ingest of a large folder may take hours; Dramatiq's default is 10 min
EVERY_FILE_FAILED = "no file could be {done}: {said} why for each"  # ingested, or removed; which fields say
OTHER_DATA_DIR = ("a worker with another data dir than the server that queued the job took it, and left it to "
                  "another worker, reading and removing nothing; the operator must give every worker the server's "
                  "GEMRAG_DATA_DIR (its log names it)")


class JobStopped(GemragError):
    """The run stopped early (quota, key): raised so the queue retries it later."""


def run_job(
    job_id: str, jobs: Jobs, settings: Settings, embedders: Embedders, generator: Generator | None = None
) -> None:
    """`generator` reads images and scans (ingest.vision): Gemini with a key."""
    with bound(f"job-{job_id}"):  # the server logged "job <id> queued" under the request's id
        _run_job(job_id, jobs, settings, embedders, generator)


def _run_job(job_id: str, jobs: Jobs, settings: Settings, embedders: Embedders, generator: Generator | None) -> None:
    job = jobs.get(job_id)
    if job is None or job.finished:
        return  # expired, or a duplicate delivery of a finished job
    own = data_dir_id(settings) if job.data_dir_id else ""
    if own != job.data_dir_id:
        # Left to another worker (the queue retries it): one misconfigured worker among good
        # ones failed every job it happened to take.
        log.error("job %s was queued by a server with another data dir than this worker's %s (data-dir-id %s, not "
                  "%s): set GEMRAG_DATA_DIR (or --data-dir) to the server's", job_id, settings.data_dir.resolve(),
                  own, job.data_dir_id)
        jobs.update(job_id, state="retrying", message=OTHER_DATA_DIR)
        raise JobStopped(OTHER_DATA_DIR)
    job = jobs.update(job_id, state="running", attempts=job.attempts + 1, message="")

    def progress(p: Progress) -> None:
        jobs.update(job_id, files_done=p.files_done, files_total=p.files_total, chunks_done=p.chunks_done,
                    chunks_total=p.chunks_total, current=p.at_work)

    staged = [StagedFile.at(Path(p)) for p in job.paths] if job.kind == "upload" else []
    try:
        collection = job.collection or settings.collection
        if job.kind == "remove":  # one dropped since the API checked it is refused, not made again
            embedder = embedders.get(Stores(settings).open(collection).embedding_id)
            report = remove_paths(job.sources, settings, embedder, collection=collection)
        else:  # charged to the key that queued it: GET /v1/sessions/ingest:<collection>/costs shows it
            embedder = embedder_for(settings, collection, embedders)
            session = ledger_session(collection, job.owner)
            if job.kind == "upload":  # each upload's own bytes, moved onto their names under the lock
                report = ingest_staged(staged, settings, embedder, collection, on_progress=progress,
                                       generator=generator, session=session)
            else:
                report = ingest_paths([Path(p) for p in job.paths], settings, embedder, collection=collection,
                                      prune=job.prune, on_progress=progress, generator=generator, session=session)
        if report.stopped and report.over_budget:  # no retry can pass it before the budget is raised
            jobs.update(job_id, state="failed", message=report.stopped, current="", **summary(report))
            discard(staged)
            return
        if report.stopped:
            raise JobStopped(report.stopped)
    except CollectionBusy:
        # Waits its turn, however long the other run takes: a retry, which counted an attempt and
        # logged a traceback each time, failed an upload for good once a run held its collection
        # for about eleven minutes. Its staged files wait with it.
        jobs.update(job_id, state="queued", attempts=job.attempts - 1, current="",
                    message=busy_message(job.collection or settings.collection, settings.job_min_backoff_s))
        jobs.requeue(job_id, settings.job_min_backoff_s)
        return
    except (Exception, Interrupt) as exc:
        # A fault of ours is failed and retried like a refusal, its cause logged rather than
        # shown (its text may name server paths): it left the job "running" for good, and
        # the client polling it waiting forever. So did Dramatiq's interrupts, which are no
        # Exception: the time limit's, raised into the job's thread.
        message = failure_message(exc, job_id)
        last = job.attempts > settings.job_max_retries
        jobs.update(job_id, state="failed" if last else "retrying", message=message, current="")
        if not last:
            raise  # staged files wait for the retry
        discard(staged)
        return
    failed = bool(report.files) and all(f.status in (Status.FAILED, Status.SKIPPED) for f in report.files)
    # A client polling the state took a job whose every file failed (an empty upload, a file
    # it cannot read) for a success: it is failed, its files' reasons in `errors`; not retried,
    # as the same files would fail again. So is one whose files were all skipped: an image
    # uploaded with no key to read it was "done", reading nothing, and its reason was dropped.
    done = "removed" if job.kind == "remove" else "ingested"
    said = "`errors` and `skipped` say" if report.of(Status.SKIPPED) else "`errors` says"
    jobs.update(job_id, state="failed" if failed else "done", current="",
                message=EVERY_FILE_FAILED.format(done=done, said=said) if failed else "", **summary(report))


def busy_message(collection: str, every_s: float) -> str:
    return (f"waiting: another ingest into collection {collection!r} is running; this job starts once it is done "
            f"(looked at every {every_s:g} s)")


def failure_message(exc: BaseException, job_id: str) -> str:
    """What the job's record says of why it stopped: a refusal's own words; for anything
    else its kind, with its cause logged under the job's id rather than shown."""
    if isinstance(exc, GemragError):
        told = remote_message(exc)  # read by the job's client: no server path (a data dir's)
        if told != str(exc):
            log.error("job %s stopped: %s", job_id, exc)  # what the client is not told, for the operator
        return told
    if isinstance(exc, TimeLimitExceeded):
        return f"the job ran past the worker's time limit of {TIME_LIMIT_MS // 3_600_000} hours"
    log.error("job %s failed", job_id, exc_info=exc)
    return (f"the job failed on an unexpected error ({type(exc).__name__}); the worker's log holds it "
            f"under job {job_id}")


def summary(report: IngestReport) -> dict[str, object]:
    outcomes: dict[str, int] = {}
    for outcome in report.files:
        outcomes[outcome.status.value] = outcomes.get(outcome.status.value, 0) + 1
    errors = {f.source: f.reason for f in report.of(Status.FAILED)}
    skipped = {f.source: f.reason for f in report.of(Status.SKIPPED)}
    return {"outcomes": outcomes, "errors": errors, "skipped": skipped, "files_done": len(report.files),
            "files_total": len(report.files)}


def build_worker(settings: Settings, threads: int, jobs: Jobs):  # type: ignore[no-untyped-def]  # dramatiq's Worker is untyped
    import dramatiq

    embedders = Embedders(settings)
    generator = configured_reader(settings)

    def ingest_job(job_id: str) -> None:
        run_job(job_id, jobs, settings, embedders, generator)

    dramatiq.actor(
        actor_name=TASK,
        queue_name=settings.job_queue,
        broker=jobs.broker,
        max_retries=settings.job_max_retries,
        min_backoff=round(settings.job_min_backoff_s * 1000),
        time_limit=TIME_LIMIT_MS,
    )(ingest_job)
    return dramatiq.Worker(jobs.broker, worker_threads=threads)


def worker_settings(settings: Settings) -> Settings:
    """The settings a worker runs jobs with: its calls wait for a rate-limit slot up to
    `job_queue_max_wait_s`, not the interactive `queue_max_wait_s`; a call's whole deadline
    (`deadline_s`, which also bounds the wait) is raised to cover it and a request after it."""
    wait = max(settings.queue_max_wait_s, settings.job_queue_max_wait_s)
    return settings.model_copy(update={"queue_max_wait_s": wait,
                                       "deadline_s": max(settings.deadline_s, wait + settings.request_timeout_s)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m ingest.worker", description="Run the API's ingest jobs.")
    parser.add_argument("--threads", type=int, default=1, help="jobs run at once (default 1)")
    parser.add_argument("--data-dir", type=folder_path, default=None,
                        help="the server's data dir (default: settings.data_dir, GEMRAG_DATA_DIR); must be the same")
    args = parser.parse_args(argv)
    try:
        overrides = {"data_dir": args.data_dir} if args.data_dir is not None else {}
        settings = worker_settings(load_settings(**overrides))
        configure_logging(settings)
        jobs = Jobs(settings)
        worker = build_worker(settings, args.threads, jobs)
    except GemragError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    print(f"ingest worker on queue {settings.job_queue!r} ({args.threads} thread(s)), data dir {settings.data_dir}; "
          "Ctrl+C stops it", flush=True)
    me = f"{socket.gethostname()}:{os.getpid()}"
    while True:  # alive, for /metrics (gemrag_workers_alive): a dead worker was invisible
        try:
            jobs.beat(me)
        except redis.RedisError as exc:  # the queue's Redis is down: the jobs wait for it too
            log.warning("could not say this worker is alive: %s", exc)
        if stop.wait(settings.job_heartbeat_s / 3):
            break
    worker.stop()
    with contextlib.suppress(redis.RedisError):
        jobs.left(me)
    return 0


if __name__ == "__main__":
    sys.exit(main())
