"""The one configuration object: every default of the app is visible in this file.

Values come from, in order of priority: keyword arguments, environment variables
(`GEMRAG_*`, plus the conventional `GEMINI_API_KEY`/`GOOGLE_API_KEY`, `REDIS_URL`,
`CHROMA_URL`), then an optional TOML file (`gemrag.toml` in the working directory, or
the path in `GEMRAG_CONFIG`), then the defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.errors import ConfigError

PRICES_AS_OF = "2025-09-01"
RATE_LIMITS_AS_OF = "2025-09-01"


class Price(BaseModel):
    """USD per million tokens. `*_long` applies when a prompt exceeds `long_context_tokens`."""

    input: float
    output: float = 0.0
    cached_input: float = 0.0
    input_long: float | None = None
    output_long: float | None = None
    cached_input_long: float | None = None
    long_context_tokens: int | None = None


class RateLimit(BaseModel):
    """Published per-project limits; None means the tier sets no such limit."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None


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

    @model_validator(mode="after")
    def _default_max_chars(self) -> ChunkProfile:
        if self.max_chars <= 0:
            self.max_chars = 8 * self.size_tokens
        return self


def _default_prices() -> dict[str, Price]:
    # Gemini API paid-tier list prices, standard (non-batch) requests, text input.
    return {
        "gemini-2.5-flash": Price(input=0.30, output=2.50, cached_input=0.03),
        "gemini-2.5-pro": Price(
            input=1.25,
            output=10.00,
            cached_input=0.31,
            input_long=2.50,
            output_long=15.00,
            cached_input_long=0.625,
            long_context_tokens=200_000,
        ),
        "gemini-embedding-001": Price(input=0.15),
        "offline": Price(input=0.0),
    }


def _default_rate_limits() -> dict[str, dict[str, RateLimit]]:
    return {
        "free": {
            "gemini-2.5-flash": RateLimit(rpm=10, tpm=250_000, rpd=250),
            "gemini-2.5-pro": RateLimit(rpm=5, tpm=250_000, rpd=100),
            "gemini-embedding-001": RateLimit(rpm=100, tpm=30_000, rpd=1_000),
        },
        "tier1": {
            "gemini-2.5-flash": RateLimit(rpm=1_000, tpm=1_000_000, rpd=10_000),
            "gemini-2.5-pro": RateLimit(rpm=150, tpm=2_000_000, rpd=10_000),
            "gemini-embedding-001": RateLimit(rpm=3_000, tpm=1_000_000),
        },
        "unlimited": {},
    }


def _merge_onto(defaults: dict[str, BaseModel], value: object) -> object:
    if not isinstance(value, dict):
        return value
    merged: dict[str, object] = dict(defaults)
    for name, item in value.items():
        base = defaults.get(name)
        if base is not None and isinstance(item, dict):
            merged[name] = base.model_copy(update=item)
        else:
            merged[name] = item
    return merged


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
    flash_model: str = "gemini-2.5-flash"
    pro_model: str = "gemini-2.5-pro"
    embedding_model: str = "gemini-embedding-001"
    embedding_dim: int = 768  # gemini-embedding-001 outputs 3072; 768 is Google's recommended cut
    embed_batch_size: int = 100  # batchEmbedContents' per-request maximum
    embed_concurrency: int = 4  # batches in flight at once
    tier: Literal["free", "tier1", "unlimited"] = "free"
    rate_limits: dict[str, dict[str, RateLimit]] = Field(default_factory=_default_rate_limits)
    request_timeout_s: float = 60.0
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    deadline_s: float = 180.0  # total time one call may spend on retries and waits

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

    # --- retrieval ---
    retrieval_mode: Literal["hybrid", "vector", "bm25"] = "hybrid"
    top_k: int = 6
    overfetch: int = 5  # candidates per mode = top_k * overfetch
    fusion: Literal["rrf", "convex"] = "convex"  # measured best on corpus/eval (README: Retrieval)
    rrf_k: int = 60
    fusion_alpha: float = 0.5  # convex fusion: weight of the vector score (1 - alpha for BM25)
    mmr: bool = False
    mmr_lambda: float = 0.6

    # --- routing ---
    pro_threshold_tokens: int = 24_000  # prompts above this go to Pro
    whole_document_budget_tokens: int = 400_000

    # --- cache and cost ---
    answer_cache: bool = True  # evaluation turns it off to measure real answers
    cache_ttl_s: int = 7 * 24 * 3600
    cache_max_entries: int = 10_000
    semantic_cache: bool = False
    semantic_cache_threshold: float = 0.95
    embed_cache_max_entries: int = 50_000  # query embeddings kept (about 6 KB each at 768 dims)
    prices: dict[str, Price] = Field(default_factory=_default_prices)
    session_budget_usd: float = 1.00
    budget_output_tokens: int = 1_024  # output assumed when a call's cost is estimated before it is made
    daily_budget_usd: float = 10.00
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
    max_upload_mb: float = 20.0
    ui_concurrency: int = 4  # answers streamed at once across all browser sessions

    # --- HTTP API (python -m rag.server) ---
    # API keys, hashed: "name:role:sha256:<hex>" entries (python -m rag.server keygen makes one),
    # comma-separated here or one per line in `api_keys_file`. None at all: loopback only.
    api_keys: str = ""
    api_keys_file: Path | None = None
    server_port: int = 8000
    max_request_kb: int = 64  # JSON bodies (a question with its history)
    cors_origins: list[str] = Field(default_factory=list)  # closed unless origins are listed
    key_rate_limit: str = "120/minute"  # requests per API key, across replicas when Redis is shared
    server_threads: int = 1024  # blocking steps in flight per replica: every open answer stream holds one
    queue_max_wait_s: float = 20.0  # longest wait for a Gemini rate-limit slot before 429 + Retry-After
    job_queue: str = "gemrag-ingest"  # the worker's queue (python -m ingest.worker)
    job_heartbeat_s: float = 30.0  # a worker silent this long is dead: its job is handed to another
    job_max_retries: int = 5

    @field_validator("prices", mode="before")
    @classmethod
    def _merge_prices(cls, value: object) -> object:
        """A price set in gemrag.toml amends the default table instead of replacing it."""
        return _merge_onto(_default_prices(), value)

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _merge_rate_limits(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        merged: dict[str, object] = dict(_default_rate_limits())
        for tier, limits in value.items():
            merged[tier] = _merge_onto(_default_rate_limits().get(tier, {}), limits)
        return merged

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("GEMRAG_CONFIG", "gemrag.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @property
    def online(self) -> bool:
        """Gemini is used exactly when a key is present and offline mode is not forced."""
        return self.api_key is not None and not self.offline

    @property
    def chunk_profile(self) -> ChunkProfile:
        return self.chunk_profiles["gemini" if self.online else "offline"]

    def limit_for(self, model: str) -> RateLimit:
        return self.rate_limits.get(self.tier, {}).get(model, RateLimit())

    def path(self, *parts: str) -> Path:
        """A path inside the data dir, created on demand: every store of the app lives here."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir.joinpath(*parts)


def load_settings(**overrides: object) -> Settings:
    """Settings for a command: a bad value in the environment or gemrag.toml becomes a
    ConfigError that names the field, which every CLI shows as one line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
        raise ConfigError(
            f"invalid configuration ({problems}); check the GEMRAG_* environment variables and gemrag.toml"
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
