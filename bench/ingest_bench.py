"""Ingest: our pipeline against the embedder alone (the ceiling) and a plain LangChain
pipeline on the same generated files, then what incremental runs and a removal cost.

Ours and LangChain each run in a fresh process (`in_fresh_process`), so their wall times
include imports and model load and their peak memory is their own; the ceiling runs in our
process right after our ingest, so both see the same load on a shared machine. With the
offline embedder at about 17 chunks/s on two cores, embedding is nearly all of a full
ingest; the incremental figures at the larger size use a stand-in embedder (hash vectors) so `--quick`
fits in ten minutes: a stand-in only makes the full ingest they are divided by faster,
so their fractions are, if anything, pessimistic.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import numpy as np

from bench.corpus_gen import edit_files, generate
from bench.harness import (
    REPO,
    Figure,
    Profile,
    Table,
    fresh_dir,
    hash_vector,
    in_fresh_process,
    peak_rss_mb,
    ratio,
    threads_cpu_s,
)
from rag.providers.minilm import DIM
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from rag.types import Embedded, Usage

if TYPE_CHECKING:
    from bench.langchain_baseline import BaselineRun

COLLECTION = "bench"
# A rerun that finds nothing to do lasts about half a second, so one sample is at the mercy of
# a passing burst of load: the figure is the median of a few, each in a fresh process.
UNCHANGED_RERUNS = 3
Embedder = Literal["minilm", "hash"]
EMBEDDER_THREADS = "minilm"  # the names of the offline embedder's worker threads (rag.providers.minilm)
T = TypeVar("T")


class HashEmbedder(OfflineProvider):
    """The offline provider with vectors from a hash of the text instead of the model:
    same chunking profile, same store, near-zero embedding time."""

    embedding_id = f"bench-hash:{DIM}"

    def embed_documents(self, texts: Sequence[str]) -> Embedded:
        vectors = [hash_vector(t, DIM) for t in texts]
        return Embedded(vectors, Usage(), "bench-hash")


# --- what runs in the measured child processes ---


@dataclass(frozen=True)
class Ceiling:
    chunks: int
    seconds: float


@dataclass(frozen=True)
class IngestRun:
    exit_code: int
    embedded: int  # chunks sent to the embedder; the rest were unchanged or reused
    call_seconds: float  # inside ingest_paths: no interpreter start, no imports
    finished_at: float  # time.time() when ingest_paths returned, to end the parent's wall clock
    peak_rss_mb: float  # before the ceiling, if any, was measured
    cpu_s: float  # CPU of every thread of the process inside ingest_paths
    embedder_cpu_s: float | None  # of which the local embedder's workers (None: not measurable here)
    ceiling: Ceiling | None = None

    @property
    def outside_embedder(self) -> float | None:
        """The share of the run's CPU its embedder's workers did not spend: reading,
        chunking, storing, imports. On two cores it is what the ceiling does not pay."""
        if self.embedder_cpu_s is None or self.cpu_s <= 0:
            return None
        return max(0.0, self.cpu_s - self.embedder_cpu_s) / self.cpu_s


def ingest_child(embedder: Embedder, root: Path, data_dir: Path, then_ceiling: bool = False) -> IngestRun:
    """What `python -m ingest ROOT --data-dir D --collection bench --quiet` runs, minus the
    summary table, with the run's report kept for the figures. With `then_ceiling`, the
    embedder alone then re-embeds exactly the chunks just stored, in the same process right
    after, so the ratio of the two is not skewed by other load on a shared machine."""
    from ingest.pipeline import ingest_paths
    from rag.providers import get_embedder

    settings = Settings(data_dir=data_dir)
    provider = HashEmbedder() if embedder == "hash" else get_embedder(settings)
    started, cpu_started = time.perf_counter(), time.process_time()
    report = ingest_paths([root], settings, provider, collection=COLLECTION)
    call_seconds, finished_at, peak = time.perf_counter() - started, time.time(), peak_rss_mb()
    cpu = time.process_time() - cpu_started
    embedder_cpu = threads_cpu_s(EMBEDDER_THREADS) if embedder == "minilm" else None  # fresh process: all this run's
    return IngestRun(report.exit_code, report.embedded_chunks, call_seconds, finished_at, peak, cpu, embedder_cpu,
                     measure_ceiling(settings) if then_ceiling else None)


def measure_ceiling(settings: Settings) -> Ceiling:
    """MiniLM.embed over the stored chunks as ingest embedded them (each with its context
    line, `Chunk.embedded_text`), model loaded, nothing else."""
    from rag.providers.minilm import shared_minilm

    texts = [c.embedded_text for c in Store(settings, OfflineProvider.embedding_id, COLLECTION).chunks()]
    model = shared_minilm()
    model.embed(texts[:8])
    started = time.perf_counter()
    model.embed(texts)
    return Ceiling(len(texts), time.perf_counter() - started)


@dataclass(frozen=True)
class Removal:
    chunks: int
    call_seconds: float  # inside remove_paths


def remove_child(embedder: Embedder, data_dir: Path, source: str) -> Removal:
    from ingest.pipeline import remove_paths

    provider = HashEmbedder() if embedder == "hash" else OfflineProvider()
    settings = Settings(data_dir=data_dir, api_key=None)
    started = time.perf_counter()
    report = remove_paths([source], settings, provider, collection=COLLECTION)
    return Removal(sum(f.chunks for f in report.files), time.perf_counter() - started)


def stored_chunks(data_dir: Path, embedding_id: str) -> int:
    return Store(Settings(data_dir=data_dir, api_key=None), embedding_id, COLLECTION).count()


# --- the sub-benchmark ---


@dataclass(frozen=True)
class Timed(Generic[T]):
    started_at: float  # time.time() just before the child was spawned
    wall_s: float  # the whole child process, from spawn to result
    value: T


def timed_child(fn: Callable[..., T], *args: object, timeout_s: float) -> Timed[T]:
    started_at, started = time.time(), time.perf_counter()
    value = in_fresh_process(fn, *args, timeout_s=timeout_s)
    return Timed(started_at, time.perf_counter() - started, value)


def run(profile: Profile, work: Path, emit: Callable[[Table], None]) -> None:
    for size in profile.ingest_chunks:
        compare = size <= profile.baseline_chunks
        emit(full_ingest_table(size, profile.repeats if compare else 1, compare, work, profile.timeout_s))
    embedder: Embedder = "minilm" if profile.real_embedder_structural else "hash"
    emit(incremental_table(profile.structural_chunks, embedder, work, profile.timeout_s))


@dataclass(frozen=True)
class Round:
    """One repetition: our ingest (with the ceiling right after, in the same process) and,
    when compared, LangChain's, each in a fresh process."""

    ours: Timed[IngestRun]
    chunks: int
    langchain: Timed[BaselineRun] | None

    @property
    def ours_s(self) -> float:
        return self.ours.value.finished_at - self.ours.started_at

    @property
    def ours_rate(self) -> float:
        return self.chunks / self.ours_s


def full_ingest_table(size: int, repeats: int, compare: bool, work: Path, timeout_s: float) -> Table:
    """Ours and LangChain `repeats` times each, alternating which goes first, so a burst of
    load from elsewhere on a shared machine hits both alike; ratios are taken per round
    (ours against the LangChain run next to it, and against the ceiling measured right
    after it) and reported as their median with the spread."""
    corpus = generate(fresh_dir(work / f"corpus-{size}"), size)
    profile = Settings(api_key=None).chunk_profiles["offline"]
    load_before = os.getloadavg()
    rounds = [one_round(i, corpus.root, work, size, compare, timeout_s) for i in range(repeats)]
    load_after = os.getloadavg()
    last = work / f"ours-{size}-{repeats - 1}"
    reruns = [cli_seconds(corpus.root, last, timeout_s) for _ in range(UNCHANGED_RERUNS)]
    rerun_s = [seconds for seconds, _ in reruns]
    unchanged_s, unchanged_code = median(rerun_s), max(code for _, code in reruns)
    full_s = median([r.ours_s for r in rounds])
    unchanged_share = ratio(unchanged_s, full_s)
    chunks = rounds[-1].chunks
    table = Table(
        "ingest",
        f"full ingest, {chunks:,} chunks, offline MiniLM embedder",
        f"generated corpus: {len(corpus.files)} files (Markdown + multi-page PDF), target {size:,} chunks; "
        f"each pipeline in its own fresh process; {len(rounds)} rounds, alternating which runs first",
    )
    table.add(
        Figure("chunks stored", chunks, "chunks", f"exit code {rounds[-1].ours.value.exit_code}"),
        Figure("load average during the runs", load_before[0], "1-min",
               f"1/5/15-min load {_load(load_before)} before, {_load(load_after)} after (2 cores; shared machine)"),
        Figure("ours: end to end", full_s, "s",
               f"median of {_runs([r.ours_s for r in rounds], '.1f')} s; fresh process: imports, model load, read, "
               "chunk, embed, store"),
        Figure("ours: throughput", chunks / full_s, "chunks/s", "chunks / median end-to-end wall time"),
        Figure("ours: peak RSS", median([r.ours.value.peak_rss_mb for r in rounds]), "MB",
               "median peak resident memory of the ingest process"),
        *_outside_embedder([r.ours.value for r in rounds]),
        Figure("re-ingest, nothing changed", unchanged_s, "s",
               f"`python -m ingest` as a user runs it, fresh process (interpreter and imports included); median "
               f"of {_runs(rerun_s, '.3f')} s, worst exit code {unchanged_code}"),
        Figure("unchanged / full", unchanged_share, "×", "fraction of the median full MiniLM ingest's wall time",
               "≤ 0.02", None if unchanged_share is None else unchanged_share <= 0.02),
    )
    if compare:
        table.add(*baseline_figures(rounds, profile.size_tokens, profile.overlap_tokens))
    return table


def _outside_embedder(runs: Sequence[IngestRun]) -> list[Figure]:
    """What our run spends besides embedding, where /proc tells (Linux): the figure that
    explains the distance to the ceiling, which embeds and nothing else."""
    shares = [r.outside_embedder for r in runs]
    if any(s is None for s in shares):
        return []
    known = [s for s in shares if s is not None]
    cpu = median([r.cpu_s for r in runs])
    return [Figure("ours: CPU outside the embedder", median(known), "×",
                   f"share of the ingest's CPU (all threads; median {cpu:.1f} s) that the embedder's workers did not "
                   f"spend: reading, chunking, Chroma, imports; median of {_runs(known, '.3f')}")]


def one_round(i: int, root: Path, work: Path, size: int, compare: bool, timeout_s: float) -> Round:
    """Round i: LangChain goes first in odd rounds."""
    profile = Settings(api_key=None).chunk_profiles["offline"]
    data = fresh_dir(work / f"ours-{size}-{i}")
    lc_dir = work / f"langchain-{size}-{i}"

    def ours() -> Timed[IngestRun]:
        return timed_child(ingest_child, "minilm", root, data, compare, timeout_s=timeout_s)

    def langchain() -> Timed[BaselineRun]:
        return timed_child(langchain_child, root, fresh_dir(lc_dir), profile.size_tokens, profile.overlap_tokens,
                           timeout_s=timeout_s)

    theirs: Timed[BaselineRun] | None
    if compare and i % 2:
        theirs = langchain()
        mine = ours()
    else:
        mine = ours()
        theirs = langchain() if compare else None
    return Round(mine, stored_chunks(data, OfflineProvider.embedding_id), theirs)


def baseline_figures(rounds: Sequence[Round], size_tokens: int, overlap_tokens: int) -> list[Figure]:
    ceilings = [r.ours.value.ceiling for r in rounds]
    langchains = [r.langchain for r in rounds]
    if any(c is None for c in ceilings) or any(lc is None for lc in langchains):
        return []
    ceiling_rates = [c.chunks / c.seconds for c in ceilings if c]
    lc_rates = [lc.value.chunks / lc.wall_s for lc in langchains if lc]
    vs_ceiling = [r.ours_rate / c for r, c in zip(rounds, ceiling_rates, strict=True)]
    vs_langchain = [r.ours_rate / lc for r, lc in zip(rounds, lc_rates, strict=True)]
    rss = [r.ours.value.peak_rss_mb / lc.value.peak_rss_mb for r, lc in zip(rounds, langchains, strict=True) if lc]
    lc_chunks = langchains[-1].value.chunks if langchains[-1] else 0
    return [
        Figure("embedder alone (ceiling)", median(ceiling_rates), "chunks/s",
               f"MiniLM.embed on the stored chunk texts, model warm, nothing else; same process, right after our "
               f"ingest; median of {_runs(ceiling_rates, '.2f')}"),
        Figure("ours / ceiling", median(vs_ceiling), "×",
               f"median of the per-round ratios {_runs(vs_ceiling, '.3f')}, spread {_spread(vs_ceiling)}",
               "≥ 0.95", median(vs_ceiling) >= 0.95),
        Figure("LangChain: end to end", median([lc.wall_s for lc in langchains if lc]), "s",
               f"stock loaders + RecursiveCharacterTextSplitter ({size_tokens}/{overlap_tokens} MiniLM tokens) + "
               f"same embedder + Chroma.from_documents; {lc_chunks:,} chunks; median of "
               f"{_runs([lc.wall_s for lc in langchains if lc], '.1f')} s"),
        Figure("LangChain: throughput", median(lc_rates), "chunks/s", "its chunks / its end-to-end wall time"),
        Figure("ours / LangChain throughput", median(vs_langchain), "×",
               f"chunks/s over LangChain's in the same round; median of {_runs(vs_langchain, '.3f')}, "
               f"spread {_spread(vs_langchain)}",
               "≥ 1.15", median(vs_langchain) >= 1.15),
        Figure("ours / LangChain peak RSS", median(rss), "×",
               f"median of {_runs(rss, '.3f')}; at most 1 means we use no more memory", "≤ 1.0", median(rss) <= 1.0),
    ]


def median(values: Sequence[float]) -> float:
    return float(np.median(values))


def _runs(values: Sequence[float], fmt: str) -> str:
    return "[" + ", ".join(format(v, fmt) for v in values) + "]"


def _spread(values: Sequence[float]) -> str:
    return f"{min(values):.3f}–{max(values):.3f}"


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def langchain_child(src: Path, persist: Path, size_tokens: int, overlap_tokens: int) -> BaselineRun:
    """Imported here, not at the top: our own child processes must not pay LangChain's imports."""
    from bench.langchain_baseline import run

    return run(src, persist, size_tokens, overlap_tokens)


def cli_seconds(root: Path, data_dir: Path, timeout_s: float) -> tuple[float, int]:
    """Wall time of `python -m ingest ROOT` in a new interpreter, exactly as a user runs it."""
    command = [sys.executable, "-m", "ingest", str(root), "--data-dir", str(data_dir), "--collection", COLLECTION,
               "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=_cli_env())
    return time.perf_counter() - started, done.returncode


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def incremental_table(size: int, embedder: Embedder, work: Path, timeout_s: float) -> Table:
    """Full ingest, then: unchanged re-run, 1% of files edited, one large file removed."""
    corpus = generate(fresh_dir(work / f"corpus-incr-{size}"), size)
    data = fresh_dir(work / f"incr-{size}")
    full = timed_child(ingest_child, embedder, corpus.root, data, timeout_s=timeout_s)
    embedding_id = HashEmbedder.embedding_id if embedder == "hash" else OfflineProvider.embedding_id
    chunks = stored_chunks(data, embedding_id)
    unchanged = timed_child(ingest_child, embedder, corpus.root, data, timeout_s=timeout_s)
    edited_files = edit_files(corpus, 0.01)
    edited = timed_child(ingest_child, embedder, corpus.root, data, timeout_s=timeout_s)
    source = corpus.large_file.relative_to(corpus.root).as_posix()
    removal = in_fresh_process(remove_child, embedder, data, source, timeout_s=timeout_s)
    unchanged_share = ratio(unchanged.wall_s, full.wall_s)
    which = "offline MiniLM" if embedder == "minilm" else "stand-in hash embedder (not MiniLM)"
    table = Table(
        "ingest",
        f"incremental runs and removal, {chunks:,} chunks, {which}",
        f"generated corpus: {len(corpus.files)} files; times are whole fresh processes (imports included) "
        "unless marked 'call'",
    )
    table.add(
        Figure("full ingest", full.wall_s, "s", f"{chunks:,} chunks, {which}"),
        Figure("re-ingest, nothing changed", unchanged.wall_s, "s",
               f"of which {unchanged.value.call_seconds:.2f} s inside ingest_paths (the rest: interpreter, imports)"),
        Figure("chunks embedded again, unchanged", unchanged.value.embedded, "chunks", "must be 0", "0",
               unchanged.value.embedded == 0),
        Figure("unchanged / full", unchanged_share, "×", "fraction of the full ingest's wall time",
               "≤ 0.02", None if unchanged_share is None else unchanged_share <= 0.02),
        Figure("re-ingest, 1% of files edited", edited.wall_s, "s",
               f"{len(edited_files)} of {len(corpus.files)} files changed, {edited.value.embedded} chunks embedded "
               "(the rest of those files' chunks reused)"),
        Figure("edited / full", ratio(edited.wall_s, full.wall_s), "×", "fraction of the full ingest's wall time"),
        Figure("remove one large file (call)", removal.call_seconds, "s",
               f"remove_paths of {source}: {removal.chunks:,} chunks deleted, manifest and version updated",
               "≤ 1 s", removal.call_seconds <= 1.0),
    )
    return table

