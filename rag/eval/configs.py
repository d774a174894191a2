"""The configurations one run compares: `--compare k=4,8,12 --compare mode=vector,bm25
--compare rerank=none,local --compare backend=gemrag,file-search` runs every combination of
the listed values side by side, the rest from settings. File Search chooses its own passages
(no mode, MMR or second stage), so its configurations differ only by k."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import get_args

from rag.answer import Mode, RerankMode
from rag.errors import ConfigError
from rag.settings import BackendName, Settings

MODES: tuple[Mode, ...] = get_args(Mode)
RERANKS: tuple[RerankMode, ...] = get_args(RerankMode)
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
AXES = ("k", "mode", "mmr", "rerank", "backend")
NO_RERANK: list[RerankMode] = ["none"]
_TRUE, _FALSE = {"on", "true", "yes", "1"}, {"off", "false", "no", "0"}


@dataclass(frozen=True)
class EvalConfig:
    """What the chain is asked with: the backend, retrieval mode, second ranking stage,
    passages shown, MMR."""

    mode: Mode
    top_k: int
    mmr: bool
    rerank: RerankMode = "none"
    backend: BackendName = "gemrag"

    @property
    def label(self) -> str:
        if self.backend == "file-search":
            return f"file-search k={self.top_k}"
        return f"{self.mode}{_rerank_suffix(self.mode, self.rerank)} k={self.top_k}{' mmr' if self.mmr else ''}"

    @property
    def retrieval_label(self) -> str:
        """The retrieval variant whose recall its rows by tag show: none for File Search,
        which has no retrieval-only call to score."""
        return self.retrieval.label if self.backend == "gemrag" else ""

    @property
    def retrieval(self) -> RetrievalVariant:
        """The retrieval setting this configuration answers from."""
        return RetrievalVariant(self.mode, self.mmr, self.top_k, self.rerank if self.mode == "hybrid" else "none")


@dataclass(frozen=True)
class RetrievalVariant:
    """One retrieval setting scored on its own: every mode with and without MMR, per k, and
    hybrid also with each second ranking stage the run compares."""

    mode: Mode
    mmr: bool
    top_k: int
    rerank: RerankMode = "none"

    @property
    def label(self) -> str:
        return f"{self.mode}{_rerank_suffix(self.mode, self.rerank)}{'+mmr' if self.mmr else ''} k={self.top_k}"


def _rerank_suffix(mode: Mode, rerank: RerankMode) -> str:
    """The second stage only reorders fused candidates: it names hybrid rows alone."""
    return f"+{rerank}" if mode == "hybrid" and rerank != "none" else ""


def default_config(settings: Settings) -> EvalConfig:
    return EvalConfig(settings.retrieval_mode, settings.top_k, settings.mmr, settings.rerank, settings.backend)


def parse_compare(specs: list[str], settings: Settings) -> list[EvalConfig]:
    """Every combination of the `axis=v1,v2` specs, in the order given."""
    axes: dict[str, list[object]] = {}
    for spec in specs:
        axis, _, values = spec.partition("=")
        axis = axis.strip().lower()
        if axis not in AXES or not values.strip():
            raise ConfigError(f"--compare {spec!r}: expected one of {', '.join(AXES)} = comma-separated values")
        if axis in axes:
            raise ConfigError(f"--compare {spec!r}: {axis} is given twice")
        axes[axis] = [_value(axis, v.strip(), spec) for v in values.split(",") if v.strip()]
    base = default_config(settings)
    configs = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo, strict=True))
        config = replace(
            base,
            top_k=chosen.get("k", base.top_k),  # type: ignore[arg-type]  # parsed by AXES
            mode=chosen.get("mode", base.mode),  # type: ignore[arg-type]  # parsed by AXES
            mmr=chosen.get("mmr", base.mmr),  # type: ignore[arg-type]  # parsed by AXES
            rerank=chosen.get("rerank", base.rerank),  # type: ignore[arg-type]  # parsed by AXES
            backend=chosen.get("backend", base.backend),  # type: ignore[arg-type]  # parsed by AXES
        )
        if config.backend == "file-search":  # its retrieval is its own: one configuration per k
            config = replace(config, mode="hybrid", mmr=False, rerank="none")
        configs.append(config)
    return list(dict.fromkeys(configs)) or [base]


def retrieval_variants(configs: list[EvalConfig]) -> list[RetrievalVariant]:
    """All modes with and without MMR at every k the configurations use; hybrid first
    without a second stage (the reference) and then with each one the configurations use."""
    ks = dict.fromkeys(c.top_k for c in configs)
    reranks: dict[RerankMode, None] = dict.fromkeys(["none", *(c.rerank for c in configs)])
    return [
        RetrievalVariant(mode, mmr, k, rerank)
        for k in ks
        for mode in MODES
        for rerank in (list(reranks) if mode == "hybrid" else NO_RERANK)
        for mmr in (False, True)
    ]


def _value(axis: str, raw: str, spec: str) -> object:
    if axis == "k":
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"--compare {spec!r}: k must be a positive integer, got {raw!r}")
        return int(raw)
    if axis == "mode":
        if raw not in MODES:
            raise ConfigError(f"--compare {spec!r}: mode must be one of {', '.join(MODES)}, got {raw!r}")
        return raw
    if axis == "rerank":
        if raw not in RERANKS:
            raise ConfigError(f"--compare {spec!r}: rerank must be one of {', '.join(RERANKS)}, got {raw!r}")
        return raw
    if axis == "backend":
        if raw not in BACKENDS:
            raise ConfigError(f"--compare {spec!r}: backend must be one of {', '.join(BACKENDS)}, got {raw!r}")
        return raw
    if raw.lower() not in _TRUE | _FALSE:
        raise ConfigError(f"--compare {spec!r}: mmr must be on or off, got {raw!r}")
    return raw.lower() in _TRUE
