"""A local stand-in for the Gemini API, speaking the REST protocol google-genai 3.x sends.

The real API is unreachable here, so every Gemini code path (our provider, the LangChain
wrapper, the benchmarks) is exercised against this server on 127.0.0.1. It is a real HTTP
server rather than a transport mock because the SDK talks through httpx2 when synchronous
and aiohttp when asynchronous: only a socket catches both.

What it offers a test or a benchmark:
- the five methods (`generateContent`, `streamGenerateContent?alt=sse`, `embedContent`,
  `batchEmbedContents`, `countTokens`) under `/v1/` and `/v1beta/`, and `models.list`
  (`GET /v1/models`, paged, with supportedGenerationMethods);
- the model lifecycle: models that are shut down answer 404 NOT_FOUND (`retire`), a request
  can be answered by another model (`serve_as`: the response's modelVersion says which, as
  when Google reroutes a retired model);
- Gemini 3 thinking as the API checks it: a thinkingLevel the model does not accept, a level
  sent to a budget model, or both controls at once are refused with 400; thoughtsTokenCount
  grows with the level;
- implicit caching (`implicit_cache`): a prompt sharing a long enough prefix with an earlier
  one to the same model reports that prefix as cachedContentTokenCount;
- explicit caching: `cachedContents` create (POST), get (GET) and delete (DELETE) as the SDK's
  `client.caches` sends them, with the TTL kept by the fake's `clock` and the model's minimum
  size from the catalogue; a generate naming a `cachedContent` is answered over the cached turns
  plus its own and reports the cached tokens as cachedContentTokenCount (`caches` lists the live
  ones, `calls("createCachedContent")` the creations);
- embeddings that carry meaning (a hashing trick over words and word bigrams), so texts
  sharing words are similar and retrieval over them is meaningful;
- scripted answers (`reply(...)` queues texts, `responder` computes them from the request);
  a request with inline image data is answered by default with what the image is (its size
  and main colour, `describe_image`), and its usage counts 258 tokens per image as the API
  does for a small image;
- the Batch API for embeddings as the SDK's `batches.create_embeddings`, `batches.get` and
  `batches.list` call it (`:asyncBatchEmbedContent`, `GET batches/{id}`, `GET batches`): a
  job runs for `batch_run_s` seconds, then succeeds with its vectors inline (each with its
  tokenCount); `inject(Fault.job_failed())` or `Fault.job_expired()` on
  `asyncBatchEmbedContent` makes the next job end that way instead;
- faults injected per request (`inject`) or at a seeded random rate (`fault_rate`), a
  simulated per-model rate limit (`rate_limit`) and latency knobs;
- File Search (`file_search`, rag/testing/fake_filesearch.py): stores, documents, the
  resumable upload and its operation, and answers grounded in the uploaded text;
- a thread-safe log of every request (`requests`, `calls`).

It imports nothing from pytest, so benchmarks import it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from rag.catalogue import ModelRow, catalogue_rows
from rag.testing.fake_filesearch import FakeFileSearch, Response, file_search_stores

FULL_DIM = 3072  # gemini-embedding-001's native output size
TEST_API_KEY = "test-key-PLANTED-5ecr3t-9f2c"  # distinctive, so tests can assert it never leaks
IMAGE_TOKENS = 258  # an image up to 384 px on both sides, as Gemini counts it
METHODS = ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents", "countTokens", "list",
           "asyncBatchEmbedContent", "getBatch", "listBatches")
CACHE_METHODS = ("createCachedContent", "getCachedContent", "deleteCachedContent")
GENERATION_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
EMBEDDING_METHODS = ["embedContent", "batchEmbedContents", "asyncBatchEmbedContent"]
# Thinking tokens the fake reports per level, so a test sees thinking grow with the level.
THOUGHTS_PER_LEVEL = {"MINIMAL": 0, "LOW": 24, "MEDIUM": 96, "HIGH": 384}

_ROUTE = re.compile(r"^/(?:v1|v1beta)/models/([^/:]+):(\w+)$")
_LIST = re.compile(r"^/(?:v1|v1beta)/models/?$")
_BATCH = re.compile(r"^/(?:v1|v1beta)/batches/([^/:]+)$")
_BATCHES = re.compile(r"^/(?:v1|v1beta)/batches/?$")
BATCH_METADATA_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch"
_CACHES = re.compile(r"^/(?:v1|v1beta)/cachedContents/?$")
_CACHE = re.compile(r"^/(?:v1|v1beta)/(cachedContents/[^/:]+)$")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"[a-z0-9]+")
# Each feature lands once in each of these leading ranges, so (as with Matryoshka-trained
# embeddings) the first dimensions carry the most meaning and truncated vectors stay useful.
_FEATURE_RANGES = (FULL_DIM, 1536, 768, 384, 192, 96)


def count_tokens(text: str) -> int:
    """Words and punctuation marks: close enough to a tokenizer for usage metadata."""
    return len(_TOKEN.findall(text))


@lru_cache(maxsize=200_000)
def _feature_slots(feature: str) -> tuple[np.ndarray, np.ndarray]:
    """Where a word or bigram lands: one index in each leading range, with a sign."""
    digest = hashlib.blake2b(feature.encode(), digest_size=8 * len(_FEATURE_RANGES)).digest()
    hashes = np.frombuffer(digest, dtype="<u8")
    indices = hashes % np.asarray(_FEATURE_RANGES, dtype=np.uint64)
    signs = np.where(hashes >> np.uint64(63), 1.0, -1.0)
    return indices.astype(np.intp), signs


def embed_text(text: str, dim: int = FULL_DIM) -> list[float]:
    """The vector the server returns: unit length at 3072 dimensions, then truncated to `dim`
    without renormalising, exactly as the real API does (callers must normalise)."""
    words = _WORD.findall(text.lower())
    features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    slots = [_feature_slots(f) for f in features or ["<empty>"]]
    vec = np.zeros(FULL_DIM)
    np.add.at(vec, np.concatenate([i for i, _ in slots]), np.concatenate([s for _, s in slots]))
    vec /= np.linalg.norm(vec) or 1.0
    return [float(x) for x in np.round(vec[:dim], 7)]


@dataclass(frozen=True)
class Fault:
    """How one request goes wrong. `status` > 0 answers with that HTTP error; otherwise the
    normal answer is sent, but late (`delay_s`), cut (`cut_after` SSE chunks, then the
    connection is dropped) or as broken JSON (`malformed`)."""

    status: int = 0
    api_status: str = ""
    message: str = ""
    retry_delay: str | None = None
    reason: str | None = None
    delay_s: float = 0.0
    cut_after: int | None = None
    malformed: bool = False
    job_state: str | None = None  # a batch job created under this fault ends in this state

    @classmethod
    def job_failed(cls) -> Fault:
        """The batch job is accepted, then fails as a whole (BATCH_STATE_FAILED)."""
        return cls(job_state="BATCH_STATE_FAILED")

    @classmethod
    def job_expired(cls) -> Fault:
        """The batch job is accepted, then expires unprocessed (Google's limit is 48 hours)."""
        return cls(job_state="BATCH_STATE_EXPIRED")

    @classmethod
    def rate_limited(cls, retry_delay: str | None = "1s") -> Fault:
        return cls(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", retry_delay=retry_delay)

    @classmethod
    def server_error(cls, code: int = 503) -> Fault:
        names = {500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
        return cls(code, names.get(code, "UNKNOWN"), "The model is overloaded. Please try again later.")

    @classmethod
    def invalid_key(cls) -> Fault:
        return cls(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"
        )

    @classmethod
    def not_found(cls, model: str, method: str) -> Fault:
        return cls(
            404, "NOT_FOUND", f"models/{model} is not found for API version v1, or is not supported for {method}."
        )

    @classmethod
    def key_cannot_list(cls) -> Fault:
        """403 for a key whose project may not call the model-listing method."""
        return cls(
            403,
            "PERMISSION_DENIED",
            "Requests to this API generativelanguage.googleapis.com method "
            "google.ai.generativelanguage.v1.ModelService.ListModels are blocked.",
            reason="API_KEY_SERVICE_BLOCKED",
        )

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        return cls(delay_s=delay_s)

    @classmethod
    def cut_stream(cls, after_chunks: int) -> Fault:
        return cls(cut_after=after_chunks)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls(malformed=True)

    def error_body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.reason:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": "googleapis.com",
                }
            )
        if self.retry_delay is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay})
        return {"error": {"code": self.status, "message": self.message, "status": self.api_status, "details": details}}


@dataclass(frozen=True)
class Reply:
    """A scripted model answer; the token counts the real API reports beside the text."""

    text: str
    finish_reason: str = "STOP"
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    grounding: dict[str, Any] | None = None  # groundingMetadata of the last candidate
    tool_tokens: int = 0  # toolUsePromptTokenCount: what a search tool put into the context


@dataclass(frozen=True)
class GenerateRequest:
    """A generateContent call as a responder sees it."""

    model: str
    system: str
    messages: tuple[tuple[str, str], ...]  # (role, text)
    generation_config: dict[str, Any]
    images: tuple[tuple[str, bytes], ...] = ()  # (mime type, bytes) of every inlineData part
    cached_tokens: int = 0  # of the prompt, taken from the cachedContent the request named
    file_search: tuple[str, ...] = ()  # the stores its fileSearch tool searches

    @property
    def last_user_text(self) -> str:
        return next((text for role, text in reversed(self.messages) if role == "user"), "")

    @property
    def user_text(self) -> str:
        """Every user turn: our prompt puts the sources in the first and the question in the last."""
        return "\n\n".join(text for role, text in self.messages if role == "user")

    @property
    def json_output(self) -> bool:
        return self.generation_config.get("responseMimeType") == "application/json"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    model: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    fault: Fault | None
    at: float  # time.monotonic() when it arrived


@dataclass(frozen=True)
class Billed:
    """What one answered generate call reported in its last usageMetadata: for a stream, as
    far as it got (a stream cut or abandoned mid-way bills what was sent)."""

    method: str
    model: str  # the model that served it
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int
    cached_tokens: int


Responder = Callable[[GenerateRequest], "str | Reply"]


def default_responder(request: GenerateRequest) -> str:
    """Answers from the prompt: the first sentence after the source numbered 1 (our
    `<source n="1" ...>` block, or a plain `[1]` marker), cited [1]. That is enough for a
    chain test to see a grounded, cited answer come back. An image is described instead."""
    if request.images:
        return describe_image(*request.images[0])
    prompt = request.user_text
    found = re.search(r'<source n="1"[^>]*>|\[1\]', prompt)
    marker = found.start() if found else -1
    if found:
        after = prompt[found.end() :].strip().splitlines()
        after = after if found.group().startswith("[") else ["", *after]
        body = next((line for line in after[1:] if line.strip()), after[0] if after else "")
        sentence = re.split(r"(?<=[.!?])\s", body.strip(), maxsplit=1)[0]
        answer = f"{sentence} [1]"
    else:
        answer = f"Answer to: {request.last_user_text.strip()[:200]}"
    if request.json_output:
        return json.dumps({"answer": answer, "citations": [1] if marker >= 0 else []})
    return answer


def rewrites_as_asked(request: GenerateRequest) -> str:
    """Like `default_responder`, but a follow-up rewrite (rag.rewrite's "Follow-up question:"
    prompt) is answered with the follow-up as asked, so each keeps its own words (and its own
    answer-cache key) instead of all becoming one "Answer to: ..." string."""
    asked = request.last_user_text.rpartition("Follow-up question: ")[2]
    return asked if asked != request.last_user_text else default_responder(request)


def describe_image(mime_type: str, data: bytes) -> str:
    """What the fake "sees" in an image: its size and most common colour, so a test knows
    the description its image gets without scripting it."""
    from io import BytesIO

    from PIL import Image  # only for requests that carry images

    try:
        image = Image.open(BytesIO(data)).convert("RGB")
    except OSError:
        return f"An unreadable {mime_type} image."
    counts = image.resize((16, 16)).getcolors(256) or [(1, (0, 0, 0))]
    colour: tuple[int, int, int] = max(counts)[1]  # type: ignore[assignment]  # an RGB image's colours are triples
    red, green, blue = colour
    return f"An image of {image.width}x{image.height} pixels, mostly #{red:02x}{green:02x}{blue:02x}."


@dataclass(frozen=True)
class CachedContent:
    """One explicit cache as the fake keeps it: the turns it holds and when it expires."""

    name: str
    model: str
    system: str
    messages: tuple[tuple[str, str], ...]
    tokens: int
    created_at: float
    expires_at: float

    def resource(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": f"models/{self.model}",
            "displayName": "",
            "createTime": _rfc3339(self.created_at),
            "updateTime": _rfc3339(self.created_at),
            "expireTime": _rfc3339(self.expires_at),
            "usageMetadata": {"totalTokenCount": self.tokens},
        }


def _rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s % 1 * 1e6):06d}Z"


def _cache_missing(name: str) -> Fault:
    return Fault(403, "PERMISSION_DENIED", f"CachedContent not found (or permission denied): {name}")


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None  # None: forever
    method: str | None
    model: str | None
    key: str | None = None  # only requests sent with this API key

    def matches(self, method: str, model: str, key: str) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and self.method in (None, method)
            and self.model in (None, model)
            and self.key in (None, key)
        )


@dataclass
class _RandomFaults:
    rate: float
    faults: tuple[Fault, ...]
    rng: random.Random
    method: str | None
    model: str | None


@dataclass
class _Job:
    """A batch embedding job: its requests' texts and sizes, and how it ends."""

    name: str
    display_name: str
    model: str
    key: str
    texts: list[str]
    dims: list[int]
    created: float  # time.monotonic()
    ends: str  # the state it reaches after `batch_run_s`
    created_at: str  # RFC 3339, as the API reports createTime


@dataclass
class _Window:
    rpm: int
    served: deque[float] = field(default_factory=deque)


class FakeGemini:
    """The fake server. Use as a context manager, or start()/stop(); `url` is its base URL."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        ttft_s: float = 0.0,
        tokens_per_s: float | None = None,
        chunk_tokens: int = 4,
        responder: Responder = default_responder,
        batch_run_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.latency_s = latency_s  # before every response
        self.ttft_s = ttft_s  # extra wait before a generation's first token
        self.tokens_per_s = tokens_per_s  # output pace of generations (None: instant)
        self.chunk_tokens = chunk_tokens  # output tokens per SSE chunk
        self.responder = responder
        self.batch_run_s = batch_run_s  # how long a batch job stays pending/running before it ends
        self._jobs: dict[str, _Job] = {}
        self.clock = clock  # wall time (epoch seconds) for cached contents' TTLs
        self._caches: dict[str, CachedContent] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._log: list[RecordedRequest] = []
        self._billed: list[Billed] = []
        self._replies: deque[str | Reply] = deque()
        self._rules: list[_Rule] = []
        self._random: list[_RandomFaults] = []
        self._windows: dict[str | None, _Window] = {}
        self._rows = {name: ModelRow.model_validate(row) for name, row in catalogue_rows().items()}
        # The models the key may list, with their methods; shut-down rows are not listed and 404.
        self.listed: dict[str, list[str]] = {
            name: EMBEDDING_METHODS if row.role == "embedding" else GENERATION_METHODS
            for name, row in self._rows.items()
            if row.status != "shut down"
        }
        self.retired: set[str] = {name for name, row in self._rows.items() if row.status == "shut down"}
        self.list_page_size = 4  # small, so every listing is paged
        self._served_as: dict[str, str] = {}
        self._cache_min_tokens: int | None = None
        self._prefixes: dict[str, list[list[str]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._streams_open = 0
        self.streams_cut_by_client = 0  # streams whose client closed the connection before the end
        self.file_search = FakeFileSearch()

    # --- lifecycle ---
    def start(self) -> FakeGemini:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-gemini", daemon=True
        )
        self._thread.start()
        self.file_search.base_url = self.url
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGemini is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- scripting ---
    def reply(self, *replies: str | Reply) -> None:
        """Queue answers for the next generate/stream calls; the responder takes over after."""
        with self._lock:
            self._replies.extend(replies)

    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = 1,
        method: str | None = None,
        model: str | None = None,
        key: str | None = None,
    ) -> None:
        """The next `times` matching requests (None: all of them) meet `fault`; `key`: only
        those sent with that API key (each key of a project-per-key setup has its own quota)."""
        if method is not None and method not in (*METHODS, *CACHE_METHODS):
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS + CACHE_METHODS}")
        with self._lock:
            self._rules.append(_Rule(fault, times, method, model, key))

    def fault_rate(
        self,
        rate: float,
        faults: Sequence[Fault] = (Fault.rate_limited("0s"), Fault.server_error(503)),
        *,
        seed: int = 0,
        method: str | None = None,
        model: str | None = None,
    ) -> None:
        """A fraction `rate` of matching requests meets one of `faults`, chosen by a seeded RNG."""
        with self._lock:
            self._random.append(_RandomFaults(rate, tuple(faults), random.Random(seed), method, model))

    def rate_limit(self, rpm: int, *, model: str | None = None) -> None:
        """Beyond `rpm` served requests in any 60 s (per model, or all models when None), answer
        429 with the RetryInfo delay until a slot frees, as the real API does."""
        with self._lock:
            self._windows[model] = _Window(rpm)

    def retire(self, *models: str) -> None:
        """These models are shut down: unlisted, and every call to them answers 404 NOT_FOUND."""
        with self._lock:
            self.retired.update(models)
            for model in models:
                self.listed.pop(model, None)

    def serve_as(self, requested: str, served: str) -> None:
        """Requests for `requested` are answered by `served` (its name in modelVersion), as
        Google does when it reroutes a retired model."""
        with self._lock:
            self._served_as[requested] = served

    def implicit_cache(self, min_tokens: int | None) -> None:
        """Report a shared prompt prefix of at least `min_tokens` tokens with an earlier request
        to the same model as cached (None: off). The real minimum is 1,024-4,096 tokens."""
        with self._lock:
            self._cache_min_tokens = min_tokens
            self._prefixes.clear()

    def batch_job(self, name: str) -> dict[str, Any]:
        """A batch job as `GET batches/{id}` answers it (the test's view of a job's state)."""
        with self._lock:
            job = self._jobs[name.removeprefix("batches/")]
        return self._job_json(job)

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()
            self._random.clear()
            self._windows.clear()

    # --- the request log ---
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def billed(self) -> list[Billed]:
        """Generation the fake has billed, one entry per answered call, in order of completion."""
        with self._lock:
            return list(self._billed)

    def billed_for(self, model: str, count: int = 1, wait_s: float = 5.0) -> list[Billed]:
        """What the fake billed `model` for, once `count` calls are billed or `wait_s` passed:
        a slow reply the client stopped waiting for is still being sent, and billed when done."""
        until = time.monotonic() + wait_s
        while len(billed := [b for b in self.billed if b.model == model]) < count and time.monotonic() < until:
            time.sleep(0.05)
        return billed

    def calls(self, method: str | None = None, model: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if method in (None, r.method) and model in (None, r.model)]

    @property
    def caches(self) -> dict[str, CachedContent]:
        """The cached contents alive now (created, not deleted, TTL not passed), by name."""
        now = self.clock()
        with self._lock:
            return {name: c for name, c in self._caches.items() if c.expires_at > now}

    @property
    def streams_open(self) -> int:
        """Answer streams being sent right now: a client that stops reading must bring it to 0."""
        with self._lock:
            return self._streams_open

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._billed.clear()

    # --- used by the handler ---
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def _bill(self, method: str, response: dict[str, Any]) -> None:
        usage = response["usageMetadata"]
        with self._lock:
            self._billed.append(
                Billed(
                    method,
                    response["modelVersion"],
                    usage["promptTokenCount"],
                    usage["candidatesTokenCount"],
                    usage.get("thoughtsTokenCount", 0),
                    usage.get("cachedContentTokenCount", 0),
                )
            )

    def _choose_fault(self, method: str, model: str, key: str = "") -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, model, key):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule.fault
            for chance in self._random:
                applies = chance.method in (None, method) and chance.model in (None, model)
                if applies and chance.rng.random() < chance.rate:
                    return chance.rng.choice(chance.faults)
            return self._rate_limited(model)

    def _rate_limited(self, model: str) -> Fault | None:
        window = self._windows.get(model) or self._windows.get(None)
        if window is None:
            return None
        now = time.monotonic()
        while window.served and window.served[0] <= now - 60.0:
            window.served.popleft()
        if len(window.served) >= window.rpm:
            wait = window.served[0] + 60.0 - now
            return Fault.rate_limited(f"{wait:.3f}s")
        window.served.append(now)
        return None

    def _refusal(self, method: str, request: GenerateRequest) -> Fault | None:
        """What the API itself refuses: a shut-down model (404), a thinking config the model
        does not take (400)."""
        if request.model in self.retired:
            return Fault.not_found(request.model, method)
        if method in ("generateContent", "streamGenerateContent"):
            reason = _thinking_refusal(request, self._rows.get(request.model))
            if reason:
                return Fault(400, "INVALID_ARGUMENT", reason)
        return None

    def _create_cache(self, body: dict[str, Any]) -> CachedContent | Fault:
        """caches.create: the turns and system instruction kept for `ttl` (or until `expireTime`)."""
        model = str(body.get("model", "")).removeprefix("models/")
        request = _parse_generate(model, body)
        tokens = count_tokens(request.system) + sum(count_tokens(text) for _, text in request.messages)
        row = self._rows.get(model)
        minimum = row.cache_min_tokens if row is not None else None
        if model in self.retired or row is None:
            return Fault.not_found(model, "createCachedContent")
        if minimum is not None and tokens < minimum:
            return Fault(400, "INVALID_ARGUMENT", f"Cached content is too small. total_token_count={tokens}, "
                                                  f"min_total_token_count={minimum}")
        now = self.clock()
        ttl = str(body.get("ttl") or "3600s")
        cached = CachedContent(f"cachedContents/{uuid.uuid4().hex[:16]}", model, request.system, request.messages,
                               tokens, now, now + float(ttl.removesuffix("s")))
        with self._lock:
            self._caches[cached.name] = cached
        return cached

    def _cache(self, name: str) -> CachedContent | None:
        return self.caches.get(name)

    def _delete_cache(self, name: str) -> bool:
        alive = self._cache(name) is not None
        with self._lock:
            self._caches.pop(name, None)
        return alive

    def _generate_request(self, model: str, body: dict[str, Any]) -> GenerateRequest | Fault:
        """The request as the model reads it: a named cachedContent's turns come first, and
        its tokens are reported as cached. The API refuses a request that names one and also
        sets a system instruction, or names one made for another model."""
        request = _parse_generate(model, body)
        name = body.get("cachedContent")
        if not name:
            return request
        cached = self._cache(str(name))
        if cached is None:
            return _cache_missing(str(name))
        if body.get("systemInstruction") or body.get("tools") or body.get("toolConfig"):
            return Fault(400, "INVALID_ARGUMENT", "CachedContent can not be used with GenerateContent request "
                                                  "setting system_instruction, tools or tool_config.")
        if cached.model != model:
            return Fault(400, "INVALID_ARGUMENT", f"Model used by GenerateContent request (models/{model}) and "
                                                  f"CachedContent (models/{cached.model}) has to be the same.")
        return dataclasses.replace(request, system=cached.system, messages=cached.messages + request.messages,
                                   cached_tokens=cached.tokens)

    def _served(self, model: str) -> str:
        with self._lock:
            return self._served_as.get(model, model)

    def _cached_prefix(self, request: GenerateRequest) -> int:
        """Tokens of the longest prefix this prompt shares with an earlier one to its model."""
        tokens = _TOKEN.findall(request.system + "".join(text for _, text in request.messages))
        with self._lock:
            if self._cache_min_tokens is None:
                return 0
            earlier = self._prefixes.setdefault(request.model, [])
            best = max((_common_prefix(tokens, seen) for seen in earlier), default=0)
            earlier.append(tokens)
            return best if best >= self._cache_min_tokens else 0

    # --- batch jobs ---
    def _create_job(self, model: str, key: str, body: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        batch = body.get("batch") or {}
        requests = [r.get("request") or {} for r in ((batch.get("inputConfig") or {}).get("requests") or {}).get(
            "requests", [])]
        with self._lock:
            job_id = f"fake{len(self._jobs) + 1:04d}{hashlib.sha1(repr(body).encode()).hexdigest()[:8]}"
            job = _Job(
                name=f"batches/{job_id}",
                display_name=str(batch.get("displayName", "")),
                model=model,
                key=key,
                texts=[_texts((r.get("content") or {}).get("parts", [])) for r in requests],
                dims=[int(r.get("outputDimensionality") or FULL_DIM) for r in requests],
                created=time.monotonic(),
                ends=(fault.job_state if fault and fault.job_state else "BATCH_STATE_SUCCEEDED"),
                created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            )
            self._jobs[job_id] = job
        return self._job_json(job)

    def _job(self, job_id: str, key: str) -> _Job | None:
        """Jobs belong to the project of the key that created them."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.key == key else None

    def _job_state(self, job: _Job) -> str:
        age = time.monotonic() - job.created
        if age >= self.batch_run_s:
            return job.ends
        return "BATCH_STATE_PENDING" if age < self.batch_run_s / 2 else "BATCH_STATE_RUNNING"

    def _job_json(self, job: _Job) -> dict[str, Any]:
        """The long-running operation the API returns for a batch: its state and stats in
        `metadata`, and once it succeeded the responses inline, in request order."""
        state = self._job_state(job)
        done = state == "BATCH_STATE_SUCCEEDED"
        n = len(job.texts)
        metadata: dict[str, Any] = {
            "@type": BATCH_METADATA_TYPE,
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "state": state,
            "createTime": job.created_at,
            "updateTime": job.created_at,
            "batchStats": {"requestCount": str(n), **(
                {"successfulRequestCount": str(n)} if done else {"pendingRequestCount": str(n)})},
        }
        if done:
            responses = [
                {"response": {"embedding": {"values": embed_text(text, dim)}, "tokenCount": str(count_tokens(text))}}
                for text, dim in zip(job.texts, job.dims, strict=True)
            ]
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
        finished = state not in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
        return {"name": job.name, "metadata": metadata, **({"done": True} if finished else {})}

    def _jobs_page(self, key: str, token: str, size: int) -> dict[str, Any]:
        with self._lock:
            mine = [job for job in self._jobs.values() if job.key == key]
        start = int(token or 0)
        page = mine[start : start + size]
        after = start + len(page)
        return {"operations": [self._job_json(j) for j in page],
                **({"nextPageToken": str(after)} if after < len(mine) else {})}

    def _list_page(self, token: str) -> dict[str, Any]:
        with self._lock:
            names = sorted(self.listed)
            start = int(token or 0)
            page = names[start : start + self.list_page_size]
            models = [
                {
                    "name": f"models/{name}",
                    "displayName": name,
                    "supportedGenerationMethods": self.listed[name],
                    **_limits(self._rows.get(name)),
                }
                for name in page
            ]
        after = start + len(page)
        return {"models": models, **({"nextPageToken": str(after)} if after < len(names) else {})}

    def _next_reply(self, request: GenerateRequest) -> Reply:
        """The scripted or computed answer, with the token counts the API would add: the
        implicit-cache prefix and thinking by level, unless the script set them."""
        with self._lock:
            scripted = self._replies.popleft() if self._replies else None
        if scripted is None and request.file_search:
            grounded = self.file_search.ground(list(request.file_search), request.last_user_text)
            scripted = Reply(grounded.text, grounding=grounded.metadata, tool_tokens=grounded.tool_tokens)
        answer = scripted if scripted is not None else self.responder(request)
        reply = answer if isinstance(answer, Reply) else Reply(answer)
        cached = reply.cached_tokens or request.cached_tokens or self._cached_prefix(request)
        thoughts = reply.thoughts_tokens or THOUGHTS_PER_LEVEL.get(str(_thinking(request).get("thinkingLevel")), 0)
        return dataclasses.replace(reply, cached_tokens=cached, thoughts_tokens=thoughts)

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _output_time(self, tokens: int) -> float:
        return tokens / self.tokens_per_s if self.tokens_per_s else 0.0


def _texts(parts: Iterable[dict[str, Any]]) -> str:
    return "".join(str(p.get("text", "")) for p in parts)


def _parse_generate(model: str, body: dict[str, Any]) -> GenerateRequest:
    contents = body.get("contents", [])
    messages = tuple((c.get("role", "user"), _texts(c.get("parts", []))) for c in contents)
    system = _texts((body.get("systemInstruction") or {}).get("parts", []))
    return GenerateRequest(
        model, system, messages, body.get("generationConfig") or {}, inline_images(body),
        file_search=tuple(file_search_stores(body)),
    )


def inline_images(body: dict[str, Any]) -> tuple[tuple[str, bytes], ...]:
    """(mime type, bytes) of each inlineData part of a generate request's contents. The SDK
    writes `mime_type` (the API takes both spellings) and base64 with or without padding."""
    blobs = [p["inlineData"] for c in body.get("contents", []) for p in c.get("parts", []) if "inlineData" in p]
    return tuple((str(b.get("mimeType") or b.get("mime_type", "")), _unbase64(str(b.get("data", "")))) for b in blobs)


def _unbase64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _limits(row: ModelRow | None) -> dict[str, int]:
    return {"inputTokenLimit": row.context_tokens, "outputTokenLimit": row.output_tokens} if row else {}


def _thinking(request: GenerateRequest) -> dict[str, Any]:
    """The thinking config with camelCase keys: protobuf JSON takes both spellings, and
    google-genai 3.6 sends this one in snake_case."""
    config = request.generation_config.get("thinkingConfig") or request.generation_config.get("thinking_config") or {}
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), key): value for key, value in config.items()}


def _thinking_refusal(request: GenerateRequest, row: ModelRow | None) -> str | None:
    """Why the API would refuse this request's thinking config (400), or None."""
    config = _thinking(request)
    level, budget = config.get("thinkingLevel"), config.get("thinkingBudget")
    if level is not None and budget is not None:
        return "You can only set one of thinking_level and thinking_budget."
    if row is None:
        return None
    if level is not None and row.thinking.control != "level":
        return f"thinking_level is not supported by {request.model}; use thinking_budget."
    if level is not None and str(level).lower() not in row.thinking.levels:
        return f"thinking_level {level} is not supported by {request.model}."
    if budget is not None and row.thinking.control == "level":
        return f"thinking_budget is not supported by {request.model}; use thinking_level."
    return None


def _usage(request: GenerateRequest, reply: Reply, output_text: str) -> dict[str, int]:
    prompt = count_tokens(request.system) + sum(count_tokens(text) for _, text in request.messages)
    prompt += IMAGE_TOKENS * len(request.images)
    output = count_tokens(output_text)
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output + reply.thoughts_tokens + reply.tool_tokens,
    }
    if reply.tool_tokens:
        usage["toolUsePromptTokenCount"] = reply.tool_tokens
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = reply.cached_tokens
    if reply.thoughts_tokens:
        usage["thoughtsTokenCount"] = reply.thoughts_tokens
    return usage


def _response(
    request: GenerateRequest, reply: Reply, text: str, sent: str, final: bool, served: str
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if final:
        candidate["finishReason"] = reply.finish_reason
        if reply.grounding is not None:
            candidate["groundingMetadata"] = reply.grounding
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(request, reply, sent),
        "modelVersion": served,
        "responseId": "fake-" + hashlib.sha1(sent.encode()).hexdigest()[:12],
    }


def _pieces(text: str, tokens_per_piece: int) -> list[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + tokens_per_piece]) for i in range(0, len(words), tokens_per_piece)] or [""]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked transfer for SSE
    server_fake: FakeGemini

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; with Nagle's algorithm on, the client's
        # delayed ACK would add 40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr line; the request log is the record."""

    def do_POST(self) -> None:
        try:
            if _CACHES.match(urlsplit(self.path).path):
                self._cached_contents("createCachedContent")
            else:
                self._serve()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to answer

    def do_DELETE(self) -> None:
        """A cached content, or File Search's store or document."""
        path = urlsplit(self.path).path
        if self.server_fake.file_search.handles(path):
            self._file_search({}, self.server_fake.file_search.delete(path))
            return
        self._cached_contents("deleteCachedContent")

    def do_GET(self) -> None:
        """models.list: `GET /v1/models?pageSize=&pageToken=`; batches.get and batches.list; caches.get;
        File Search reads."""
        fake = self.server_fake
        url = urlsplit(self.path)
        if _CACHE.match(url.path):
            self._cached_contents("getCachedContent")
            return
        query = dict(parse_qsl(url.query))
        if fake.file_search.handles(url.path):
            self._file_search({}, fake.file_search.get(url.path, query))
            return
        if _BATCH.match(url.path) or _BATCHES.match(url.path):
            self._batches(url.path, query)
            return
        listing = _LIST.match(url.path)
        fault = fake._choose_fault("list", "") if listing else None
        status = 404 if not listing else (fault.status if fault and fault.status else 200)
        self._log("list", "", {}, status, fault)
        if status == 404:
            self._json(404, {"error": {"code": 404, "message": f"Unknown path {url.path}", "status": "NOT_FOUND"}})
        elif fault and fault.status:
            self._json(fault.status, fault.error_body())
        else:
            self._json(200, fake._list_page(query.get("pageToken", "")))

    def _batches(self, path: str, query: dict[str, str]) -> None:
        fake = self.server_fake
        key = self.headers.get("x-goog-api-key", "")
        one = _BATCH.match(path)
        method = "getBatch" if one else "listBatches"
        fault = fake._choose_fault(method, "", key)
        job = fake._job(one.group(1), key) if one else None
        status = fault.status if fault and fault.status else (404 if one and job is None else 200)
        fake._record(RecordedRequest(method, "", path, query, {k.lower(): v for k, v in self.headers.items()}, {},
                                     status, fault, time.monotonic()))
        fake._pause(fake.latency_s + (fault.delay_s if fault else 0.0))
        if fault and fault.status:
            self._json(fault.status, fault.error_body())
        elif one and job is None:
            self._json(404, {"error": {"code": 404, "message": f"Batch {path} not found.", "status": "NOT_FOUND"}})
        elif job is not None:
            self._json(200, fake._job_json(job))
        else:
            self._json(200, fake._jobs_page(key, query.get("pageToken", ""), int(query.get("pageSize") or 50)))

    def _serve(self) -> None:
        fake = self.server_fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if fake.file_search.handles(url.path):
            headers = {k.lower(): v for k, v in self.headers.items()}
            query = dict(parse_qsl(url.query))
            upload_start = headers.get("x-goog-upload-command", "").strip() in ("", "start")
            body = json.loads(raw or b"{}") if upload_start else {}
            self._file_search(body, fake.file_search.post(url.path, query, headers, raw, body))
            return
        route = _ROUTE.match(url.path)
        method, model = (route.group(2), route.group(1)) if route else ("", "")
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
            route = None
        key = self.headers.get("x-goog-api-key", "")
        fault = fake._choose_fault(method, model, key) if route and method in METHODS else None
        request = fake._generate_request(model, body)
        if route and method in METHODS and fault is None:
            fault = request if isinstance(request, Fault) else fake._refusal(method, request)
        request = request if isinstance(request, GenerateRequest) else _parse_generate(model, body)
        status = 404 if not route or method not in METHODS else (fault.status if fault and fault.status else 200)
        self._log(method, model, body, status, fault)
        fake._pause(fake.latency_s + (fault.delay_s if fault else 0.0))
        if fault and fault.status:
            self._json(fault.status, fault.error_body())
        elif status == 404:
            self._json(404, {"error": {"code": 404, "message": f"Unknown path {url.path}", "status": "NOT_FOUND"}})
        elif fault and fault.malformed:
            self._broken(method)
        elif method == "streamGenerateContent":
            self._stream(request, fault.cut_after if fault else None)
        elif method == "generateContent":
            self._generate(request)
        elif method in ("embedContent", "batchEmbedContents"):
            self._embed(method, model, body)
        elif method == "asyncBatchEmbedContent":
            self._json(200, fake._create_job(model, key, body, fault))
        else:
            gen = _parse_generate(model, body)
            total = count_tokens(gen.system) + sum(count_tokens(t) for _, t in gen.messages)
            self._json(200, {"totalTokens": total})

    def _cached_contents(self, method: str) -> None:
        """caches.create (`POST /v1/cachedContents`), caches.get (`GET /v1/cachedContents/{id}`),
        caches.delete (`DELETE /v1/cachedContents/{id}`)."""
        fake = self.server_fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw or b"{}")
        named = _CACHE.match(url.path)
        name = named.group(1) if named else ""
        injected = fake._choose_fault(method, "", self.headers.get("x-goog-api-key", ""))
        outcome: CachedContent | Fault | None = injected if injected and injected.status else None
        if outcome is None and method == "createCachedContent":
            outcome = fake._create_cache(body)
        elif outcome is None and method == "getCachedContent":
            outcome = fake._cache(name) or _cache_missing(name)
        elif outcome is None:
            outcome = None if fake._delete_cache(name) else _cache_missing(name)
        fault = outcome if isinstance(outcome, Fault) else None
        asked = str(body.get("model", "")).removeprefix("models/")
        model = outcome.model if isinstance(outcome, CachedContent) else asked
        self._log(method, model, body, fault.status if fault else 200, fault)
        if fault is not None:
            self._json(fault.status, fault.error_body())
        else:
            self._json(200, outcome.resource() if isinstance(outcome, CachedContent) else {})

    def _generate(self, request: GenerateRequest) -> None:
        fake = self.server_fake
        reply = fake._next_reply(request)
        fake._pause(fake.ttft_s + fake._output_time(count_tokens(reply.text)))
        served = fake._served(request.model)
        response = _response(request, reply, reply.text, reply.text, final=True, served=served)
        fake._bill("generateContent", response)  # before the client can read it (`_stream_pieces`)
        self._json(200, response)

    def _stream(self, request: GenerateRequest, cut_after: int | None) -> None:
        fake = self.server_fake
        with fake._lock:
            fake._streams_open += 1
        try:
            self._stream_pieces(request, cut_after)
        except (BrokenPipeError, ConnectionResetError):
            with fake._lock:
                fake.streams_cut_by_client += 1
            raise
        finally:
            with fake._lock:
                fake._streams_open -= 1

    def _stream_pieces(self, request: GenerateRequest, cut_after: int | None) -> None:
        fake = self.server_fake
        reply = fake._next_reply(request)
        served = fake._served(request.model)
        pieces = _pieces(reply.text, fake.chunk_tokens)
        self._start_chunked("text/event-stream")
        fake._pause(fake.ttft_s)
        sent = ""
        last: dict[str, Any] | None = None  # the last event the client was sent: what it bills
        billed = False
        try:
            for i, piece in enumerate(pieces):
                if cut_after is not None and i >= cut_after:
                    self.close_connection = True  # drop the socket without the terminating chunk
                    return
                fake._pause(fake._output_time(count_tokens(piece)))
                sent += piece
                event = _response(request, reply, piece, sent, final=i == len(pieces) - 1, served=served)
                if i == len(pieces) - 1:
                    # Billed before the client can read the last event: a test that reads
                    # `billed` once the answer is done finds it there, however loaded the
                    # machine (billed after it, a busy CI run once found one call missing).
                    fake._bill("streamGenerateContent", event)
                    billed = True
                self._chunk(f"data: {json.dumps(event)}\r\n\r\n".encode())
                last = event
            self._chunk(b"")
        finally:
            if last is not None and not billed:
                fake._bill("streamGenerateContent", last)

    def _embed(self, method: str, model: str, body: dict[str, Any]) -> None:
        requests = body.get("requests") if method == "batchEmbedContents" else [body]
        vectors = [
            {"values": embed_text(_texts(r["content"]["parts"]), r.get("outputDimensionality") or FULL_DIM)}
            for r in requests or []
        ]
        self._json(200, {"embeddings": vectors} if method == "batchEmbedContents" else {"embedding": vectors[0]})

    def _broken(self, method: str) -> None:
        if method == "streamGenerateContent":
            self._start_chunked("text/event-stream")
            self._chunk(b'data: {"candidates": [{"content": {"parts": [{"text": "Hel\r\n\r\n')
            self._chunk(b"")
        else:
            self._send(200, b'{"candidates": [{"content": ', "application/json")

    def _log(self, method: str, model: str, body: dict[str, Any], status: int, fault: Fault | None) -> None:
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = dict(parse_qsl(url.query))
        self.server_fake._record(RecordedRequest(method, model, url.path, query, headers, body, status, fault,
                                                 time.monotonic()))

    def _file_search(self, body: dict[str, Any], response: Response) -> None:
        """Logs a File Search request (method "fileSearch") and sends its response."""
        self._log("fileSearch", "", body, response.status, None)
        data = json.dumps(response.body).encode()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # --- the wire ---
    def _json(self, status: int, obj: dict[str, Any]) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=UTF-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


__all__ = [
    "FULL_DIM",
    "METHODS",
    "TEST_API_KEY",
    "CachedContent",
    "FakeGemini",
    "Fault",
    "GenerateRequest",
    "RecordedRequest",
    "Reply",
    "count_tokens",
    "default_responder",
    "embed_text",
    "rewrites_as_asked",
]
