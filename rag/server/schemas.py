"""The API's request and response bodies: the contract clients see in the OpenAPI schema.

They are separate from the core's dataclasses so the core can change without breaking
clients; `answer_out` is the one place that maps an AnswerRecord onto the wire.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.answer import (
    MAX_K,
    MAX_QUESTION_CHARS,
    MAX_SESSION_ID_CHARS,
    MAX_SOURCES,
    SESSION_ID,
    AnswerRecord,
    AskOptions,
)
from rag.costs import Totals

# What every request body is read with: a mistyped field ("colection") is refused, not
# ignored, and a value of the wrong JSON type is refused, not converted ("k": true was k = 1,
# "stream": "no" a plain JSON answer, "3" a number): a client's bug shows at once.
REQUEST = ConfigDict(extra="forbid", strict=True)


class MessageIn(BaseModel):
    model_config = REQUEST

    role: Literal["user", "model"]
    text: str = Field(max_length=20_000)


class AskRequest(BaseModel):
    model_config = REQUEST

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    session_id: str | None = Field(
        default=None,
        max_length=MAX_SESSION_ID_CHARS,
        pattern=f"^{SESSION_ID.pattern}$",
        description="Continue a conversation: its history is kept by the server. A new one is made if absent.",
    )
    history: list[MessageIn] | None = Field(
        default=None, max_length=50, description="Send the conversation yourself instead of a session's: sent "
                                                 "with a session_id too, it is used, and the session's kept history is "
                                                 "neither read nor extended."
    )
    collection: str | None = None
    k: int | None = Field(default=None, ge=1, le=MAX_K)
    mode: Literal["hybrid", "vector", "bm25"] | None = None
    mmr: bool | None = None
    rerank: Literal["none", "local", "gemini"] | None = Field(
        default=None, description="Second ranking stage over the fused candidates (default: the server's setting)."
    )
    model: str | None = Field(default=None, description="Force one of GET /v1/models' answer models.")
    sources: list[str] = Field(default_factory=list, max_length=MAX_SOURCES)
    per_file: bool = Field(
        default=False, description="Each file's best passage only, so the answer draws on more files."
    )
    stream: bool = True

    def options(self) -> AskOptions:
        return AskOptions(
            collection=self.collection,
            mode=self.mode,
            top_k=self.k,
            mmr=self.mmr,
            rerank=self.rerank,
            sources=tuple(self.sources),
            per_file=self.per_file,
            model=self.model,
        )


class CitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    n: int
    source: str
    page: int | None
    heading: str
    snippet: str
    score: float = Field(description="the passage's relevance as the ranking stage scored it (the fused score of "
                                     "hybrid search, or the second stage's); the order is the ranking's, and the "
                                     "default second stage (rerank=local) puts a section's or page's best passage "
                                     "before a second one of it, so scores need not decrease")
    place: str = Field(default="", description="where in the file, as cited: \"p. 3\", \"slide 2\", \"p. 3, "
                                                "figure\"; empty for a file without pages")


class CheckOut(BaseModel):
    """One answer sentence checked against the passages it cites (rag/citecheck.py)."""

    model_config = ConfigDict(from_attributes=True)

    sentence: str
    cited: list[int]
    verdict: Literal["supported", "unsupported", "uncited"]
    support: float
    reason: str


class RouteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    model: str
    reason: str


class UsageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    thinking_tokens: int


class AnswerOut(BaseModel):
    """The whole answer (stream=false), or the final `done` event of a stream."""

    model_config = ConfigDict(from_attributes=True)

    session_id: str
    question: str = Field(description="the question as asked")
    standalone_question: str = Field(description="what was searched: the question, or a follow-up rewritten with "
                                                 "the session's history into one that stands alone")
    answer: str
    citations: list[CitationOut]
    sources: list[CitationOut]
    checks: list[CheckOut] = Field(description="each sentence against its citations; flagged ones need a look")
    route: RouteOut
    usage: UsageOut
    cost_usd: float
    saved_usd: float
    cached: bool
    offline: bool
    latency_s: float
    ttft_s: float
    corpus_version: int


def answer_out(record: AnswerRecord, session_id: str) -> AnswerOut:
    """The session id a client sees is its own, without the key's name the server adds."""
    return AnswerOut.model_validate(record).model_copy(update={"session_id": session_id})


class DeltaEvent(BaseModel):
    """`event: delta` in the stream: the next piece of the answer's text."""

    text: str


class ErrorOut(BaseModel):
    """Every error body, and the `error` event that ends a stream that failed after it began."""

    error: str = Field(description="the kind, e.g. quota_exhausted, budget_exceeded, unauthorized")
    message: str


class FieldErrorOut(BaseModel):
    field: str = Field(description="where in the request, e.g. body.question or body.history[0].role")
    reason: str


class InvalidRequestOut(ErrorOut):
    """A 422: the request is well formed HTTP but not a request this API can act on. The
    refused input is not echoed back: the caller has it, and it may be 8,000 characters."""

    fields: list[FieldErrorOut] = Field(
        default_factory=list,
        description="each field the request's schema refused, and why; empty when the refusal came later "
                    "(a question blank once trimmed, a source the collection does not hold): the message says",
    )


class TotalsOut(BaseModel):
    """A bucket's spending, the same fields as `python -m rag costs --json` gives (it prints
    this model): `output_tokens` leaves out the thinking tokens, billed at the output price,
    so `usage.thinking_tokens` is here too or the cost would not add up. The flat token counts
    stay for the clients that read them."""

    calls: int
    answers: int
    cache_hits: int
    prompt_tokens: int
    output_tokens: int
    cost_usd: float
    saved_usd: float
    usage: UsageOut
    cache_saved_usd: float  # what Gemini's cache took off: cached tokens billed below the input price
    held_usd: float  # part of cost_usd set aside for answers not yet settled
    storage_usd: float  # part of cost_usd: explicit cached contents kept
    hit_rate: float  # cache_hits / answers


def totals_out(totals: Totals) -> TotalsOut:
    return TotalsOut(
        calls=totals.calls,
        answers=totals.answers,
        cache_hits=totals.cache_hits,
        prompt_tokens=totals.usage.prompt_tokens,
        output_tokens=totals.usage.output_tokens,
        cost_usd=totals.cost_usd,
        saved_usd=totals.saved_usd,
        usage=UsageOut.model_validate(totals.usage),
        cache_saved_usd=totals.cache_saved_usd,
        held_usd=totals.held_usd,
        storage_usd=totals.storage_usd,
        hit_rate=totals.hit_rate,
    )


class SessionCosts(BaseModel):
    session_id: str
    total: TotalsOut
    by_model: dict[str, TotalsOut]
    budget_remaining_usd: float
    note: str | None = Field(
        None, description="set when the session has no calls recorded (an id not used yet, or mistyped): "
                          "the report is then all zeros, as `python -m rag costs --session ID --json` prints it"
    )


class CollectionOut(BaseModel):
    name: str
    chunks: int
    version: int


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    source: str = Field(description="the stored name: as citations show it, and as DELETE "
                                    "/v1/collections/{name}/documents/{source} takes it")
    chunks: int
    pages: int | None = Field(description="how many distinct pages (or slides) its chunks come from: the pages "
                                          "with text, which an answer can cite, as the UI's Documents tab counts "
                                          "them; null for a file without pages")


class DocumentsOut(BaseModel):
    """One page of a collection's files, by name: `total` says how many there are in all."""

    collection: str
    total: int
    offset: int
    limit: int
    documents: list[DocumentOut]


class ModelOut(BaseModel):
    name: str
    role: Literal["answer", "embedding"]
    rpm: int | None
    tpm: int | None
    rpd: int | None
    input_usd_per_mtok: float | None
    output_usd_per_mtok: float | None


class ModelsOut(BaseModel):
    """`online` is the configuration, `reachable` the model API now: a set key says nothing
    about whether Gemini answers, and a client must not read one for the other."""

    provider: str
    online: bool = Field(
        description="Answers come from Gemini: a key is set and offline mode is not forced. "
        "Whether Gemini answers now is `reachable`."
    )
    reachable: bool | None = Field(
        description="Whether the model API answers: the check /readyz reports as `models` (asked at most "
        "every 10 s while it answers). null when offline: there is no model API to ask."
    )
    models: list[ModelOut]


class Health(BaseModel):
    """`degraded`: the replica serves (the UI, searches, cached answers, costs) but the model
    API does not answer, so new answers fail until it does; `unavailable`: a store it needs
    (Redis, Chroma) does not answer, and the replica should get no traffic."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class FolderIngest(BaseModel):
    model_config = REQUEST

    path: str = Field(description="A folder on the server (and its workers), ingested recursively: an absolute path.")
    prune: bool = Field(default=False, description="Remove files ingested from this folder before that are gone.")

    @field_validator("path")
    @classmethod
    def absolute(cls, path: str) -> str:
        """A relative path ("", "docs") named whatever folder the worker happened to run in:
        "" ingested the worker's own working directory."""
        if not os.path.isabs(path):
            raise ValueError("must be an absolute path of a folder on the server")
        return path


class JobOut(BaseModel):
    """An ingest job: counts are those of the current attempt; `errors` names each failed file and why."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: Literal["upload", "folder", "remove"]
    collection: str
    files: list[str] = Field(description="The stored names it ingests (an upload, as made plain) or removes; empty "
                                         "for a folder job, whose files are found as it runs: `files_total` counts "
                                         "them, `outcomes` and `errors` say what became of them.")
    state: Literal["queued", "running", "retrying", "done", "failed"]
    attempts: int
    files_done: int
    files_total: int = Field(description="The files of the attempt: an upload's or a removal's from the time it "
                                         "is queued, a folder job's once it runs (0 until then).")
    chunks_done: int
    chunks_total: int
    current: str = Field(description="The file at work: \"reading NAME\" while it is read and chunked (a large PDF "
                                     "takes a minute), else the last one done or embedding.")
    outcomes: dict[str, int]
    errors: dict[str, str]
    skipped: dict[str, str] = Field(description="Files it did not read, and why: a type ingest does not read (in a "
                                                "folder), an image with no words to read without a Gemini key.")
    message: str = Field(description="Why it failed or is retried, or what it waits for while queued (another "
                                     "ingest into its collection, or a worker).")
    created_at: float
    updated_at: float
