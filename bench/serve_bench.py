"""`python -m bench serve`: many concurrent streaming sessions against API replicas.

What runs, all on loopback: a Redis and a Chroma server of the bench's own, the fake Gemini
in its own process (fixed time to first token, fixed token rate, a requests/min limit it
enforces with 429s), R `python -m rag.server` replicas sharing them, and one asyncio client
whose sessions each ask a different question (so the answer cache serves none) and read the
SSE stream to its end, spread over the replicas round robin.

N concurrent sessions means N answer streams open at the same time. Sessions start at a
steady ARRIVALS_PER_S, and each answer streams for N / ARRIVALS_PER_S seconds (the fake's
answer length is set to that at its token rate), so the open streams climb to about N and
the server holds them all while new questions keep arriving; the peak is measured. A burst
of N questions at the same instant would measure a queue for the CPU instead (each
question's retrieval costs some milliseconds of it), which the binding-limit scenario shows.

Reported per run: throughput, time to first byte (TTFB) and total p50/p95/p99, the
server's own overhead on TTFB (ours minus the fake's own first byte, measured in the run by
streaming from the fake directly: its fixed TTFT plus the time it takes to produce its first
chunk of tokens, all of it the model's time, not the server's), errors by kind, 429s with
their Retry-After, and the rate-limit queue waits from the replicas' /metrics. A second
scenario makes the limit bind on purpose: the calls over it wait in the fair queue up to
`queue_max_wait_s`, then get 429 with Retry-After; nothing else may fail.

Bounded: sessions are capped at MAX_SESSIONS, each request has a timeout, and the harness
kills the whole run at the profile's time limit. The client shares the two cores with the
servers, the fake, Redis and Chroma: the figures are for the whole system on one machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import numpy as np
from pydantic import SecretStr

from bench.corpus_gen import generate, queries
from bench.harness import Figure, Profile, Table, fresh_dir, server_process

COLLECTION = "bench-serve"
TTFT_S = 0.5  # the fake model's time to first token
TOKENS_PER_S = 20.0  # its output pace: slow, so that a stream lasts long enough for N to be open at once
CHUNK_TOKENS = 40  # tokens per streamed chunk: one SSE event every 2 s per stream
ARRIVALS_PER_S = 10.0  # new questions per second in the concurrency runs
SENTENCE = "The documents say the limit applies per project [1]."  # 10 tokens as the fake counts them
REPLICAS = 2
MAX_SESSIONS = 2_000
REQUEST_TIMEOUT_S = 300.0
OVERHEAD_TARGET_MS = 100.0  # p95 of TTFB minus the fake's TTFT, at 100 sessions
BINDING_SESSIONS, BINDING_WAIT_S = 300, 5.0  # the scenario where the limit binds on purpose: a third get through


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_fake(conn: Connection, flash: str, rpm: int, answer_tokens: int = 60) -> None:
    """The fake Gemini in its own process, answering every question with the same text of
    about `answer_tokens` tokens."""
    from rag.testing.fake_gemini import FakeGemini

    answer = " ".join([SENTENCE] * max(1, answer_tokens // 10))
    with FakeGemini(ttft_s=TTFT_S, tokens_per_s=TOKENS_PER_S, chunk_tokens=CHUNK_TOKENS,
                    responder=lambda _: answer) as fake:
        fake.rate_limit(rpm, model=flash)
        conn.send(fake.url)
        conn.recv()  # until the bench is done
        conn.send(Counter(str(c.status) for c in fake.calls("streamGenerateContent")))


@contextmanager
def service(command: list[str], ready: Callable[[], bool], log: Path,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 120
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def answers(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return ready


@dataclass
class Backends:
    redis_url: str
    chroma_url: str


@contextmanager
def backends(work: Path) -> Iterator[Backends]:
    """Redis and Chroma, shared by every scenario; each scenario starts on an empty Redis."""
    import redis

    redis_port, chroma_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"

    def redis_up() -> bool:
        try:
            return bool(redis.Redis.from_url(redis_url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    chroma = [str(Path(sys.executable).parent / "chroma"), "run", "--host", "127.0.0.1", "--port", str(chroma_port),
              "--path", str(fresh_dir(work / "chroma"))]
    with service(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                  "no"], redis_up, work / "redis.log"), \
            service(chroma, answers(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat"), work / "chroma.log"):
        yield Backends(redis_url, f"http://127.0.0.1:{chroma_port}")


def seed_collection(work: Path, chroma_url: str, sections: int) -> int:
    """The corpus is ingested once, through the Gemini path (the fake's embeddings are the same
    in every instance), into the bench's Chroma server."""
    from ingest.pipeline import ingest_paths
    from rag.providers.gemini import GeminiProvider
    from rag.settings import Settings

    corpus = generate(fresh_dir(work / "corpus"), sections)
    with server_process(serve_fake, Settings().flash_model, 100_000) as (fake_url, _):
        settings = Settings(data_dir=fresh_dir(work / "seed"), api_key=SecretStr("bench-key"), base_url=fake_url,
                            chroma_url=chroma_url, tier="unlimited")
        return ingest_paths([corpus.root], settings, GeminiProvider(settings), collection=COLLECTION).chunks


@contextmanager
def replicas(work: Path, env: dict[str, str], count: int) -> Iterator[list[str]]:
    with ExitStack() as stack:
        urls = []
        for n in range(count):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "rag.server", "--no-mounts", "--port", str(port),
                       "--data-dir", str(fresh_dir(work / f"replica{n}"))]
            stack.enter_context(service(command, answers(f"{url}/healthz"), work / f"replica{n}.log", env))
            urls.append(url)
        yield urls


@dataclass
class Session:
    ttfb_s: float | None = None
    total_s: float | None = None
    error: str | None = None  # kind: "429", "http 5xx", "stream error", "timeout", "transport: ..."
    retry_after: str | None = None
    cached: bool = False


@dataclass
class OpenStreams:
    now: int = 0
    peak: int = 0

    def opened(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)


async def one_session(client: httpx.AsyncClient, url: str, question: str, start_s: float,
                      streams: OpenStreams) -> Session:
    await asyncio.sleep(start_s)
    session = Session()
    started = time.perf_counter()
    streams.opened()
    try:
        async with client.stream("POST", f"{url}/v1/ask", json={"question": question}) as response:
            if response.status_code != 200:
                await response.aread()
                kind = response.json().get("error", "") if response.status_code != 429 else ""
                session.error = f"{response.status_code} {kind}".strip()
                session.retry_after = response.headers.get("retry-after")
                return session
            async for line in response.aiter_lines():
                if session.ttfb_s is None and line:
                    session.ttfb_s = time.perf_counter() - started
                if line.startswith("event: error"):
                    session.error = "stream error"
                elif line.startswith("data: ") and '"cached": true' in line.replace('":true', '": true'):
                    session.cached = True
        session.total_s = time.perf_counter() - started
    except httpx.TimeoutException:
        session.error = "timeout"
    except httpx.TransportError as exc:
        session.error = f"transport: {type(exc).__name__}"
    finally:
        streams.now -= 1
    return session


async def storm(urls: list[str], questions: list[str], arrivals_per_s: float | None = None
                ) -> tuple[list[Session], float, int]:
    """Sessions start `arrivals_per_s` apart (None: all at once); returns them, the wall time
    and the most streams that were open at once."""
    limits = httpx.Limits(max_connections=len(questions) + 10, max_keepalive_connections=len(questions) + 10)
    streams = OpenStreams()
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        started = time.perf_counter()
        sessions = await asyncio.gather(*(
            one_session(client, urls[i % len(urls)], q, i / arrivals_per_s if arrivals_per_s else 0.0, streams)
            for i, q in enumerate(questions)))
        return list(sessions), time.perf_counter() - started, streams.peak


_BUCKET = re.compile(r'^gemrag_ratelimit_wait_seconds_(sum|count)\{model="([^"]+)"\} ([0-9.e+]+)$', re.M)


def queue_waits(urls: list[str], model: str) -> tuple[float, int]:
    """Total seconds waited for rate-limit slots and calls counted, over all replicas."""
    total, count = 0.0, 0
    for url in urls:
        for kind, name, value in _BUCKET.findall(httpx.get(f"{url}/metrics", timeout=10).text):
            if name == model:
                total += float(value) if kind == "sum" else 0.0
                count += int(float(value)) if kind == "count" else 0
    return total, count


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1000 if values else None


@dataclass
class Outcome:
    sessions: int
    elapsed_s: float
    results: list[Session]
    waited_s: float
    waits: int
    fake_statuses: Counter[str]
    peak_open: int = 0
    load: tuple[float, float] = field(default=(0.0, 0.0))
    fake_first_byte_s: float = 0.0  # the baseline: the fake's own time to its first event

    @property
    def ok(self) -> list[Session]:
        return [s for s in self.results if s.error is None]

    def errors(self) -> Counter[str]:
        return Counter(s.error for s in self.results if s.error is not None)


@dataclass(frozen=True)
class Scenario:
    questions: list[str]
    rpm: int  # the Flash limit, shared by the replicas and enforced by the fake
    wait_s: float  # queue_max_wait_s
    arrivals_per_s: float | None  # None: every session at once
    answer_tokens: int


def fake_first_byte(fake_url: str, model: str, repeats: int = 3) -> float:
    """The baseline: seconds from sending a streamed generation to the fake itself to its first
    event (median of `repeats`), the part of every TTFB that is the model's, not ours."""
    body = {"contents": [{"role": "user", "parts": [{"text": "baseline"}]}]}
    url = f"{fake_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    seconds = []
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            with client.stream("POST", url, json=body, headers={"x-goog-api-key": "bench-key"}) as response:
                next(line for line in response.iter_lines() if line)
                seconds.append(time.perf_counter() - started)
    return float(np.median(seconds))


def run_scenario(work: Path, up: Backends, scenario: Scenario) -> Outcome:
    import redis

    from rag.settings import Settings

    flash = Settings().flash_model
    redis.Redis.from_url(up.redis_url).flushdb()  # no cached answers, limiter counts or ledger from before
    with server_process(serve_fake, flash, scenario.rpm, scenario.answer_tokens) as (fake_url, fake_statuses):
        env = {
            "GEMINI_API_KEY": "bench-key", "GEMRAG_BASE_URL": fake_url, "GEMRAG_REDIS_URL": up.redis_url,
            "GEMRAG_CHROMA_URL": up.chroma_url, "GEMRAG_COLLECTION": COLLECTION, "GEMRAG_TIER": "unlimited",
            "GEMRAG_MODELS": json.dumps({flash: {"limits": {"unlimited": {"rpm": scenario.rpm}}}}),
            # One answer model: load-adaptive routing would otherwise move answers to Flash-Lite as
            # Flash fills up (rag/headroom.py), and the limit under test would never bind.
            "GEMRAG_LITE_MODEL": flash,
            "GEMRAG_QUEUE_MAX_WAIT_S": str(scenario.wait_s), "GEMRAG_MAX_ATTEMPTS": "1",
            "GEMRAG_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
            "GEMRAG_SESSION_BUDGET_USD": "1000", "GEMRAG_DAILY_BUDGET_USD": "100000",
        }
        with replicas(work, env, REPLICAS) as urls:
            # On the Pro model: the fake limits only Flash, and the baseline must not use its quota.
            fake_alone = fake_first_byte(fake_url, Settings().pro_model)
            warm = [f"warm-up question {i} about quotas" for i in range(2 * REPLICAS)]
            asyncio.run(storm(urls, warm))  # imports, connections, each replica's BM25 index (4 calls of the limit)
            load_before = os.getloadavg()[0]
            results, elapsed, peak = asyncio.run(storm(urls, scenario.questions, scenario.arrivals_per_s))
            waited, waits = queue_waits(urls, flash)
            outcome = Outcome(len(scenario.questions), elapsed, results, waited, waits, Counter(), peak,
                              (load_before, os.getloadavg()[0]), fake_alone)
        outcome.fake_statuses = fake_statuses()
    return outcome


def table(outcome: Outcome, title: str, setup: str, overhead_target: bool) -> Table:
    ok = outcome.ok
    ttfb = [s.ttfb_s for s in ok if s.ttfb_s is not None]
    total = [s.total_s for s in ok if s.total_s is not None]
    overhead = [t - outcome.fake_first_byte_s for t in ttfb]
    errors = outcome.errors()
    refused = [s for s in outcome.results if s.error == "429"]
    deliberate = sum(1 for s in refused if s.retry_after)
    other = sum(errors.values()) - deliberate
    p95_overhead = pct(overhead, 95)
    t = Table("serve", title, f"{setup}; load average {outcome.load[0]:.1f} before, {outcome.load[1]:.1f} after")
    t.add(
        Figure("sessions", outcome.sessions, "sessions", f"on {REPLICAS} replicas"),
        Figure("streams open at once, peak", outcome.peak_open, "streams", "counted by the client"),
        Figure("answers streamed to the end", len(total), "answers",
               f"{sum(s.cached for s in ok)} served from the answer cache (each question is new: expect 0)"),
        Figure("throughput", len(total) / outcome.elapsed_s, "answers/s", f"in {outcome.elapsed_s:.1f} s wall"),
        Figure("TTFB p50", pct(ttfb, 50), "ms",
               "request sent to first SSE line; includes the fake's own first byte"),
        Figure("TTFB p95", pct(ttfb, 95), "ms"),
        Figure("TTFB p99", pct(ttfb, 99), "ms"),
        Figure("total p50", pct(total, 50), "ms", "to the last SSE event"),
        Figure("total p95", pct(total, 95), "ms"),
        Figure("total p99", pct(total, 99), "ms"),
        Figure("server overhead on TTFB p50", pct(overhead, 50), "ms",
               f"TTFB minus the fake's own first byte, {outcome.fake_first_byte_s * 1000:,.0f} ms measured "
               f"in this run by streaming from it directly (its {TTFT_S * 1000:.0f} ms TTFT + its first chunk)"),
        Figure("server overhead on TTFB p95", p95_overhead, "ms", "retrieval, query embedding, queueing, HTTP",
               f"≤ {OVERHEAD_TARGET_MS:.0f} ms at 100 sessions" if overhead_target else "",
               (p95_overhead is not None and p95_overhead <= OVERHEAD_TARGET_MS) if overhead_target else None),
        Figure("429 with Retry-After (deliberate)", deliberate, "requests", "the global limit's bounded wait ran out"),
        Figure("other errors", other, "requests",
               "all errors by kind: " + (", ".join(f"{k}: {n}" for k, n in errors.items()) or "none"),
               "0", other == 0),
        Figure("429s the fake Gemini sent", int(outcome.fake_statuses.get("429", 0)), "requests",
               "0 means the global limiter held every replica under the limit", "0",
               outcome.fake_statuses.get("429", 0) == 0),
        Figure("rate-limit queue wait, mean", 1000 * outcome.waited_s / outcome.waits if outcome.waits else None,
               "ms", f"over {outcome.waits} Flash calls that got a slot (replicas' /metrics)"),
    )
    return t


def run(profile: Profile, work: Path, emit: Callable[[Table], None]) -> None:
    sections = max(50, profile.answer_chunks)
    corpus = f"{sections}-section generated corpus, hybrid retrieval"
    with backends(fresh_dir(work / "services")) as up:
        seed_collection(work, up.chroma_url, sections)
        for sessions in profile.serve_sessions:
            sessions = min(sessions, MAX_SESSIONS)
            stream_s = max(5.0, sessions / ARRIVALS_PER_S)
            answer_tokens = int((stream_s - TTFT_S) * TOKENS_PER_S)
            scenario = Scenario(unique_questions(sessions, seed=41 + sessions), 100_000, 20.0, ARRIVALS_PER_S,
                                answer_tokens)
            outcome = run_scenario(fresh_dir(work / f"open-{sessions}"), up, scenario)
            setup = (f"{ARRIVALS_PER_S:.0f} new questions/s; fake Gemini TTFT {TTFT_S * 1000:.0f} ms, "
                     f"{TOKENS_PER_S:.0f} tokens/s in chunks of {CHUNK_TOKENS}, {answer_tokens}-token answers "
                     f"({stream_s:.0f} s streams); limit 100,000 requests/min (not binding); {corpus}")
            emit(table(outcome, f"{sessions} concurrent sessions", setup, overhead_target=sessions <= 100))
        binding = min(BINDING_SESSIONS, max(profile.serve_sessions))
        rpm = max(2 * REPLICAS + 1, binding // 3)  # the warm-up takes 2 per replica
        scenario = Scenario(unique_questions(binding, seed=7), rpm, BINDING_WAIT_S, None, 60)
        outcome = run_scenario(fresh_dir(work / "binding"), up, scenario)
        setup = (f"all {binding} questions at once; the limit binds: {rpm} Flash requests/min shared by both "
                 f"replicas, waits bounded at {BINDING_WAIT_S:.0f} s, then 429 + Retry-After; {corpus}")
        emit(table(outcome, f"{binding} sessions at once over a binding rate limit", setup, overhead_target=False))


def unique_questions(n: int, seed: int) -> list[str]:
    """Different questions, so the answer cache serves none of them."""
    return [f"{q} (case {i})" for i, q in enumerate(queries(n, seed=seed))]
