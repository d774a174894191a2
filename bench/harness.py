"""What every sub-benchmark shares: figures with units, tables, the machine they ran on,
child processes measured for wall time and peak memory, and the JSON written at the end.

A number without its unit, its machine and the code it measured cannot be checked later,
so every result carries all three.
"""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import importlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("rag", "ingest", "ui", "bench")  # what the measured processes import from this checkout
T = TypeVar("T")


def compile_sources(root: Path = REPO, packages: Sequence[str] = PACKAGES) -> None:
    """Writes our packages' bytecode before anything is timed. A user's Python caches it on
    the first run, and pip compiled every dependency (LangChain's included) when it
    installed them; but an editable install of ours is compiled on import only, and never
    where PYTHONDONTWRITEBYTECODE is set (as on our CI machines), so every fresh process
    measured would compile about 35 of our modules again: about 0.1 s (measured), which is
    a fifth of an unchanged re-ingest and no part of what a user waits for."""
    for package in packages:
        compileall.compile_dir(root / package, quiet=1)


@dataclass(frozen=True)
class Figure:
    """One measured number. `note` says what it means and what it is compared to; `target`
    is the goal in words and `met` whether this run reached it (None: no target)."""

    name: str
    value: float | int | None
    unit: str
    note: str = ""
    target: str = ""
    met: bool | None = None

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if isinstance(self.value, int):
            return f"{self.value:,}"
        magnitude = abs(self.value)
        if magnitude >= 100:
            return f"{self.value:,.0f}"
        if magnitude >= 1:
            return f"{self.value:.2f}"
        return f"{self.value:.3g}"


@dataclass
class Table:
    """The figures of one sub-benchmark at one size."""

    bench: str
    title: str
    setup: str = ""  # sizes, knobs and data used, in words
    figures: list[Figure] = field(default_factory=list)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


@dataclass(frozen=True)
class Profile:
    """How big each sub-benchmark runs. `smoke` only proves the harness works (CI);
    `quick` takes about 20 minutes on two cores (ingest, with its repeated runs, is half
    of it); `full` shows how cost grows with size."""

    name: str
    ingest_chunks: tuple[int, ...]  # full ingest with the real offline embedder
    baseline_chunks: int  # the size at which ceiling and LangChain are compared
    repeats: int  # ours and each baseline, alternating: ratios are medians of this many runs
    structural_chunks: int  # re-ingest / remove measured at this size
    real_embedder_structural: bool  # False: a stand-in embedder builds the structural corpus
    gemini_chunks: int
    gemini_rpm: int  # the simulated embedding limit: 3,000 (tier 1) is latency-bound, 100 (free) binds
    retrieval_chunks: tuple[int, ...]
    retrieval_queries: int
    answer_chunks: int
    answer_repeats: int
    serve_sessions: tuple[int, ...]  # concurrent streaming sessions against the API replicas
    timeout_s: float  # per sub-benchmark, hard


PROFILES = {
    "smoke": Profile(
        "smoke", ingest_chunks=(20,), baseline_chunks=20, repeats=3, structural_chunks=30,
        real_embedder_structural=False,
        gemini_chunks=120, gemini_rpm=3_000, retrieval_chunks=(300,), retrieval_queries=20,
        answer_chunks=30, answer_repeats=2, serve_sessions=(20,), timeout_s=300,
    ),
    "quick": Profile(
        "quick", ingest_chunks=(1_000,), baseline_chunks=1_000, repeats=3, structural_chunks=5_000,
        real_embedder_structural=False, gemini_chunks=5_000, gemini_rpm=3_000,
        # Chroma builds a 100k-chunk collection in minutes here (its full-text index of the
        # documents is half of it), which alone would break the ten minutes: 100k is --full.
        retrieval_chunks=(10_000, 30_000), retrieval_queries=100, answer_chunks=200, answer_repeats=10,
        serve_sessions=(100, 1_000),
        # A safety net per part: ingest runs ours and LangChain 3 times each at 1k chunks (about
        # 10 min on an idle machine); the other parts take a few minutes.
        timeout_s=1_800,
    ),
    "full": Profile(
        "full", ingest_chunks=(1_000, 5_000, 20_000), baseline_chunks=5_000, repeats=3, structural_chunks=5_000,
        real_embedder_structural=True, gemini_chunks=20_000, gemini_rpm=100,
        retrieval_chunks=(10_000, 100_000), retrieval_queries=500, answer_chunks=200, answer_repeats=30,
        serve_sessions=(100, 1_000, 2_000), timeout_s=7_200,
    ),
}


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    python: str
    platform: str
    load_average: tuple[float, float, float]

    @classmethod
    def describe(cls) -> Machine:
        cpu = platform.processor() or platform.machine()
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.exists():
            for line in cpuinfo.read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return cls(
            cpu=cpu,
            cores=len(os.sched_getaffinity(0)),
            memory_gib=round(pages / 2**30, 1),
            python=platform.python_version(),
            platform=platform.platform(),
            load_average=os.getloadavg(),
        )


def git_commit() -> str:
    """The commit measured, with `+dirty` when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# --- measuring ---


class ChildFailed(Exception):
    """A measured child process raised, crashed or ran out of its time."""


def in_fresh_process(fn: Callable[..., T], *args: object, timeout_s: float) -> T:
    """Runs `fn(*args)` in a new interpreter (spawned, not forked) and returns its result.

    Each pipeline compared for speed or peak memory gets its own process, so none inherits
    another's imports, models, caches or allocator state; `peak_rss_mb()` inside the child
    is then that pipeline's own peak. A child past `timeout_s` is killed.
    """
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_call, args=(send, fn, args), daemon=False)
    child.start()
    send.close()
    try:
        if not receive.poll(timeout_s):
            raise ChildFailed(f"{fn.__name__} took longer than {timeout_s:.0f} s and was stopped")
        ok, value = receive.recv()
    except EOFError:
        raise ChildFailed(f"{fn.__name__} died without a result") from None
    finally:
        child.join(5)
        if child.is_alive() and child.pid is not None:
            _kill_tree(child.pid)
            child.join()
    if not ok:
        raise ChildFailed(f"{fn.__name__} failed: {value}")
    return value  # type: ignore[no-any-return]  # what the child sent: fn's result, a T


def _call(send: Connection, fn: Callable[..., object], args: tuple[object, ...]) -> None:
    try:
        result = (True, fn(*args))
    except Exception as error:  # reported to the parent as a problem of this sub-benchmark
        result = (False, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=6)}")
    send.send(result)
    send.close()


def _kill_tree(pid: int) -> None:
    """The child and every process it started: a stopped sub-benchmark must not leave its
    pipelines running on the cores the next one measures with."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        for process in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


@contextlib.contextmanager
def server_process(target: Callable[..., None], *args: object) -> Iterator[tuple[str, Callable[[], Any]]]:
    """A server (the fake Gemini) in its own spawned process, so its work does not count against
    what is measured: `target(conn, *args)` sends its URL, waits for a word, then sends its
    report (what it answered). Yields the URL and a function that fetches the report, once."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    server = ctx.Process(target=target, args=(theirs, *args), daemon=True)
    server.start()
    try:
        url = ours.recv()

        def report() -> Any:
            ours.send("done")
            return ours.recv()

        yield url, report
    finally:
        server.join(10)
        if server.is_alive():
            server.kill()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def threads_cpu_s(prefix: str) -> float | None:
    """CPU seconds (user and system) of this process's live threads whose names start with
    `prefix`, read from /proc; None where there is no /proc. Beside `time.process_time()`
    (all threads, ended ones included) it says which part of a run's CPU went where: on a
    machine of two cores, a run's wall time is bounded by all of its CPU, not its embedder's."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith(prefix) or thread.native_id is None:
            continue
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()  # after the thread's name, which may hold spaces
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime: fields 14 and 15 of stat
    return total


@dataclass(frozen=True)
class Latencies:
    """Percentiles of repeated calls, in milliseconds."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latencies:
        ms = np.asarray(seconds) * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), len(ms))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- output ---


@dataclass
class Run:
    """Everything one `python -m bench` invocation measured."""

    profile: str
    machine: Machine
    commit: str
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished: str = ""
    load_average_end: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the machine is shared: how busy it was
    tables: list[Table] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # sub-benchmarks that failed or timed out

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = self.started.replace(":", "").replace("-", "")
        path = out_dir / f"bench-{self.profile}-{stamp}.json"
        text = json.dumps(asdict(self), indent=2)
        path.write_text(text)
        (out_dir / f"latest-{self.profile}.json").write_text(text)
        return path


def measure(module: str, profile: Profile, work: Path, results: Path) -> None:
    """A sub-benchmark in its own process: each table is printed and saved the moment it is
    complete, so a timeout loses only what was still being measured."""

    def emit(table: Table) -> None:
        print_table(table)
        with results.open("a") as handle:
            handle.write(json.dumps(asdict(table)) + "\n")

    importlib.import_module(module).run(profile, work, emit)


def table_from_dict(data: dict[str, Any]) -> Table:
    figures = [Figure(**f) for f in data.pop("figures")]
    return Table(**data, figures=figures)


def print_table(table: Table, file: IO[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    shown = RichTable(title=f"{table.bench}: {table.title}", caption=table.setup or None, title_justify="left")
    for column in ("figure", "value", "unit", "target", "note"):
        shown.add_column(column, overflow="fold", justify="right" if column == "value" else "left")
    for f in table.figures:
        target = f.target + ("" if f.met is None else (" ✓" if f.met else " ✗"))
        shown.add_row(f.name, f.shown(), f.unit, target, f.note)
    Console(file=file or sys.stdout, width=160).print(shown)


def hash_vector(text: str, dim: int) -> list[float]:
    """A unit vector that stands for `text` without any model: for runs that measure
    everything but the embedder."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    vec = np.random.default_rng(seed).standard_normal(dim)
    return cast(list[float], (vec / np.linalg.norm(vec)).tolist())
