"""The one configuration object: every default of the app is visible in this file.

Values come from, in order of priority: keyword arguments, environment variables
(`GEMRAG_*`, plus the conventional `GEMINI_API_KEY`/`GOOGLE_API_KEY`, `REDIS_URL`,
`CHROMA_URL`), then an optional TOML file (`gemrag.toml` in the working directory, or
the path in `GEMRAG_CONFIG`), then the defaults below.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.catalogue import ModelRow, RateLimit, Role, ThinkingLevel, catalogue_rows, merge_rows
from rag.errors import ConfigError, DataDirUnwritable

BackendName = Literal["gemrag", "file-search"]

FIELD_ROLES: dict[str, tuple[Role, ...]] = {
    # The role each model setting may take; Pro may fall back to a Flash model (Google's own
    # replacement for gemini-2.5-pro is one), cheap steps may use Flash.
    "flash_model": ("flash", "flash-lite"),
    "pro_model": ("pro", "flash"),
    "lite_model": ("flash-lite", "flash"),
    "embedding_model": ("embedding",),
}


class Arm(BaseModel):
    """One arm: its share of sessions and the answer model it uses (None: the router decides,
    as without an experiment)."""

    name: str
    share: float = Field(gt=0, le=1)
    model: str | None = None


class Experiment(BaseModel):
    """`[experiment]` in gemrag.toml; the first arm is the control the others are compared to."""

    name: str
    arms: list[Arm] = Field(min_length=2)

    @model_validator(mode="after")
    def _shares_add_up(self) -> Experiment:
        total = sum(arm.share for arm in self.arms)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"experiment {self.name!r}: arm shares add up to {total:g}, not 1")
        if len({arm.name for arm in self.arms}) != len(self.arms):
            raise ValueError(f"experiment {self.name!r}: arm names must be distinct")
        return self


class LocalRerankWeights(BaseModel):
    """The local reranker's numbers (rag/rerank.py), on the scale of the fused score
    normalised to [0, 1]: the bonus of a chunk holding all of the question's literal tokens
    ("429", "os.path.join"), the share of the best score on a neighbouring page of the
    same PDF that a page's chunk gains, and what a table of contents' or an index's chunk
    loses. Chosen on corpus/eval's test sets (README: Retrieval)."""

    anchors: float = 0.3
    neighbours: float = 0.4
    navigation: float = 1.0


class ChunkProfile(BaseModel):
    """Chunk size belongs to the embedder: MiniLM reads 256 word pieces, Gemini 2,048 tokens.

    Tokens alone cannot bound a chunk: a tokenizer may read a long run without spaces (DNA,
    Thai, a base64 blob) as one unknown token. `max_chars` caps every chunk's length, and a
    run longer than `max_word_chars` is cut, because MiniLM's WordPiece reads a longer word as
    a single [UNK] (it would embed to the same vector as every other such run)."""

    size_tokens: int
    overlap_tokens: int
    max_chars: int = 0  # 0: 8 characters per token of size_tokens
    max_word_chars: int | None = None  # None: a run is only cut when it would not fit a chunk
    # Of a section's context (a PDF section's outline path) embedded before each chunk: with a
    # 200-piece chunk and [CLS]/[SEP], MiniLM's 256 hold 54, and more would cut the chunk's end.
    context_tokens: int = Field(default=48, ge=0)

    @model_validator(mode="after")
    def _default_max_chars(self) -> ChunkProfile:
        if self.max_chars <= 0:
            self.max_chars = 8 * self.size_tokens
        return self


def _catalogue_models() -> dict[str, ModelRow]:
    return {name: ModelRow.model_validate(row) for name, row in catalogue_rows().items()}


# The URL settings `Settings._an_http_url` checks: an example of each, and what it being unset means.
_URL_EXAMPLES = {"base_url": ("https://generativelanguage.googleapis.com", "Google's API"),
                 "chroma_url": ("http://127.0.0.1:8000", "the embedded store")}


def _numeric_port(parts: SplitResult) -> bool:
    """Whether a URL's port, if it names one, is a number: in "http://admin:pa#ss@host:8000"
    the password's end is read as the port, and reading it raised, quoting it, later."""
    try:
        _ = parts.port
    except ValueError:
        return False
    return True


MB = 1024 * 1024  # what an upload limit in MB means (`Settings.max_upload_bytes`)

# Settings that change which passages an answer rests on or which model writes it: the answer
# cache keys on them (rag.cache.answer_key). A new retrieval or routing setting belongs here.
ANSWER_SHAPING_SETTINGS = (
    "backend",
    "retrieval_mode",
    "top_k",
    "overfetch",
    "fusion",
    "rrf_k",
    "fusion_alpha",
    "line_weight",
    "mmr",
    "mmr_lambda",
    "rerank",
    "rerank_depth",
    "local_rerank",
    "lite_model",  # the gemini second stage's model
    "pro_threshold_tokens",
    "whole_document_budget_tokens",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GEMRAG_",
        toml_file="gemrag.toml",
        extra="ignore",
        populate_by_name=True,
    )

    # --- where everything lives ---
    data_dir: Path = Path(".gemrag")
    collection: str = "corpus"
    chroma_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GEMRAG_CHROMA_URL", "CHROMA_URL", "chroma_url")
    )
    # A Chroma server (or the proxy before it) that wants credentials: a user and password in
    # CHROMA_URL (http://user:password@host:port, percent-encoded) go as HTTP basic auth, or this
    # token goes in `chroma_token_header` ("Authorization": as "Bearer <token>"). Not both.
    chroma_token: SecretStr | None = None
    chroma_token_header: Literal["Authorization", "X-Chroma-Token"] = "Authorization"
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GEMRAG_REDIS_URL", "REDIS_URL", "redis_url")
    )

    # --- Gemini ---
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GEMRAG_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "api_key"),
    )
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GEMRAG_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "base_url"),
    )
    offline: bool = False  # force the offline default even when a key is set
    # Models come from the catalogue (rag/catalogue.toml); README "Using Gemini" says why these.
    flash_model: str = "gemini-3.8-flash"  # answers: newest stable Flash
    pro_model: str = "gemini-3.1-pro-preview"  # escalation: the only Pro offered (preview)
    lite_model: str = "gemini-3.5-flash-lite"  # cheap steps: follow-up rewrite, judging, gemini rerank
    embedding_model: str = "gemini-embedding-001"  # stable text embeddings; changing it means a new collection
    models: dict[str, ModelRow] = Field(default_factory=_catalogue_models)  # gemrag.toml amends rows
    # At startup with a key, check the configured models against the key's models.list (once a
    # day, cached under the data dir); one retired or not offered: stop, or use its replacement.
    check_models: bool = True
    on_retired: Literal["fail", "replace"] = "replace"
    # Set by that check (rag.lifecycle), not by users: replacement model -> the note its routes carry.
    replaced: dict[str, str] = Field(default_factory=dict, exclude=True)
    # Gemini 3 thinking levels (rounded up to one the model accepts); 2.5 models get a budget.
    thinking_flash: ThinkingLevel = "low"
    thinking_pro: ThinkingLevel = "high"
    thinking_lite: ThinkingLevel = "minimal"
    embedding_dim: int = 768  # gemini-embedding-001 outputs 3072; 768 is Google's recommended cut
    embed_batch_size: int = 100  # batchEmbedContents' per-request maximum
    embed_concurrency: int = 4  # batches in flight at once
    tier: Literal["free", "tier1", "unlimited"] = "free"
    request_timeout_s: float = 60.0
    # Open connections to Gemini per process and key: a streaming answer holds one for its
    # whole length, so a replica serving N streams needs N (httpx's default of 100 queued the
    # 101st stream until an earlier one ended, then failed it on the timeout).
    gemini_connections: int = 1024
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    deadline_s: float = 180.0  # total time one call may spend on retries and waits
    # A Pro answer waits at most this long for a retry before Flash answers instead: a 429
    # asking for a minute made a Pro-out-of-quota answer start after 131 s.
    pro_retry_wait_s: float = 5.0

    # --- offline default ---
    offline_embedder: str = "all-MiniLM-L6-v2-int8"

    # --- ingest ---
    chunk_profiles: dict[str, ChunkProfile] = Field(
        default_factory=lambda: {
            # English runs at 4-5 characters per token: the caps bind only where tokens fail.
            "offline": ChunkProfile(size_tokens=200, overlap_tokens=32, max_chars=1_500, max_word_chars=100),
            "gemini": ChunkProfile(size_tokens=512, overlap_tokens=64, max_chars=3_000),
        }
    )
    max_file_mb: float = 50.0
    # More chunks than this from one file is reported as a failure, not embedded: a 3,000-page
    # book makes fewer; a 5 MB run of one letter would make 50,000.
    max_chunks_per_file: int = 10_000
    # Chunks embedded and stored per step: large enough to fill the embedder's batches,
    # small enough to bound the vectors held in memory and the work a crash can lose.
    ingest_batch_chunks: int = 512
    # With a requests/min limit on the embedding model (Gemini), new chunks are read and
    # queued up to one minute of requests ahead, at most this many, so reading goes on while
    # the limiter holds requests. Measured at 20k chunks and 100 requests/min: reading was
    # done at 50 s instead of 100 s, the whole run took 128.8 s against 129.7 s (the floor is
    # 121 s). Offline, embedding is the slow step; reading stays one window ahead.
    ingest_lookahead_chunks: int = 20_000
    # `python -m ingest --batch`: new chunks go to Gemini's Batch API (half price, done within
    # a day) in jobs of at most `batch_job_chunks` texts (the API takes 20 MB inline per job:
    # about 6,000 chunks of the Gemini profile's 3,000 characters), polled every `batch_poll_s`.
    batch_job_chunks: int = 5_000
    batch_poll_s: float = 30.0
    # Images and scans (ingest.vision). With a key, images in PDFs of at least this many pixels
    # (about 200 x 200: smaller ones are icons, rules and logos) are described by `lite_model`;
    # image files always are. Pages without a text layer are rendered at `scan_dpi` and
    # transcribed by `lite_model`, or offline read by Tesseract in `ocr_languages` if installed.
    # Offline, an image file (a screenshot, a diagram) is read by Tesseract too, keeping the
    # words it reads with `ocr_min_confidence` (0-100) or more, and only when there are at
    # least `ocr_min_words`: a photo gives none, a chart's axis ticks a few doubtful ones.
    figure_min_pixels: int = 40_000
    figure_max_output_tokens: int = 400  # a description, not an essay; bounds the dry run's estimate
    scan_dpi: int = 200
    ocr_languages: str = "eng"  # Tesseract's -l: "eng+deu" needs tesseract-ocr-deu
    ocr_min_confidence: float = Field(default=60.0, ge=0, le=100)
    ocr_min_words: int = Field(default=3, ge=1)

    # --- the backend (README: File Search side by side) ---
    # "gemrag": our retrieval over the local collection; "file-search": the collection's files
    # uploaded to a Gemini File Search store (needs a key), which the model searches itself.
    backend: BackendName = "gemrag"
    file_search_poll_s: float = 2.0  # between checks of an upload's indexing operation
    file_search_timeout_s: float = 600.0  # the longest one file may take to be indexed

    # --- retrieval ---
    retrieval_mode: Literal["hybrid", "vector", "bm25"] = "hybrid"
    top_k: int = 6
    overfetch: int = Field(default=5, ge=1)  # candidates per mode = top_k * overfetch
    fusion: Literal["rrf", "convex"] = "convex"  # best mean nDCG@10 over all test sets (README: Retrieval)
    rrf_k: int = 60
    fusion_alpha: float = 0.5  # vector score's weight (1 - alpha for BM25); chosen by cross-validation
    # The chunks' best lines as a third ranking in convex fusion, added at this weight (0: off);
    # chosen by cross-validation over the four test sets (README: Retrieval).
    line_weight: float = Field(default=0.2, ge=0.0)
    mmr: bool = False
    mmr_lambda: float = 0.6
    # The second ranking stage over the fused top `rerank_depth` (README: Retrieval).
    rerank: Literal["none", "local", "gemini"] = "local"
    rerank_depth: int = 30
    local_rerank: LocalRerankWeights = Field(default_factory=LocalRerankWeights)
    rerank_timeout_s: float = 5.0  # then the local order stands

    # --- routing ---
    pro_threshold_tokens: int = 24_000  # prompts above this go to Pro
    # Load-adaptive routing (rag/headroom.py): a model with less than this share of its
    # requests per minute or per day left is not chosen; Pro gives way to Flash, Flash to Flash-Lite.
    headroom: float = 0.1
    whole_document_budget_tokens: int = 400_000

    # --- cache and cost ---
    answer_cache: bool = True  # evaluation turns it off to measure real answers
    cache_ttl_s: int = 7 * 24 * 3600
    cache_max_entries: int = 10_000
    embed_cache_max_entries: int = 50_000  # query embeddings kept (about 6 KB each at 768 dims)
    # Explicit context caching (rag/contextcache.py): a whole document sent to Gemini is kept there
    # for `context_cache_ttl_s`, so the session's follow-ups about it send only their question; it is
    # created only when `context_cache_followups` expected follow-ups (0 for the CLI's one-shot
    # `ask`) would save more than keeping it costs (catalogue: cache_storage, cache_min_tokens).
    context_cache: bool = True
    context_cache_ttl_s: int = 900
    context_cache_followups: float = 2.0
    # Budgets in USD (rag/budget.py): 0 lets only free calls through; None (the optional ones)
    # sets no limit. A negative one is refused here: no call could pass it, and a refusal
    # would suggest another negative figure.
    session_budget_usd: float = Field(default=1.00, ge=0)
    # An answer's max_output_tokens (thinking included): its worst-case cost is known, and held
    # against the budgets, before it is sent (Flash at most about $0.02 an answer, Pro $0.05
    # plus its prompt). Pro thinks at "high": raise it if long answers end cut short.
    budget_output_tokens: int = 4_096
    daily_budget_usd: float = Field(default=10.00, ge=0)
    monthly_budget_usd: float | None = Field(default=None, ge=0)  # the deployment's per (UTC) month
    key_daily_budget_usd: float | None = Field(default=None, ge=0)  # each API key's (account's) per day
    key_monthly_budget_usd: float | None = Field(default=None, ge=0)  # each API key's per month
    # Fractions of the daily/monthly budgets (deployment and per key) at which an alert is raised,
    # once per budget and period: a log line, /metrics, and a JSON POST to `budget_webhook_url`.
    budget_alert_at: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0])
    budget_webhook_url: str | None = None
    # A question a budget would refuse: "refuse" says so; "degrade" answers with Flash-Lite if
    # that fits, else with a cached answer to the same question, else refuses.
    on_budget_spent: Literal["refuse", "degrade"] = "refuse"
    # Answer even when the answer cache or the cost ledger (REDIS_URL or the SQLite files) cannot
    # be used: answers are then not cached and their cost is neither recorded nor held to the
    # budgets. Off, such a question is refused with the reason, so money is never spent unrecorded.
    answer_without_stores: bool = False

    # --- evaluation (python -m rag.eval) ---
    eval_corpus: Path = Path("corpus")  # ingested into its own collection, eval-<dir name>
    eval_out_dir: Path = Path("eval-out")  # JSON, HTML report and the resume checkpoint
    eval_workers: int = 4  # cases in flight; the provider layer keeps Gemini within rate limits
    eval_max_drop: float = 0.02  # --baseline: an absolute drop beyond this on a headline metric fails

    # --- UI ---
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 20.0  # per file, in MB of 1,048,576 bytes (`max_upload_bytes`)
    max_upload_files: int = 10  # files in one API upload request (its body limit: this many files' worth)
    ui_concurrency: int = 4  # answers streamed at once across all browser sessions
    preview_cache_files: int = 2_000  # rendered PDF pages kept under previews/ (~100 KB each), oldest go first

    # --- HTTP API (python -m rag.server) ---
    # API keys, hashed: "name:role:sha256:<hex>" entries (python -m rag.server keygen makes one),
    # comma-separated here or one per line in `api_keys_file`. None at all: loopback only.
    api_keys: str = ""
    api_keys_file: Path | None = None
    # Bounds checked at start (a port of 99999 listened on 34463, 0 threads hung the start-up,
    # a negative body limit refused every request).
    server_port: int = Field(default=8000, ge=1, le=65535)
    max_request_kb: int = Field(default=64, ge=1)  # JSON bodies (a question with its history)
    body_timeout_s: float = Field(default=30.0, gt=0)  # longest wait for the next part of a request body, then 408
    # ... and the slowest a body may come on average after its first body_timeout_s (Apache's
    # mod_reqtimeout MinRate): a part each 29 s kept a connection open for as long as it liked.
    body_min_rate_bytes_s: int = Field(default=500, ge=1)
    # Closed unless origins are listed: "https://a.example,https://b.example" in the
    # environment (a JSON list was the only form read), a list in gemrag.toml.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    key_rate_limit: str = "120/minute"  # requests per API key, across replicas when Redis is shared
    # GET /metrics names the routes, models, budgets and spending: with a token set, a scraper
    # must send it ("Authorization: Bearer <token>"); unset, the endpoint is open, as the probes are.
    metrics_token: SecretStr | None = None
    # Set where /metrics must never be open (deploy/ sets it): a blank or missing token then
    # stops the server at start. Kubernetes only checks that a Secret's key exists, so an empty
    # GEMRAG_METRICS_TOKEN there served the figures to anyone who reached the pod.
    metrics_token_required: bool = False
    server_threads: int = Field(default=1024, ge=1)  # blocking steps in flight per replica: every open stream holds one
    # SIGTERM (a rolling update, a scale-down) stops new connections and lets open answers end
    # for this long; less than the orchestrator's kill deadline (terminationGracePeriodSeconds).
    drain_s: int = Field(default=50, ge=0)
    queue_max_wait_s: float = 20.0  # longest wait for a Gemini rate-limit slot before 429 + Retry-After
    # ... in an ingest worker, where no one waits on a reply: on the free tier the limiter's
    # pacing of a large ingest passed 20 s and was reported as a spent quota, failing the job.
    job_queue_max_wait_s: float = Field(default=300.0, gt=0)
    job_queue: str = "gemrag-ingest"  # the worker's queue (python -m ingest.worker)
    job_heartbeat_s: float = 30.0  # a worker silent this long is dead: its job is handed to another
    job_max_retries: int = Field(default=5, ge=0)
    # The folders POST /v1/collections/{name}/ingest may read (an admin's), each with what is
    # under it, links resolved; empty: any folder the server can read, /etc included, which
    # every ask key could then read back through answers. Set it where keys are handed out.
    folder_ingest_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # The first retry's wait, doubling at each (15, 30 ... 240 s: about 8 minutes in all): at
    # 1 s, every job tried while a Chroma server restarted (45 s) failed for good.
    job_min_backoff_s: float = Field(default=15.0, gt=0)
    # A job queued or retrying, unchanged this long, is looked for in the queue when a client
    # reads it (GET /v1/jobs/{id} and its stream): if the queue no longer holds its message
    # (rag.jobs.Jobs.settled), it is failed as lost. Far longer than queuing one takes.
    job_lost_grace_s: float = Field(default=60.0, gt=0)

    # --- operations (deploy/, README "Operating it") ---
    # More Gemini keys (GEMINI_API_KEYS, comma-separated), each of another Google project (quotas
    # are per project): calls spread across them, and a key whose quota ran out rests for the
    # delay the API asks (or `key_cooldown_s`) while the others answer; rate limits scale with them.
    extra_api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("GEMRAG_EXTRA_API_KEYS", "GEMINI_API_KEYS", "extra_api_keys"),
    )
    key_cooldown_s: float = 60.0
    experiment: Experiment | None = None  # [experiment] in gemrag.toml: A/B of answer models
    log_format: Literal["text", "json"] = "text"  # json: one object per line with the request id
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "warning"

    @field_validator("api_key", "chroma_token", "metrics_token", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: object) -> object:
        """`GEMINI_API_KEY=` (the line deploy/env.example and the Kubernetes keys.env ship
        with) means no key: the offline default, not a Gemini client refusing an empty key.
        A blank Chroma or metrics token is none either; a token read from a file loses its
        line end (a metrics token "tok\n" matched no scraper's header)."""
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _blank_data_dir_is_the_default(cls, value: object) -> object:
        """`GEMRAG_DATA_DIR=` (a variable set to nothing) means the default, as a blank key
        means none: read as `Path("")`, it put the stores, ledger and manifest in whatever
        folder the command ran in (CLI walkthrough)."""
        if isinstance(value, str) and not value.strip():
            return cls.model_fields["data_dir"].default
        return value

    @field_validator("chroma_token")
    @classmethod
    def _chroma_token_is_printable(cls, value: SecretStr | None) -> SecretStr | None:
        """chromadb takes ASCII letters, digits and punctuation only, and would refuse anything
        else when the client is made, a refusal then reported as the server's."""
        if value is not None:
            token = value.get_secret_value().strip()  # a token file's final newline
            if not all(" " < c < "\x7f" for c in token):
                raise ValueError("a token is ASCII letters, digits and punctuation only (not shown: it is a secret)")
            value = SecretStr(token)
        return value

    @model_validator(mode="after")
    def _metrics_token_when_required(self) -> Settings:
        if self.metrics_token_required and self.metrics_token is None:
            raise ValueError("GEMRAG_METRICS_TOKEN_REQUIRED is set but GEMRAG_METRICS_TOKEN is blank or unset, which "
                             "would leave GET /metrics open to anyone who reaches the server: set the token (the one "
                             "your Prometheus sends) in the gemrag-keys Secret or deploy/.env")
        return self

    @model_validator(mode="after")
    def _one_chroma_credential(self) -> Settings:
        parts = urlsplit(self.chroma_url or "")
        if self.chroma_token and (parts.username or parts.password):
            raise ValueError("CHROMA_URL carries a user and password and GEMRAG_CHROMA_TOKEN is set too: chromadb "
                             "sends one of them, so give the Chroma server's credentials one way")
        return self

    @field_validator("base_url", "chroma_url")
    @classmethod
    def _an_http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Checked at start: a URL without a scheme or host fails every request as a network
        error, which would be retried and reported as Gemini (or Chroma) being unreachable.
        Empty is unset. The error's field is the name it was set by (GEMRAG_BASE_URL, or
        base_url in gemrag.toml); a Chroma URL is not quoted, since it may carry a password."""
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or not _numeric_port(parts):
            example, unset = _URL_EXAMPLES[info.field_name or ""]
            shown = "its value (not shown: it may carry a password)" if info.field_name == "chroma_url" else repr(value)
            raise ValueError(f"{shown} is not an http:// or https:// URL with a host and a numeric port, if any "
                             f"(e.g. {example}; a password's #, / or ? percent-encoded); unset it for {unset}")
        return value

    @field_validator("folder_ingest_roots", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        """GEMRAG_FOLDER_INGEST_ROOTS="/srv/docs:/srv/manuals", as PATH lists folders."""
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("extra_api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """GEMINI_API_KEYS="k1,k2" (and GEMRAG_CORS_ORIGINS): one string in the environment, a
        list in gemrag.toml; a JSON list in the environment is read as one too."""
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        """In any case, and logging's own aliases ("warn", "fatal") too."""
        if not isinstance(value, str):
            return value
        level = value.lower()
        return {"warn": "warning", "fatal": "critical"}.get(level, level)

    @field_validator("key_rate_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        """Parsed at start as the limiter will ("120/minute", "10/second"): "lots" was a
        traceback from inside the server's start-up. The default is not: importing the
        limiter took 40 ms of every command's start, a tenth of an unchanged re-ingest."""
        if value == cls.model_fields["key_rate_limit"].default:
            return value
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as '120/minute' or '5/second'") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, value: str | None) -> str | None:
        """A URL redis-py can open: "localhost:6379" was a traceback naming neither REDIS_URL
        nor the form it wants. Not quoted back: it may carry a password."""
        if not value:
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("its value (not shown: it may carry a password) is not a redis://, rediss:// or unix:// "
                             "URL (e.g. redis://127.0.0.1:6379/0); unset it for the local SQLite store")
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _amend_catalogue(cls, value: object) -> object:
        """A row set in gemrag.toml amends the catalogue's row field by field; a new name adds
        a row (which must then be complete)."""
        if not isinstance(value, dict):
            return value
        rows = dict(catalogue_rows())
        for name, amendment in value.items():
            if isinstance(amendment, ModelRow):
                rows[name] = amendment.model_dump(by_alias=True)
            elif isinstance(amendment, dict):
                rows[name] = merge_rows(rows.get(name, {}), amendment)
            else:
                rows[name] = amendment
        return rows

    @model_validator(mode="after")
    def _models_known(self) -> Settings:
        """Every configured model is a catalogue row of a role that fits its use."""
        for field, roles in FIELD_ROLES.items():
            name = getattr(self, field)
            row = self.models.get(name)
            if row is None:
                raise ValueError(
                    f"{field}: {name!r} is not in the model catalogue (python -m rag models lists it); "
                    f'add a complete row as [models."{name}"] in gemrag.toml to use it'
                )
            if row.role not in roles:
                needed = " or ".join(roles)
                raise ValueError(f"{field}: {name!r} has the role {row.role!r}; {field} needs a {needed} model")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = config_path()
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        _known_keys(toml_path, toml.toml_data, settings_cls)
        return (init_settings, env_settings, toml)

    @property
    def online(self) -> bool:
        """Gemini is used exactly when a key is present and offline mode is not forced."""
        return self.api_key is not None and not self.offline

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes, with 1 MB = 1,048,576 bytes: Gradio's upload widget
        states the limit it is given in those units ("20.0 Mb"), so the UI's own label, the
        refusal and the widget give one number."""
        return int(self.max_upload_mb * MB)

    @property
    def chunk_profile(self) -> ChunkProfile:
        return self.chunk_profiles["gemini" if self.online else "offline"]

    @property
    def gemini_keys(self) -> list[SecretStr]:
        """Every configured Gemini key, the main one first."""
        return [key for key in (self.api_key, *self.extra_api_keys) if key is not None]

    def limit_for(self, model: str) -> RateLimit:
        """The tier's published limit for one key, times the keys configured (each its own quota)."""
        row = self.models.get(model)
        limit = row.limits.get(self.tier, RateLimit()) if row else RateLimit()
        return limit.times(max(1, len(self.gemini_keys)))

    def path(self, *parts: str) -> Path:
        """A path inside the data dir, created on demand: every store of the app lives here.
        A data dir that cannot be made or written to (GEMRAG_DATA_DIR naming a file, or a
        place this user cannot write) is the user's to fix: a ConfigError naming it, not
        an unexpected error from whichever store opened it first."""
        where = self.data_dir
        fix = "set GEMRAG_DATA_DIR (or --data-dir) to a folder you can write to"
        try:
            found = next((p for p in (where, *where.parents) if p.exists()), None)  # mkdir's ENOTDIR names neither
        except OSError as error:  # a folder on the way that cannot be entered (Path.exists raises)
            raise DataDirUnwritable(f"data dir {where} cannot be reached ({error.strerror or error}); {fix}") from None
        if found is not None and not found.is_dir():
            what = "" if found == where else f" cannot be created: {found}"
            raise DataDirUnwritable(f"data dir {where}{what} is a file, not a folder; {fix}")
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataDirUnwritable(f"data dir {where} cannot be created ({error.strerror or error}); {fix}") from None
        if not os.access(where, os.W_OK | os.X_OK):
            raise DataDirUnwritable(f"data dir {where} is not writable; {fix}")
        target = where.joinpath(*parts)
        # A store of a writable data dir may not be (copied read-only, made by another user):
        # SQLite and Chroma would say "attempt to write a readonly database" from deep inside.
        if parts and target.exists() and not os.access(target, os.W_OK):
            raise DataDirUnwritable(f"{target} in data dir {where} is not writable; {fix}")
        return target


def config_path() -> str:
    """The settings file: GEMRAG_CONFIG, else gemrag.toml in the working directory."""
    return os.environ.get("GEMRAG_CONFIG", "gemrag.toml")


def _known_keys(path: str, table: dict[str, object], settings_cls: type[BaseSettings]) -> None:
    """Refuses a setting the file names that no field has: extra="ignore" (the environment
    holds GEMRAG_* variables that are no settings) dropped "top_kk = 8" without a word, and
    the run went on with the default."""
    known = {key for field, info in settings_cls.model_fields.items()
             for key in (field, *(a for a in getattr(info.validation_alias, "choices", ()) if isinstance(a, str)))}
    unknown = sorted(set(table) - known)
    if unknown:
        hints = [f"{key!r}" + (f" (did you mean {close[0]!r}?)" if (close := get_close_matches(key, known, 1)) else "")
                 for key in unknown]
        raise ConfigError(f"{path}: no such setting {', '.join(hints)}; the settings are the fields of "
                          "rag/settings.py (README: Configuration)")


def load_settings(**overrides: object) -> Settings:
    """Settings for a command: a bad value in the environment or gemrag.toml (or a file that
    is not TOML) becomes a ConfigError that names the field or file, which every CLI shows as
    one line."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates the overrides
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        # Not a ConfigError, it was "unexpected", and reporting it read the file again (to
        # redact keys), so every command ended in a traceback and exit 1.
        raise ConfigError(f"{config_path()} is not valid TOML ({error}): fix it, or point GEMRAG_CONFIG at another "
                          "file") from None
    except ValidationError as error:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in error.errors())
        raise ConfigError(
            f"invalid configuration ({problems}); check the GEMRAG_* environment variables and gemrag.toml"
        ) from None
    return checked_models(settings)


def checked_models(settings: Settings) -> Settings:
    """With a key, the configured models are checked against what the key can use before any
    command runs (rag.lifecycle): a retired model stops it or is replaced, as `on_retired` says."""
    if not (settings.online and settings.check_models):
        return settings
    from rag.lifecycle import check_models
    from rag.providers.gemini import GeminiProvider

    return check_models(settings, GeminiProvider(settings).list_models).settings


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """`field.sub: reason`; a check across fields names its field in the message itself."""
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(map(str, loc))}: {message}" if loc else message


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
