"""Gemini-path ingest against the fake Gemini server: how close to its floor, and whether
injected 429/503 answers lose or duplicate anything.

The fake answers each `batchEmbedContents` after a fixed latency and enforces the same
requests/min limit our client-side limiter is configured with (so a 429 from the limit
means the limiter failed). Two things bound an ingest from below, and the floor is the
larger of them:
- the API: what the limit and the configured concurrency allow for this many batches,
  with zero cost for everything else;
- local work: the same ingest of the same files (reading, chunking, storing 768-dim
  vectors in Chroma) with an embedder that answers at once, measured in the same run.
An ingest that overlaps the two perfectly takes the larger; `wall / floor` is how far
above that it is. The ratio to the API's floor alone is printed too. The fake runs in its
own process; its work (hashing embeddings, JSON) still shares the two cores with ours.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from bench.corpus_gen import generate
from bench.harness import Figure, Profile, Table, fresh_dir, hash_vector, ratio, server_process
from rag.types import Embedded, Usage

COLLECTION = "bench-gemini"
LATENCY_S = 0.2  # per batch request
FAULT_RATE = 0.10  # of embedding requests, answered 429 or 503
MINUTE = 60.0


@dataclass(frozen=True)
class Limit:
    """The simulated quota: `rpm` requests per sliding minute, `concurrency` in flight."""

    rpm: int
    concurrency: int
    latency_s: float

    def floor_s(self, requests: int) -> float:
        """The least wall time `requests` batches can take: each full minute window the
        limit forces us to wait out, plus the last window's requests at full concurrency;
        never less than all requests served `concurrency` at a time."""
        windows = math.ceil(requests / self.rpm)
        last = requests - self.rpm * (windows - 1)
        by_rate = MINUTE * (windows - 1) + math.ceil(last / self.concurrency) * self.latency_s
        by_latency = math.ceil(requests / self.concurrency) * self.latency_s
        return max(by_rate, by_latency)


@dataclass(frozen=True)
class GeminiRun:
    wall_s: float
    embedding_s: float  # inside provider.embed_documents: requests, waits and retries
    chunks: int
    requests: int  # batchEmbedContents requests the server saw
    answered: Counter[int]  # HTTP status -> count
    vectors: dict[str, np.ndarray]  # stored chunk id -> vector
    positions: list[tuple[str, int]]  # (source, index) of every stored chunk
    stopped: str | None


def serve_fake(conn: Connection, limit: Limit, fault_rate: float) -> None:
    """The fake server in its own process: its embedding arithmetic and JSON must not
    count against the ingest being measured. Sends its URL, waits for a word, then sends
    the HTTP status of every embedding request it answered."""
    from rag.testing.fake_gemini import FakeGemini

    with FakeGemini(latency_s=limit.latency_s) as fake:
        fake.rate_limit(limit.rpm, model="gemini-embedding-001")
        if fault_rate:
            fake.fault_rate(fault_rate, seed=9, method="batchEmbedContents")
        conn.send(fake.url)
        conn.recv()
        conn.send([c.status for c in fake.calls("batchEmbedContents")])


def ingest_against_fake(root: Path, data: Path, limit: Limit, fault_rate: float) -> GeminiRun:
    from ingest.pipeline import ingest_paths
    from rag.providers.gemini import GeminiProvider
    from rag.settings import Settings
    from rag.store import Store

    class TimedProvider(GeminiProvider):
        embedding_s = 0.0

        def embed_documents(self, texts: Sequence[str]) -> Embedded:
            started = time.perf_counter()
            try:
                return super().embed_documents(texts)
            finally:
                self.embedding_s += time.perf_counter() - started

    with server_process(serve_fake, limit, fault_rate) as (url, statuses):
        settings = Settings.model_validate({  # `models` amends the catalogue's row, as gemrag.toml does
            "data_dir": data,
            "api_key": SecretStr("bench-key"),
            "base_url": url,
            "tier": "tier1",
            "models": {"gemini-embedding-001": {"limits": {"tier1": {"rpm": limit.rpm, "tpm": None, "rpd": None}}}},
            "embed_concurrency": limit.concurrency,
        })
        provider = TimedProvider(settings)
        started = time.perf_counter()
        report = ingest_paths([root], settings, provider, collection=COLLECTION)
        wall = time.perf_counter() - started
        answered = statuses()
    store = Store(settings, provider.embedding_id, COLLECTION)
    ids = sorted(store.ids())
    vectors = {i: np.asarray(v) for i, v in store.vectors(ids).items()} if ids else {}
    positions = [(c.source, c.index) for c in store.chunks()]
    return GeminiRun(wall, provider.embedding_s, len(ids), len(answered), Counter(answered), vectors, positions,
                     report.stopped)


def instant_ingest(root: Path, data: Path) -> float:
    """Seconds for the same ingest with an embedder that answers at once: the Gemini
    provider's settings, chunk profile, batches and vector size, no network, no limiter."""
    from ingest.pipeline import ingest_paths
    from rag.providers.gemini import GeminiProvider
    from rag.settings import Settings

    class InstantProvider(GeminiProvider):
        def embed_documents(self, texts: Sequence[str]) -> Embedded:
            return Embedded([hash_vector(t, self.embedding_dim) for t in texts], Usage(), self.embedding_model)

    settings = Settings(data_dir=data, api_key=SecretStr("bench-key"), base_url="http://127.0.0.1:9", tier="unlimited")
    started = time.perf_counter()
    report = ingest_paths([root], settings, InstantProvider(settings), collection=COLLECTION)
    seconds = time.perf_counter() - started
    if report.exit_code:
        raise RuntimeError(f"the local-work ingest failed: {report.stopped or report.exit_code}")
    return seconds


def run(profile: Profile, work: Path, emit: Callable[[Table], None]) -> None:
    corpus = generate(fresh_dir(work / "corpus"), profile.gemini_chunks)
    concurrency = 4
    limit = Limit(profile.gemini_rpm, concurrency, LATENCY_S)
    fast = Limit(rpm=3_000, concurrency=concurrency, latency_s=LATENCY_S)
    clean = ingest_against_fake(corpus.root, fresh_dir(work / "clean"), limit, 0.0)
    local_s = instant_ingest(corpus.root, fresh_dir(work / "local"))  # after: files cached, imports done
    emit(floor_table(clean, limit, local_s, len(corpus.files)))
    if limit.rpm < fast.rpm:  # the run above was bound by the limit: now one that is not
        emit(floor_table(ingest_against_fake(corpus.root, fresh_dir(work / "free"), fast, 0.0), fast, local_s,
                         len(corpus.files)))

    faulty = ingest_against_fake(corpus.root, fresh_dir(work / "faulty"), fast, FAULT_RATE)
    lost = len(set(clean.vectors) - set(faulty.vectors))
    extra = len(set(faulty.vectors) - set(clean.vectors))
    duplicated = sum(n - 1 for n in Counter(faulty.positions).values() if n > 1) + extra
    wrong = sum(
        1 for i, v in faulty.vectors.items() if i in clean.vectors and float(v @ clean.vectors[i]) < 0.999
    )
    faults = sum(n for status, n in faulty.answered.items() if status != 200)
    retries = faulty.requests - faulty.answered.get(200, 0)
    table = Table(
        "gemini-ingest",
        f"the same ingest with {FAULT_RATE:.0%} of embedding requests answered 429 or 503",
        f"limit {fast.rpm} requests/min (not binding), {concurrency} in flight, fake latency "
        f"{LATENCY_S * 1000:.0f} ms; compared chunk by chunk with the clean run",
    )
    table.add(
        Figure("chunks lost", lost, "chunks", "in the clean run's collection, missing here", "0", lost == 0),
        Figure("chunks duplicated", duplicated, "chunks", "stored twice, or stored under an id the clean run lacks",
               "0", duplicated == 0),
        Figure("vectors misplaced", wrong, "chunks", "stored vector differs from the clean run's for that chunk",
               "0", wrong == 0),
        Figure("faults injected", faults, "requests", f"answered: {dict(sorted(faulty.answered.items()))}"),
        Figure("retries made", retries, "requests", "requests beyond the successful ones"),
        Figure("wall time", faulty.wall_s, "s", "with retries and their backoff"
               + (f"; stopped: {faulty.stopped}" if faulty.stopped else "")),
        Figure("wall / floor", ratio(faulty.wall_s, max(fast.floor_s(faulty.answered.get(200, 0)), local_s)), "×",
               "over the larger of the API's floor for the successful requests and the local-work floor; "
               "retries and their backoff are on top"),
    )
    emit(table)


def floor_table(clean: GeminiRun, limit: Limit, local_s: float, files: int) -> Table:
    api_s = limit.floor_s(clean.answered.get(200, 0))  # a request refused 429 is not a batch served
    floor = max(api_s, local_s)
    over_floor = ratio(clean.wall_s, floor)
    binding = "binding" if api_s > local_s else "not binding: local work is the floor"
    table = Table(
        "gemini-ingest",
        f"Gemini-path ingest of {clean.chunks:,} chunks against the fake server, limit {limit.rpm:,} requests/min",
        f"{files} generated files; batches of 100; fake latency {LATENCY_S * 1000:.0f} ms per batch; "
        f"limit {limit.rpm} requests/min (client limiter and server alike), {limit.concurrency} batches in flight",
    )
    table.add(
        Figure("embedding requests", clean.requests, "requests",
               f"answered: {dict(sorted(clean.answered.items()))}; any 429 means our limiter let one through"),
        Figure("wall time", clean.wall_s, "s", "ingest_paths, Gemini provider, fresh collection"),
        Figure("of which embedding calls", clean.embedding_s, "s",
               "inside embed_documents, summed over the threads (requests, limiter waits)"),
        Figure("API floor", api_s, "s", f"least time the limit and concurrency allow for these requests ({binding})"),
        Figure("local-work floor", local_s, "s",
               "the same files through the same pipeline and store with an embedder that answers at once"),
        Figure("wall / floor", over_floor, "×", "over the larger of the two floors", "≤ 1.2",
               None if over_floor is None else over_floor <= 1.2),
        Figure("wall / API floor", ratio(clean.wall_s, api_s), "×", "against the API's floor alone"),
    )
    return table

