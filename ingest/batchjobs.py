"""`python -m ingest --batch`: a run's new chunks embedded by Batch API jobs, at half price.

Crash safety comes from the manifest (ingest.manifest, table `batch_jobs`):
1. before a job is submitted, a row records it with a fresh display name and a key of each
   text it will embed, in order;
2. the job is created under that display name; its name ("batches/...") is then recorded;
3. the run waits (or exits, `--no-wait`), and `--resume` or the same command picks the rows up:
   a named row is polled; a row without a name (the run died around the submission) is looked
   for by its display name: found, it is adopted; not found, it never reached the API and is
   dropped, so its chunks go into a new job. A job is therefore never submitted twice;
4. its estimated price is held in the ledger from before its submission (the row keeps the
   hold), so jobs not yet collected count against the budgets; a finished job is charged
   once, its hold replaced by its price (at the batch price; the row remembers it;
   ingest.spending), and a job that embedded nothing, or never reached the API, releases it;
   a job a `--rebuild` forgets stays held at its estimate (the API bills it all the same),
   and its vectors are stored by the ordinary pipeline, whose chunk ids make each chunk land
   once however often a run is repeated; the rows are deleted only after that.
A job that failed or expired, or a request in it that failed, leaves its texts to the online
embedder, at the standard price, and the run says so.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from ingest.chunking import SizedChunk
from ingest.manifest import JobRecord, Manifest
from ingest.spending import Spending
from rag.costs import Hold, price_usd
from rag.errors import ConfigError, GemragError
from rag.providers.base import BatchEmbedder, Embedder, EmbeddingJobs, JobStatus
from rag.settings import Settings
from rag.types import Embedded, Usage

JobProgress = Callable[[int, int, str], None]  # (chunks in finished jobs, chunks in all jobs, states)


def text_key(text: str) -> str:
    """Vectors depend on the text alone (same model, task and size): a hash of it finds a
    job's vector for a chunk whatever file or place the chunk now has."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Origin:
    """What a `--batch` run was asked, kept with its jobs so `--resume` needs no arguments."""

    paths: list[str]
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    include_hidden: bool = False
    prune: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Origin:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class BatchRun:
    origin: Origin
    wait: bool = True  # False: submit (or look at the jobs once) and return
    resume: bool = False  # only collect jobs already pending; refuse when there are none


def nothing_to_resume(collection: str) -> GemragError:
    return GemragError(
        f"Nothing to resume: collection {collection!r} has no batch job pending "
        "(start one with `python -m ingest PATH --batch`)."
    )


def embedding_jobs(embedder: Embedder) -> EmbeddingJobs:
    if not isinstance(embedder, BatchEmbedder):
        raise ConfigError(
            f"--batch and --resume embed through Gemini's Batch API, but this collection is embedded by "
            f"{embedder.embedding_id}: set GEMINI_API_KEY (a collection built offline needs --rebuild to switch)."
        )
    return embedder.embedding_jobs()


class JobVectors:
    """What ingest embeds with after the jobs: a text a job embedded gets its vector, the
    rest (a failed job's, or files new since it was submitted) goes to `online`, the run's
    online embedding (charged as it returns)."""

    def __init__(
        self,
        vectors: dict[str, list[float]],
        submitted: set[str],
        online: Callable[[Sequence[str]], Embedded],
        model: str,
    ) -> None:
        self.vectors = vectors
        self.submitted = submitted  # the text keys of every job, succeeded or not
        self.online = online
        self.model = model
        self.unsubmitted = 0  # texts embedded online because no job had them
        self._lock = threading.Lock()  # embedding runs in several threads

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and text_key(text) in self.vectors

    def embed(self, texts: Sequence[str]) -> Embedded:
        missing = [t for t in texts if t not in self]
        online = self.online(missing) if missing else None
        if online is not None:
            with self._lock:
                self.unsubmitted += sum(text_key(t) not in self.submitted for t in missing)
        fetched = iter(online.vectors if online else [])
        vectors = [self.vectors[text_key(t)] if t in self else next(fetched) for t in texts]
        usage = online.usage if online else Usage()
        return Embedded(vectors, usage, online.model if online else self.model)


@dataclass
class Collected:
    vectors: JobVectors
    cost_usd: float  # the jobs' price, charged by this run (0 for jobs charged before)
    saved_usd: float  # what the same tokens would have cost online
    notes: list[str]


class BatchJobs:
    """The jobs of one collection: submitted, waited for, collected and forgotten."""

    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        jobs: EmbeddingJobs,
        spending: Spending,
        on_progress: JobProgress | None = None,
    ) -> None:
        self.settings = settings
        self.manifest = manifest
        self.api = jobs
        self.spending = spending
        self.on_progress = on_progress

    def pending(self) -> list[JobRecord]:
        """The collection's jobs from earlier runs, each with its name: rows a killed run left
        without one are matched by display name, or dropped when the API never got them."""
        records = []
        for record in self.manifest.jobs():
            if not record.name:
                found = self.api.find(record.display_name)
                if not found:
                    self._release([_held(record)])
                    self.manifest.forget_jobs([record])
                    continue
                record = replace(record, name=found)
                self.manifest.update_job(record)
            records.append(record)
        return records

    def submit(self, chunks: Sequence[SizedChunk], origin: Origin) -> list[JobRecord]:
        """One job per `batch_job_chunks` distinct texts, each recorded before it is sent."""
        tokens: dict[str, int] = {}
        texts: dict[str, str] = {}
        for c in chunks:
            key = text_key(c.chunk.embedded_text)
            texts.setdefault(key, c.chunk.embedded_text)
            tokens.setdefault(key, c.tokens)
        keys = list(texts)
        size = max(1, self.settings.batch_job_chunks)
        parts = [keys[i : i + size] for i in range(0, len(keys), size)]
        counts = [sum(tokens[k] for k in part) for part in parts]
        holds = self._hold_all(counts)
        intents = [
            JobRecord(
                display_name=f"gemrag-{uuid.uuid4().hex[:16]}",
                name="",
                model=self.api.embedding_model,
                text_keys=tuple(part),
                tokens=count,
                origin=origin.to_json(),
                hold="" if hold is None else json.dumps(asdict(hold)),
            )
            for part, count, hold in zip(parts, counts, holds, strict=True)
        ]
        try:
            self.manifest.add_jobs(intents)
        except BaseException:
            self._release(holds)
            raise
        records: list[JobRecord] = []
        try:
            for intent in intents:
                record = replace(intent, name=self.api.submit([texts[k] for k in intent.text_keys],
                                                              intent.display_name))
                self.manifest.update_job(record)
                records.append(record)
        except BaseException:
            # The job being sent may have reached the API: `pending` finds out next time. Those
            # after it were never sent: released and forgotten now.
            unsent = intents[len(records) + 1 :]
            self._release([_held(r) for r in unsent])
            self.manifest.forget_jobs(unsent)
            raise
        return records

    def _hold_all(self, tokens: Sequence[int]) -> list[Hold | None]:
        """Each job's estimate held before any is submitted; none if the budgets cannot
        cover them all (BudgetExceeded): each hold is checked against the others already
        made, and against those of jobs other runs left uncollected."""
        holds: list[Hold | None] = []
        try:
            for count in tokens:
                holds.append(self.spending.hold(self.api.embedding_model, Usage(prompt_tokens=count)))
        except BaseException:
            self._release(holds)
            raise
        return holds

    def _release(self, holds: Sequence[Hold | None]) -> None:
        for hold in holds:
            if hold is not None:
                self.spending.settle(hold, self.api.embedding_model, None)

    def wait(self, records: Sequence[JobRecord], block: bool = True) -> dict[str, JobStatus]:
        """Every job's status; with `block`, polls every `batch_poll_s` until all finished."""
        statuses: dict[str, JobStatus] = {}
        total = sum(len(r.text_keys) for r in records)
        while True:
            for record in records:
                if record.name not in statuses or not statuses[record.name].finished:
                    statuses[record.name] = self.api.status(record.name)
            done = sum(len(r.text_keys) for r in records if statuses[r.name].finished)
            if self.on_progress:
                self.on_progress(done, total, ", ".join(sorted({s.state for s in statuses.values()})))
            if done == total or not block:
                return statuses
            time.sleep(self.settings.batch_poll_s)

    def collect(
        self, records: Sequence[JobRecord], statuses: dict[str, JobStatus], online: Callable[[Sequence[str]], Embedded]
    ) -> Collected:
        """The jobs' vectors, each job charged once (at the batch price, on the tokens it
        reported, else those counted at submission); the rest is left to `online`."""
        vectors: dict[str, list[float]] = {}
        cost = saved = 0.0
        notes = []
        for record in records:
            status = statuses[record.name]
            got = dict(zip(record.text_keys, status.vectors, strict=False)) if status.state == "succeeded" else {}
            ok = {k: v for k, v in got.items() if v is not None}
            vectors.update(ok)
            left = len(record.text_keys) - len(ok)
            if status.state != "succeeded":
                notes.append(f"Batch job {record.name} {status.state}: its {left:,} chunks were embedded online, "
                             "at the standard price.")
            elif left:
                notes.append(f"Batch job {record.name}: {left:,} of its requests failed; those chunks were "
                             "embedded online, at the standard price.")
            if not record.charged:
                local = record.tokens * len(ok) // max(1, len(record.text_keys))
                usage = Usage(prompt_tokens=status.tokens or local)
                held = _held(record)
                if held is not None:
                    cost += self.spending.settle(held, record.model, usage if ok else None)
                elif ok:  # a job submitted by a version that held nothing
                    cost += self.spending.charge(record.model, usage, batch=True)
                if ok:
                    saved += price_usd(self.settings, record.model, usage) - price_usd(
                        self.settings, record.model, usage, batch=True)
                self.manifest.update_job(replace(record, charged=True))

        submitted = {k for r in records for k in r.text_keys}
        return Collected(JobVectors(vectors, submitted, online, self.api.embedding_model), cost, saved, notes)

    def forget(self, records: Sequence[JobRecord]) -> None:
        """After every vector is stored: the next run starts afresh."""
        self.manifest.forget_jobs(records)


def _held(record: JobRecord) -> Hold | None:
    return Hold(**json.loads(record.hold)) if record.hold else None


def pending_origin(manifest: Manifest) -> Origin | None:
    """What the collection's pending jobs were submitted for (None: no job is pending)."""
    jobs = manifest.jobs()
    return Origin.from_json(jobs[0].origin) if jobs else None
