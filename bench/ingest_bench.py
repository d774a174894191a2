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

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np

from bench.corpus_gen import GeneratedCorpus, edit_files, generate
from bench.harness import Figure, Profile, Table, fresh_dir, in_fresh_process, peak_rss_mb, ratio
from bench.langchain_baseline import run as langchain_run
from rag.providers.minilm import DIM
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from rag.types import Embedded, Usage

COLLECTION = "bench"
Embedder = Literal["minilm", "hash"]
T = TypeVar("T")


class HashEmbedder(OfflineProvider):
    """The offline provider with vectors from a hash of the text instead of the model:
    same chunking profile, same store, near-zero embedding time."""

    embedding_id = f"bench-hash:{DIM}"

    def embed_documents(self, texts: Sequence[str]) -> Embedded:
        vectors = [_hash_vector(t) for t in texts]
        return Embedded(vectors, Usage(), "bench-hash")


def _hash_vector(text: str) -> list[float]:
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    vec = np.random.default_rng(seed).standard_normal(DIM)
    return (vec / np.linalg.norm(vec)).tolist()


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
    ceiling: Ceiling | None = None


def ingest_child(embedder: Embedder, root: Path, data_dir: Path, then_ceiling: bool = False) -> IngestRun:
    """What `python -m ingest ROOT --data-dir D --collection bench --quiet` runs, minus the
    summary table, with the run's report kept for the figures. With `then_ceiling`, the
    embedder alone then re-embeds exactly the chunks just stored, in the same process right
    after, so the ratio of the two is not skewed by other load on a shared machine."""
    from ingest.pipeline import ingest_paths
    from rag.providers import get_provider

    settings = Settings(data_dir=data_dir)
    provider = HashEmbedder() if embedder == "hash" else get_provider(settings)
    started = time.perf_counter()
    report = ingest_paths([root], settings, provider, collection=COLLECTION)
    call_seconds, finished_at, peak = time.perf_counter() - started, time.time(), peak_rss_mb()
    return IngestRun(report.exit_code, report.embedded_chunks, call_seconds, finished_at, peak,
                     measure_ceiling(settings) if then_ceiling else None)


def measure_ceiling(settings: Settings) -> Ceiling:
    """MiniLM.embed over the stored chunk texts, model loaded, nothing else."""
    from rag.providers.minilm import shared_minilm

    texts = [c.text for c in Store(settings, OfflineProvider.embedding_id, COLLECTION).chunks()]
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
        emit(full_ingest_table(size, size <= profile.baseline_chunks, work, profile.timeout_s))
    embedder: Embedder = "minilm" if profile.real_embedder_structural else "hash"
    emit(incremental_table(profile.structural_chunks, embedder, work, profile.timeout_s))


def full_ingest_table(size: int, compare: bool, work: Path, timeout_s: float) -> Table:
    corpus = generate(fresh_dir(work / f"corpus-{size}"), size)
    data = fresh_dir(work / f"ours-{size}")
    ours = timed_child(ingest_child, "minilm", corpus.root, data, compare, timeout_s=timeout_s)
    measured = ours.value
    ours_s = measured.finished_at - ours.started_at
    chunks = stored_chunks(data, OfflineProvider.embedding_id)
    again = timed_child(ingest_child, "minilm", corpus.root, data, timeout_s=timeout_s)
    again_share = ratio(again.wall_s, ours_s)
    table = Table(
        "ingest",
        f"full ingest, {chunks:,} chunks, offline MiniLM embedder",
        f"generated corpus: {len(corpus.files)} files (Markdown + multi-page PDF), target {size:,} chunks; "
        "each pipeline in its own fresh process",
    )
    table.add(
        Figure("chunks stored", chunks, "chunks", f"exit code {measured.exit_code}"),
        Figure("ours: end to end", ours_s, "s",
               f"fresh process: imports, model load, read, chunk, embed, store ({measured.call_seconds:.1f} s of "
               "it inside ingest_paths)"),
        Figure("ours: throughput", chunks / ours_s, "chunks/s", "chunks / end-to-end wall time"),
        Figure("ours: peak RSS", measured.peak_rss_mb, "MB", "peak resident memory of the ingest process"),
        Figure("re-ingest, nothing changed", again.wall_s, "s",
               f"fresh process again; {again.value.embedded} chunks embedded, "
               f"{again.value.call_seconds:.2f} s inside ingest_paths"),
        Figure("unchanged / full", again_share, "×", "fraction of this full MiniLM ingest's wall time",
               "≤ 0.02", None if again_share is None else again_share <= 0.02),
    )
    if compare and measured.ceiling:
        table.add(*baseline_figures(corpus, measured.ceiling, work, size, ours_s, chunks, measured.peak_rss_mb,
                                    timeout_s))
    return table


def baseline_figures(
    corpus: GeneratedCorpus, ceiling: Ceiling, work: Path, size: int, ours_s: float, ours_chunks: int,
    ours_rss: float, timeout_s: float,
) -> list[Figure]:

    ceiling_rate = ceiling.chunks / ceiling.seconds
    profile = Settings(api_key=None).chunk_profiles["offline"]
    lc = timed_child(
        langchain_run, corpus.root, fresh_dir(work / f"langchain-{size}"), profile.size_tokens,
        profile.overlap_tokens, timeout_s=timeout_s,
    )
    lc_rate = lc.value.chunks / lc.wall_s
    ours_rate = ours_chunks / ours_s
    vs_ceiling = ratio(ours_rate, ceiling_rate)
    vs_langchain = ratio(ours_rate, lc_rate)
    rss_ratio = ratio(ours_rss, lc.value.peak_rss_mb)
    return [
        Figure("embedder alone (ceiling)", ceiling_rate, "chunks/s",
               f"MiniLM.embed on the {ceiling.chunks:,} stored chunk texts, model warm, nothing else; "
               "same process, right after our ingest"),
        Figure("ours / ceiling", vs_ceiling, "×", "end-to-end throughput over the embedder-alone ceiling",
               "≥ 0.9", None if vs_ceiling is None else vs_ceiling >= 0.9),
        Figure("LangChain: end to end", lc.wall_s, "s",
               f"stock loaders + RecursiveCharacterTextSplitter ({profile.size_tokens}/{profile.overlap_tokens} "
               f"MiniLM tokens) + same embedder + Chroma.from_documents; {lc.value.chunks:,} chunks"),
        Figure("LangChain: throughput", lc_rate, "chunks/s", "its chunks / its end-to-end wall time"),
        Figure("LangChain: peak RSS", lc.value.peak_rss_mb, "MB", "peak resident memory of its process"),
        Figure("ours / LangChain throughput", vs_langchain, "×", "chunks/s over LangChain's chunks/s",
               "≥ 1.0", None if vs_langchain is None else vs_langchain >= 1.0),
        Figure("LangChain / ours wall time", ratio(lc.wall_s, ours_s), "×",
               "the same files end to end; above 1 means ours finished first"),
        Figure("ours / LangChain peak RSS", rss_ratio, "×", "below 1 means we use less memory",
               "< 1.0", None if rss_ratio is None else rss_ratio < 1.0),
    ]


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

