"""The model catalogue: which Gemini models exist, what they cost, when they retire.

Models, prices and limits are dated facts about Google's service, not design choices, so they
live as data in `rag/catalogue.toml` (one row per model, each with its sources and the day they
were read) rather than in code. Settings load the rows and let gemrag.toml amend any of them;
this module only describes a row and answers questions about it.
"""

from __future__ import annotations

import tomllib
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["flash", "flash-lite", "pro", "embedding"]
Status = Literal["stable", "preview", "deprecated", "shut down"]
ThinkingLevel = Literal["minimal", "low", "medium", "high"]
LEVELS: tuple[ThinkingLevel, ...] = ("minimal", "low", "medium", "high")
GENERATIVE: tuple[Role, ...] = ("flash", "flash-lite", "pro")


class Price(BaseModel):
    """USD per million tokens. `*_long` applies when a prompt exceeds `long_context_tokens`.
    A missing `cached_input` means no price was found: cached tokens are then charged in full.
    `cache_storage` is USD per million tokens per hour an explicit cached content is kept; a
    missing one means no price was found: gemrag then never creates one for that model."""

    model_config = ConfigDict(extra="forbid")

    input: float
    output: float | None = None
    cached_input: float | None = None
    cache_storage: float | None = None
    input_long: float | None = None
    output_long: float | None = None
    cached_input_long: float | None = None
    long_context_tokens: int | None = None


class PriceChange(BaseModel):
    """A dated price step Google has announced; unset fields keep the row's price."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    starts: date = Field(alias="from")
    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_storage: float | None = None


class RateLimit(BaseModel):
    """Published per-project limits; None means no figure (then only the server's 429s pace us)."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None

    def times(self, n: int) -> RateLimit:
        """The limit of `n` projects' keys together (quotas are per project)."""
        if n == 1:
            return self  # the common case, on every rate-limited call: no copy
        scaled = {k: v * n for k, v in self.model_dump().items() if v is not None}
        return self.model_copy(update=scaled)


class Thinking(BaseModel):
    """How a model's thinking is controlled: Gemini 3 takes a level from a model-specific set,
    2.5 took a token budget. Sending both is refused by the API, so a row names exactly one."""

    model_config = ConfigDict(extra="forbid")

    control: Literal["level", "budget", "none"] = "none"
    levels: list[ThinkingLevel] = Field(default_factory=list)
    default: ThinkingLevel | None = None
    max_budget: int | None = None

    def nearest(self, wanted: ThinkingLevel) -> ThinkingLevel:
        """The accepted level closest to `wanted`, rounding up (3.8 Flash has no minimal: low)."""
        rank = LEVELS.index(wanted)
        above = [level for level in self.levels if LEVELS.index(level) >= rank]
        return above[0] if above else self.levels[-1]


class ModelRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    status: Status
    released: date | None = None
    shutdown: date | None = None
    replacement: str | None = None
    context_tokens: int
    output_tokens: int
    thinking: Thinking = Field(default_factory=Thinking)
    price: Price
    price_changes: list[PriceChange] = Field(default_factory=list)
    batch_discount: float | None = None  # a Batch API request costs this share of the price (0.5: half)
    cache_min_tokens: int | None = None  # the smallest explicit cached content the API accepts
    limits: dict[str, RateLimit] = Field(default_factory=dict)
    sources: list[str] = Field(default_factory=list)
    read: date | None = None
    copy_dated: date | None = None
    note: str = ""

    @model_validator(mode="after")
    def _priced(self) -> ModelRow:
        if self.role != "embedding" and self.price.output is None:
            raise ValueError("price.output is missing (a generative model needs input and output prices)")
        if self.thinking.control == "level" and not self.thinking.levels:
            raise ValueError("thinking.levels is empty (a level-controlled model must list the levels it accepts)")
        return self

    @property
    def generative(self) -> bool:
        return self.role in GENERATIVE

    def price_on(self, day: date) -> Price:
        """The row's price with every announced step up to `day` applied."""
        price = self.price
        for change in sorted(self.price_changes, key=lambda c: c.starts):
            if change.starts <= day:
                steps = change.model_dump(exclude={"starts"}, exclude_none=True)
                price = price.model_copy(update=steps)
        return price

    def retired_on(self, day: date) -> bool:
        return self.status == "shut down" or (self.shutdown is not None and self.shutdown <= day)


@cache
def catalogue_rows() -> dict[str, dict[str, Any]]:
    """The packaged rows as raw TOML tables, so gemrag.toml amendments merge field by field."""
    text = resources.files("rag").joinpath("catalogue.toml").read_text(encoding="utf-8")
    rows: dict[str, dict[str, Any]] = tomllib.loads(text)["models"]
    return rows


def merge_rows(base: dict[str, Any], amendments: dict[str, Any]) -> dict[str, Any]:
    """Amendments win field by field, tables merged recursively: `[models.X.price] input = 1`
    changes one price and keeps the rest of the row."""
    merged = dict(base)
    for key, value in amendments.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_rows(merged[key], value)
        else:
            merged[key] = value
    return merged


def most_expensive(models: dict[str, ModelRow], role: Role, day: date) -> tuple[str, ModelRow]:
    """The dearest model of a role: what an unknown model of that role is charged as, so an
    unexpected reroute is never billed below what it may have cost."""
    rows = [(name, row) for name, row in models.items() if row.role == role]

    def cost(item: tuple[str, ModelRow]) -> tuple[float, float]:
        price = item[1].price_on(day)
        return (price.output or 0.0, price.input)

    return max(rows, key=cost)


def role_of_name(model: str) -> Role:
    """A best guess at an unknown model's role from Google's naming (gemini-X-flash-lite, …)."""
    if "embedding" in model:
        return "embedding"
    if "lite" in model:
        return "flash-lite"
    if "pro" in model:
        return "pro"
    return "flash"
