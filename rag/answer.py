"""What one answer is: the record the chain streams, the cache stores, the ledger charges,
the UI shows and the evaluation scores."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from rag.types import Attachment, ChunkKind, Message, PageUnit, Usage, place

# chosen: forced by the user; degraded: a cheaper model, the budget being spent (on_budget_spent = "degrade")
RouteKind = Literal["flash", "pro", "chosen", "fallback", "cached", "offline", "degraded"]
Mode = Literal["hybrid", "vector", "bm25"]
RerankMode = Literal["none", "local", "gemini"]


@dataclass(frozen=True)
class Citation:
    """A numbered source shown to the model, resolved to where a person can find it."""

    n: int
    chunk_id: str
    source: str
    page: int | None
    heading: str
    snippet: str
    score: float
    kind: ChunkKind = "text"
    unit: PageUnit = "page"

    @property
    def place(self) -> str:
        """As cited: "p. 3", "slide 2", "p. 3, figure"."""
        return place(self.page, self.unit, self.kind)


Verdict = Literal["supported", "unsupported", "uncited"]


@dataclass(frozen=True)
class SentenceCheck:
    """One sentence of an answer and whether the passages it cites support it (rag.citecheck)."""

    sentence: str
    cited: tuple[int, ...]
    verdict: Verdict
    support: float  # 1.0 for a verbatim quote; else the best word share or cosine among cited passages
    reason: str = ""

    @property
    def flagged(self) -> bool:
        return self.verdict != "supported"


@dataclass(frozen=True)
class Route:
    """Which model answered and why, in words a user can read ("context 31,204 tokens >
    24,000: escalated to gemini-3.1-pro-preview (preview)")."""

    kind: RouteKind
    model: str
    reason: str
    prompt_tokens: int = 0
    # Set when load or money changed the model (rag.headroom): "pro_quota", "pro_budget",
    # "flash_quota"; counted in /metrics so an operator sees how often it happens.
    decision: str = ""


MAX_K = 50  # passages in one prompt: past this the prompt grows (and costs) without better answers
MAX_SOURCES = 50  # files one question may be limited to (the API's and the MCP tools' `sources`)

# The longest question asked through any door (CLI, HTTP, UI, MCP): a question, not a
# document pasted whole, and a bound on what one request makes the key-term and anchor
# readings scan.
MAX_QUESTION_CHARS = 8_000
# A session id a client may choose (the API's `session_id`, the CLI's `--session`): it is
# echoed in commands to copy ("python -m rag costs --session ID") and in log lines.
MAX_SESSION_ID_CHARS = 128
SESSION_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_SESSION_ID_CHARS}}}")  # whole: `fullmatch`


@dataclass(frozen=True)
class AskOptions:
    """Per-question retrieval and routing settings; None means the configured default."""

    collection: str | None = None
    mode: Mode | None = None
    top_k: int | None = None
    mmr: bool | None = None
    rerank: RerankMode | None = None
    sources: tuple[str, ...] = ()  # restrict retrieval to these source paths
    per_file: bool = False  # at most one passage per file: which files match, best first
    model: str | None = None  # force a model, bypassing the router
    images: tuple[Attachment, ...] = ()  # asked about with the documents as context (Gemini reads them)
    follow_ups: float | None = None  # questions expected to follow (None: settings.context_cache_followups)


@dataclass
class AnswerRecord:
    question: str
    standalone_question: str
    answer: str
    citations: list[Citation]  # the sources the answer cites, by [n]
    sources: list[Citation]  # every passage that was shown to the model
    route: Route
    usage: Usage  # all calls of this answer: rewrite + generation (+ query embedding)
    cost_usd: float = 0.0
    saved_usd: float = 0.0  # on a cache hit: what the original answer cost
    cache_saved_usd: float = 0.0  # what Gemini's implicit cache took off this answer's calls
    latency_s: float = 0.0
    ttft_s: float = 0.0
    cached: bool = False
    offline: bool = False
    session_id: str = ""
    corpus_version: int = 0
    history: list[Message] = field(default_factory=list)
    checks: list[SentenceCheck] = field(default_factory=list)  # each sentence against the passages it cites


@dataclass(frozen=True)
class Delta:
    """A piece of answer text, streamed as it is generated. `sources`: the passages its `[n]`
    marks number, on the first piece (and again should they change, as File Search's
    grounding may): a reader who stops the answer keeps what the text cites, though the
    `Done` that lists the cited ones never comes."""

    text: str
    sources: tuple[Citation, ...] = ()


@dataclass(frozen=True)
class Done:
    """The last event of every answer stream."""

    record: AnswerRecord


Event = Delta | Done
