"""What every sub-benchmark shares: figures with units, tables, the machine they ran on,
child processes measured for wall time and peak memory, and the JSON written at the end.

A number without its unit, its machine and the code it measured cannot be checked later,
so every result carries all three.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


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
    `quick` fits in ten minutes on two cores; `full` shows how cost grows with size."""

    name: str
    ingest_chunks: tuple[int, ...]  # full ingest with the real offline embedder
    baseline_chunks: int  # the size at which ceiling and LangChain are compared
    structural_chunks: int  # re-ingest / remove measured at this size
    real_embedder_structural: bool  # False: a stand-in embedder builds the structural corpus
    gemini_chunks: int
    retrieval_chunks: tuple[int, ...]
    retrieval_queries: int
    answer_repeats: int
    timeout_s: float  # per sub-benchmark, hard


PROFILES = {
    "smoke": Profile("smoke", (40,), 40, 60, False, 120, (300,), 20, 2, 240),
    "quick": Profile("quick", (1_000,), 1_000, 5_000, False, 5_000, (10_000, 100_000), 200, 10, 420),
    "full": Profile(
        "full", (1_000, 5_000, 20_000), 5_000, 5_000, True, 20_000, (10_000, 100_000), 500, 30, 7_200
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


@dataclass(frozen=True)
class ChildRun:
    """A command run in its own process: wall time, peak resident memory, exit status."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_child(argv: Sequence[str], *, timeout_s: float, env: dict[str, str] | None = None) -> ChildRun:
    """Peak RSS comes from wait4's rusage of exactly that process, so pipelines compared
    this way never share an interpreter, a model or an allocator."""
    with _temp_files() as (out, err):
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=err, cwd=REPO, env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        status, rusage = _wait(proc, timeout_s)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return ChildRun(wall, rusage.ru_maxrss / 1024, status, out.read(), err.read())


@contextmanager
def _temp_files() -> Iterator[tuple]:  # type: ignore[type-arg]
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        yield out, err


def _wait(proc: subprocess.Popen, timeout_s: float):  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, rusage
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            return proc.returncode, rusage
        time.sleep(0.02)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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


def table_from_dict(data: dict) -> Table:  # type: ignore[type-arg]
    figures = [Figure(**f) for f in data.pop("figures")]
    return Table(**data, figures=figures)


def print_table(table: Table, file: object = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    shown = RichTable(title=f"{table.bench}: {table.title}", caption=table.setup or None, title_justify="left")
    for column in ("figure", "value", "unit", "target", "note"):
        shown.add_column(column, overflow="fold", justify="right" if column == "value" else "left")
    for f in table.figures:
        target = f.target + ("" if f.met is None else (" ✓" if f.met else " ✗"))
        shown.add_row(f.name, f.shown(), f.unit, target, f.note)
    Console(file=file or sys.stdout, width=160).print(shown)
