"""Ingest jobs: their records in Redis, and their place on the queue.

The API enqueues a job by the worker task's *name* (`ingest_job`) on a Dramatiq queue in
Redis and records it here; `python -m ingest.worker` runs it and writes its progress back.
So `rag/` never imports `ingest/`, and any replica reports any job.

Dramatiq rather than arq, RQ or Celery: its Redis broker holds each message until the
worker acknowledges it and requeues the messages of a worker whose heartbeat stopped, so a
job outlives a killed worker within `job_heartbeat_s` whatever the job's length (arq re-runs
only after the job's whole timeout, RQ marks a dead worker's job failed, Celery's Redis
transport waits a one-hour visibility timeout); its actors are plain synchronous functions,
like the ingest pipeline. A retried job loses and duplicates nothing because ingest is
incremental: files already stored are recognised by their content hash.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from rag.errors import ConfigError, GemragError
from rag.kv import redis_client
from rag.settings import Settings

JobKind = Literal["upload", "folder", "remove"]
JobState = Literal["queued", "running", "retrying", "done", "failed"]
STATES: tuple[JobState, ...] = ("queued", "running", "retrying", "done", "failed")
TASK = "ingest_job"  # the worker's actor name (ingest/worker.py)
KEEP_S = 7 * 24 * 3600  # job records expire a week after their last change
ALWAYS = 1_000_000  # Dramatiq's maintenance chance is per million commands: every poll checks for dead workers

log = logging.getLogger("rag.jobs")


@dataclass(frozen=True)
class Job:
    """A job and its progress. Counts are those of the current attempt."""

    id: str
    kind: JobKind
    collection: str
    owner: str  # the API key's name: only it (or an admin) sees the job
    paths: list[str] = field(default_factory=list)  # files or folders to ingest, as the worker sees them
    sources: list[str] = field(default_factory=list)  # stored names to remove (kind "remove")
    prune: bool = False
    state: JobState = "queued"
    attempts: int = 0
    files_done: int = 0
    files_total: int = 0
    chunks_done: int = 0
    chunks_total: int = 0
    current: str = ""
    outcomes: dict[str, int] = field(default_factory=dict)  # files by status: added, unchanged, failed, ...
    errors: dict[str, str] = field(default_factory=dict)  # file → why it failed
    message: str = ""  # why the job failed or stopped
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


def broker(settings: Settings):  # type: ignore[no-untyped-def]  # dramatiq's broker is untyped
    """The Dramatiq broker on the app's Redis; the API and the worker build it the same way."""
    from dramatiq.brokers.redis import RedisBroker

    if not settings.redis_url:
        raise ConfigError("Ingest jobs need a queue: set REDIS_URL and run python -m ingest.worker beside the server.")
    if not settings.chroma_url:
        # The embedded store is one process's: a server reading it would search a worker's
        # new chunks only by keywords and crash on its removals until restarted. The message
        # names no path: the API shows it to its clients.
        raise ConfigError(
            "Ingest jobs need a store the server and the worker share: run a Chroma server "
            "(chroma run --path DATA_DIR/chroma --port 8001) and set CHROMA_URL=http://127.0.0.1:8001 "
            "for both, beside REDIS_URL.")
    return RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq's RedisBroker.__init__ has no annotations
        url=settings.redis_url,
        namespace="gemrag-jobs",
        heartbeat_timeout=int(settings.job_heartbeat_s * 1000),
        maintenance_chance=ALWAYS,
    )


class QueueUnavailable(GemragError):
    """The queue's Redis could not take a job (503): nothing was queued."""


class Jobs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = broker(settings)
        self.redis = redis_client(settings.redis_url)  # type: ignore[arg-type]  # checked by broker() above

    def submit(self, kind: JobKind, collection: str, owner: str, *, paths: list[str] | None = None,
               sources: list[str] | None = None, prune: bool = False) -> Job:
        import redis
        from dramatiq import Message

        now = time.time()
        job = Job(uuid.uuid4().hex, kind, collection, owner, paths or [], sources or [], prune,
                  created_at=now, updated_at=now)
        message: Message[None] = Message(
            queue_name=self.settings.job_queue, actor_name=TASK, args=(job.id,), kwargs={},
            options={"max_retries": self.settings.job_max_retries})
        try:
            self.save(job)  # first: a worker that takes the message at once must find the record
            try:
                self.broker.enqueue(message)
            except Exception:
                # Left "queued", the record waited for good for a message that never was, and
                # the client (answered 503, or 500 for a fault of ours) holds no id to look.
                self._forget(job.id)
                raise
        except redis.RedisError as exc:
            raise QueueUnavailable(
                f"The job queue's Redis could not take the job ({type(exc).__name__}): nothing was queued; "
                "send the request again.") from exc
        log.info("job %s queued: %s into %s", job.id, kind, collection, extra={"job_id": job.id})
        return job

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.get(self._key(job_id))
        return Job(**json.loads(raw)) if raw else None

    def save(self, job: Job) -> Job:
        job = replace(job, updated_at=time.time())
        pipe = self.redis.pipeline()
        pipe.set(self._key(job.id), json.dumps(asdict(job)), ex=KEEP_S)
        for state in STATES:
            pipe.srem(self._state_key(state), job.id)
        pipe.sadd(self._state_key(job.state), job.id)
        pipe.execute()
        return job

    def _forget(self, job_id: str) -> None:
        """Drop a job's record, as best it can: Redis may be what failed (the record then
        stays, queued for good)."""
        import redis

        pipe = self.redis.pipeline()
        pipe.delete(self._key(job_id))
        for state in STATES:
            pipe.srem(self._state_key(state), job_id)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("job %s could not be queued, and its record not dropped: %s", job_id, exc,
                        extra={"job_id": job_id})

    def update(self, job_id: str, **changes: object) -> Job:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return self.save(replace(job, **changes))  # type: ignore[arg-type]  # fields of Job by name

    def counts(self) -> dict[JobState, int]:
        """Jobs per state (a week's worth), and how many wait in the queue, for /metrics."""
        return {state: int(self.redis.scard(self._state_key(state))) for state in STATES}

    def queue_depth(self) -> int:
        return int(self.broker.do_qsize(self.settings.job_queue))

    def _key(self, job_id: str) -> str:
        return f"gemrag:job:{job_id}"

    def _state_key(self, state: str) -> str:
        return f"gemrag:jobs:{state}"
