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
incremental: files already stored are recognised by their content hash. A message lost all
the same (the queue's keys deleted or evicted) is found out when its job is read
(`Jobs.settled`), and the job failed, saying so.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rag.errors import ConfigError, GemragError
from rag.kv import redis_client
from rag.settings import Settings
from rag.uploads import StagedFile, discard

if TYPE_CHECKING:
    from dramatiq import Message
    from redis.client import Pipeline

JobKind = Literal["upload", "folder", "remove"]
JobState = Literal["queued", "running", "retrying", "done", "failed"]
STATES: tuple[JobState, ...] = ("queued", "running", "retrying", "done", "failed")
WAITING: tuple[JobState, ...] = ("queued", "retrying")  # nothing runs them but their message in the queue
TASK = "ingest_job"  # the worker's actor name (ingest/worker.py)
NAMESPACE = "gemrag-jobs"  # the broker's Redis keys start with it
WORKERS_KEY = "gemrag:workers"  # + ":<queue>": worker -> its last beat (ms, Redis' clock), a sorted set
KEEP_S = 7 * 24 * 3600  # job records expire a week after their last change
OLD_STATE_KEY = "gemrag:jobs:{state}"  # a state's plain set of job ids until 0efed46: deleted by `counts`
SETTLED_PER_COUNT = 100  # waiting jobs looked for in the queue per `Jobs.counts` (each scrape of /metrics)
SETTLED_LOOKED_OVER = 1_000  # ... chosen among this many of the oldest per state, those looked at lately left out
ALWAYS = 1_000_000  # Dramatiq's maintenance chance is per million commands: every poll checks for dead workers

log = logging.getLogger("rag.jobs")

# Where a job's message is in Dramatiq's Redis broker (dramatiq/brokers/redis/dispatch.lua
# keeps it so): "queued" if a worker will still run it, "dead" if dead-lettered, else "gone".
# A message's data sits in the hash `<ns>:<queue>.msgs` under its Redis id from its enqueue
# until its acknowledgement, and its id in the list `<ns>:<queue>` until a worker fetches it,
# then in that worker's set `<ns>:__acks__.<worker>.<queue>` (a dead worker's is put back on
# the list); a retry waits on the delay queue `<queue>.DQ` the same way, and a message a
# worker gave up on moves to `<queue>.XQ.msgs`. Data in the hash with its id in neither (a
# list deleted or evicted) is never fetched again. In one script, so no fetch, requeue or
# retry is seen half done. The messages' whole data is read only for a job whose id files
# none (one queued before they were filed so, or a lost one). LPOS needs Redis 6.0.6 or later.
# KEYS[1]: the namespace; ARGV: the queue, the job id.
_WHEREABOUTS = """
local ns, queue, job = KEYS[1], ARGV[1], ARGV[2]
local names = {queue, queue .. ".DQ"}
local workers = redis.call("zrange", ns .. ":__heartbeats__", 0, -1)
local function held(name, id)  -- on the list, or fetched by a live worker
  if redis.call("lpos", ns .. ":" .. name, id) then return true end
  for _, worker in ipairs(workers) do
    if redis.call("sismember", ns .. ":__acks__." .. worker .. "." .. name, id) == 1 then return true end
  end
  return false
end
local filed = false
for _, name in ipairs(names) do
  if redis.call("hexists", ns .. ":" .. name .. ".msgs", job) == 1 then
    filed = true
    if held(name, job) then return "queued" end
  end
end
if redis.call("hexists", ns .. ":" .. queue .. ".XQ.msgs", job) == 1 then return "dead" end
if not filed then  -- enqueued before messages were filed under their job's id: its data names the job
  for _, name in ipairs(names) do
    local all = redis.call("hgetall", ns .. ":" .. name .. ".msgs")
    for i = 1, #all, 2 do
      if string.find(all[i + 1], job, 1, true) and held(name, all[i]) then return "queued" end
    end
  end
end
return "gone"
"""


DATA_DIR_ID = "data-dir-id"  # a file in the data dir: the same folder, however it is mounted


def data_dir_id(settings: Settings) -> str:
    """The data dir's own name, made by whichever process needs it first: two hosts' "/data" on
    different disks differ, one network share mounted at two paths does not, as a path would."""
    path = settings.path(DATA_DIR_ID)
    try:
        with path.open("x") as made:
            made.write(uuid.uuid4().hex)
    except FileExistsError:
        pass
    return path.read_text().strip()


def _job(raw: bytes | str) -> Job:
    """A stored record, fields of a newer version left out: a replica or worker one version
    behind, during a rolling upgrade, reads jobs the newer ones queued."""
    known = {f.name for f in fields(Job)}
    return Job(**{k: v for k, v in json.loads(raw).items() if k in known})


NO_WORKER = ("queued, but no ingest worker is running: the job waits until one starts (python -m ingest.worker, "
             "with the server's REDIS_URL and GEMRAG_DATA_DIR)")


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
    skipped: dict[str, str] = field(default_factory=dict)  # file → why it was not read (an image with no words)
    message: str = ""  # why it failed or stopped, or that no worker runs it yet (`NO_WORKER`)
    # The data dir of the server that queued it (`data_dir_id`): a worker with another one (its
    # manifest elsewhere, the Chroma server shared) took every stored file the job did not name
    # for an orphan and deleted it. "" for a job queued before this field.
    data_dir_id: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def files(self) -> list[str]:
        """The stored names an upload ingests or a removal removes (a folder's are found as it
        runs): an upload's names are made plain (`rag.uploads.readable_name`: "a\\b.md" is
        "b.md"), and a client learns them here rather than by listing the collection."""
        if self.kind == "upload":
            return [Path(p).name for p in self.paths]
        return list(self.sources)


def broker(settings: Settings):  # type: ignore[no-untyped-def]  # dramatiq's broker is untyped
    """The Dramatiq broker on the app's Redis; the API and the worker build it the same way."""
    from dramatiq import Broker, Middleware
    from dramatiq.brokers.redis import RedisBroker

    class FiledByJob(Middleware):
        """Files each message in Redis under its job's id (its message id, `Jobs.submit`),
        not a fresh uuid, so `Jobs.settled` finds it, or its loss, by a few lookups. A job
        has one message at a time in each hash (a retry waits in the delay queue's until it
        moves back; a dead letter leaves the queue's), except where a worker dies between
        queuing a retry and acknowledging the attempt: then the two share the id, and one
        acknowledgement drops the other's data. That loses a duplicate, never the job (the
        job's record is what a worker runs from), though Dramatiq logs the missing message."""

        def before_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
            # RedisBroker.enqueue has just set a uuid here, and reads it back after this hook.
            message.options["redis_message_id"] = message.message_id

    if not settings.redis_url:
        raise ConfigError("Ingest jobs need a queue: set REDIS_URL (the same one, and the same GEMRAG_DATA_DIR, for "
                          "the server and its python -m ingest.worker)"
                          + ("." if settings.chroma_url else ", and a store both share: CHROMA_URL, for a Chroma "
                             "server (chroma run --path DATA_DIR/chroma --port 8001)."))
    if not settings.chroma_url:
        # The embedded store is one process's: a server reading it would search a worker's
        # new chunks only by keywords and crash on its removals until restarted. The message
        # names no path: the API shows it to its clients.
        raise ConfigError(
            "Ingest jobs need a store the server and the worker share: run a Chroma server "
            "(chroma run --path DATA_DIR/chroma --port 8001) and set CHROMA_URL=http://127.0.0.1:8001 "
            "for both, beside REDIS_URL.")
    queue = RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq's RedisBroker.__init__ has no annotations
        url=settings.redis_url,
        namespace=NAMESPACE,
        heartbeat_timeout=int(settings.job_heartbeat_s * 1000),
        maintenance_chance=ALWAYS,
    )
    queue.add_middleware(FiledByJob())
    return queue


class QueueUnavailable(GemragError):
    """The queue's Redis could not take a job (503): nothing was queued."""


class Jobs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = broker(settings)
        self.redis = redis_client(settings.redis_url)  # type: ignore[arg-type]  # checked by broker() above
        self._whereabouts = self.redis.register_script(_WHEREABOUTS)

    def submit(self, kind: JobKind, collection: str, owner: str, *, paths: list[str] | None = None,
               sources: list[str] | None = None, prune: bool = False) -> Job:
        import redis

        now = time.time()
        # An upload's or a removal's files are known now: counted while the job is queued. A
        # folder's are found as it runs.
        named = len(paths or []) if kind == "upload" else len(sources or [])
        job = Job(uuid.uuid4().hex, kind, collection, owner, paths or [], sources or [], prune, files_total=named,
                  data_dir_id=data_dir_id(self.settings), created_at=now, updated_at=now)
        try:
            # Queued with no worker to run it, a job waited without a word (`/readyz` is the
            # API's, not the workers'): its client is told, and the job still waits for one.
            idle = not self.live_workers()
        except redis.RedisError:
            idle = False  # the enqueue below says what is wrong with Redis
        if idle:
            job = replace(job, message=NO_WORKER)
        try:
            self.save(job)  # first: a worker that takes the message at once must find the record
            try:
                self.broker.enqueue(self._message(job.id))
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

    def requeue(self, job_id: str, after_s: float) -> None:
        """The job's message again, due in `after_s`: for a job that could not start yet (its
        collection busy), called by the worker running it, which then acknowledges the
        message it holds. A retry without the failure: no attempt counted, no error logged."""
        self.broker.enqueue(self._message(job_id), delay=round(after_s * 1000))

    def _message(self, job_id: str) -> Message[None]:
        from dramatiq import Message

        return Message(queue_name=self.settings.job_queue, actor_name=TASK, args=(job_id,), kwargs={},
                       options={"max_retries": self.settings.job_max_retries}, message_id=job_id)

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.get(self._key(job_id))
        return _job(raw) if raw else None

    def current(self, job_id: str) -> Job | None:
        """The job's record, `settled`: what its progress stream polls."""
        job = self.get(job_id)
        return self.settled(job) if job is not None else None

    def settled(self, job: Job) -> Job:
        """The job as its client sees it (GET /v1/jobs/{id}, and each poll of its stream). One
        queued or retrying, unchanged for `job_lost_grace_s`, is first looked for in the
        queue: if the queue no longer holds its message (its keys deleted or evicted, a
        queuing that failed after the record was saved, a message dead-lettered without its
        worker marking the job), no worker will run it, nor would its stream ever end, so
        it is failed, saying so."""
        if not self._overdue(job) or not self._due_for_a_look(job.id):
            return job
        return self._settle(job.id) or job

    def _due_for_a_look(self, job_id: str) -> bool:
        """At most one look in the queue per job and grace period, whichever replica or
        stream asks: a stream polls twice a second, and each look is a script over the
        queue's keys that Redis runs alone."""
        grace_ms = max(1, int(self.settings.job_lost_grace_s * 1000))
        return bool(self.redis.set(self._looked_key(job_id), 1, nx=True, px=grace_ms))

    def _overdue(self, job: Job) -> bool:
        return job.state in WAITING and time.time() - job.updated_at >= self.settings.job_lost_grace_s

    def _settle(self, job_id: str) -> Job | None:
        """The job, failed if the queue lost it; a worker's or another replica's write to it
        meanwhile wins (WATCH), and is what is returned."""
        import redis

        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(self._key(job_id))  # type: ignore[no-untyped-call]  # redis-py's watch has no annotations
                raw = pipe.get(self._key(job_id))
                job = _job(raw) if raw else None
                if job is None or not self._overdue(job):
                    return job
                where = self._whereabouts(keys=[NAMESPACE], args=[self.settings.job_queue, job_id]).decode()
                if where == "queued":
                    return job
                lost = replace(job, state="failed", current="", message=lost_message(job, where),
                               updated_at=time.time())
                pipe.multi()
                self._write(pipe, lost)
                pipe.execute()
            except redis.WatchError:
                return self.get(job_id)
        log.warning("job %s failed: the queue %s its message", job_id,
                    "dead-lettered" if where == "dead" else "lost", extra={"job_id": job_id})
        if job.kind == "upload":  # its staged files: nothing will ingest them now
            discard(StagedFile.at(Path(p)) for p in job.paths)
        return lost

    def save(self, job: Job) -> Job:
        job = replace(job, updated_at=time.time())
        pipe = self.redis.pipeline()
        self._write(pipe, job)
        pipe.execute()
        return job

    def _write(self, pipe: Pipeline, job: Job) -> None:
        """The record, and the job's place in its state's index, scored by when it last
        changed: the record expires a week later, and `counts` drops the index's entries as
        old (a plain set kept every id it was ever given, and the counts grew for good)."""
        pipe.set(self._key(job.id), json.dumps(asdict(job)), ex=KEEP_S)
        for state in STATES:
            pipe.zrem(self._state_key(state), job.id)
        pipe.zadd(self._state_key(job.state), {job.id: job.updated_at})

    def _forget(self, job_id: str) -> None:
        """Drop a job's record, as best it can: Redis may be what failed. A record left
        behind is a queued job with no message: `settled` fails it as lost once it is read,
        by its client or by the next scrape of /metrics past the grace (`counts`)."""
        import redis

        pipe = self.redis.pipeline()
        pipe.delete(self._key(job_id))
        for state in STATES:
            pipe.zrem(self._state_key(state), job_id)
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

    def counts(self, now: float | None = None) -> dict[JobState, int]:
        """Jobs per state whose records have not expired (changed within `KEEP_S`), for
        /metrics; the index's older entries are dropped on the way. Waiting jobs unchanged
        past the grace are `settled` first (at most `SETTLED_PER_COUNT`, oldest first): a
        job the queue lost, whose id nobody holds (its submitter gone, or its record left
        behind by a failed queuing, `_forget`), counted as queued until its week ended. Earlier
        versions indexed states in plain sets (`OLD_STATE_KEY`) that held every id they were
        ever given: those are deleted on the way, since nothing reads them now."""
        moment = time.time() if now is None else now
        self._settle_overdue(moment)
        expired = moment - KEEP_S
        pipe = self.redis.pipeline()
        pipe.delete(*(OLD_STATE_KEY.format(state=state) for state in STATES))
        for state in STATES:
            pipe.zremrangebyscore(self._state_key(state), "-inf", expired)
            pipe.zcard(self._state_key(state))
        answers = pipe.execute()[1:]  # after the old sets' deletion
        return {state: int(n) for state, n in zip(STATES, answers[1::2], strict=True)}

    def _settle_overdue(self, now: float) -> None:
        """Up to `SETTLED_PER_COUNT` waiting jobs past the grace that no one looked for in the
        queue within it, oldest first: skipping the looked-at ones, a lost job behind more
        than that many waiting jobs is still reached. Whatever goes wrong here (a record
        this version cannot read, a Redis without LPOS) is logged, and the counts go on."""
        overdue = now - self.settings.job_lost_grace_s
        try:
            ids = [member.decode() if isinstance(member, bytes) else str(member)
                   for state in WAITING
                   for member in self.redis.zrangebyscore(self._state_key(state), "-inf", overdue, start=0,
                                                          num=SETTLED_LOOKED_OVER)]
            pipe = self.redis.pipeline()
            for job_id in ids:
                pipe.exists(self._looked_key(job_id))
            due = [job_id for job_id, looked in zip(ids, pipe.execute(), strict=True) if not looked]
            for raw in self.redis.mget([self._key(job_id) for job_id in due[:SETTLED_PER_COUNT]]) if due else []:
                if raw:
                    self.settled(_job(raw))
        except Exception as exc:  # the counts matter more than this look
            log.warning("waiting jobs not looked for in the queue: %s", exc)

    def queue_depth(self) -> int:
        return int(self.broker.do_qsize(self.settings.job_queue))

    def beat(self, worker: str) -> None:
        """A worker says it is alive (every third of `job_heartbeat_s`, `ingest.worker.main`).
        Not Dramatiq's own heartbeats: every broker that enqueues writes them, servers too.
        Timed by Redis' clock, which the server's count reads too (machines' clocks differ)."""
        now_ms = self._now_ms()
        self.redis.zadd(self._workers, {worker: now_ms})
        self.redis.zremrangebyscore(self._workers, 0, now_ms - 10 * self.settings.job_heartbeat_s * 1000)

    def left(self, worker: str) -> None:
        """A worker stopping says so, instead of being counted until its beat is old."""
        self.redis.zrem(self._workers, worker)

    def live_workers(self) -> int:
        """Workers of this queue that beat within `job_heartbeat_s`: with none, queued jobs
        wait for ever, which nothing reported (the `gemrag_workers_alive` gauge and its alert)."""
        return int(self.redis.zcount(self._workers, self._now_ms() - self.settings.job_heartbeat_s * 1000, "+inf"))

    @property
    def _workers(self) -> str:
        return f"{WORKERS_KEY}:{self.settings.job_queue}"  # per queue: another queue's worker runs none of these

    def _now_ms(self) -> float:
        seconds, micros = self.redis.time()
        return seconds * 1000 + micros / 1000

    def _key(self, job_id: str) -> str:
        return f"gemrag:job:{job_id}"

    def _looked_key(self, job_id: str) -> str:
        return f"gemrag:job-looked:{job_id}"  # set while the job's look in the queue is recent (`_due_for_a_look`)

    def _state_key(self, state: str) -> str:
        return f"gemrag:jobs-by-state:{state}"  # sorted sets (`_write`); OLD_STATE_KEY held plain sets


def lost_message(job: Job, where: str) -> str:
    """What a job the queue lost tells its client: that nothing will run it, and what to do."""
    again = "upload the files again" if job.kind == "upload" else "submit it again"
    if where == "dead":
        return ("The queue dead-lettered this job without a worker finishing it (a worker could not run it: its "
                f"log says why), so nothing will run it: {again}.")
    return ("The queue lost this job: its message is no longer in Redis (its keys were deleted or evicted, or "
            f"queuing it failed), so nothing will run it: {again}.")
