"""The benchmark's own arithmetic and plumbing: floors, percentiles, the generated corpus
and the bounded child processes every measurement runs in."""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from pathlib import Path

import pytest

from bench.corpus_gen import edit_files, generate, queries, synthetic_texts
from bench.gemini_ingest_bench import Limit
from bench.harness import ChildFailed, Figure, Latencies, compile_sources, in_fresh_process, threads_cpu_s


def test_floor_when_the_limit_binds() -> None:
    # 50 requests at 30/min: the first 30 go in the first window; the other 20 wait for the
    # window to slide (60 s), then go 4 at a time at 0.2 s each: 5 rounds = 1.0 s.
    assert Limit(rpm=30, concurrency=4, latency_s=0.2).floor_s(50) == pytest.approx(61.0)


def test_floor_when_only_latency_binds() -> None:
    # 50 requests, 4 in flight, 0.2 s each: ceil(50 / 4) = 13 rounds = 2.6 s; 3,000/min never binds.
    assert Limit(rpm=3_000, concurrency=4, latency_s=0.2).floor_s(50) == pytest.approx(2.6)


def test_latency_percentiles_in_milliseconds() -> None:
    seconds = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    got = Latencies.of(seconds)
    assert got.n == 100
    assert got.p50_ms == pytest.approx(50.5)
    assert got.p95_ms == pytest.approx(95.05)
    assert got.p99_ms == pytest.approx(99.01)


def test_figures_show_with_sensible_precision() -> None:
    assert Figure("a", 12_345, "chunks").shown() == "12,345"
    assert Figure("b", 1234.56, "ms").shown() == "1,235"
    assert Figure("c", 3.14159, "s").shown() == "3.14"
    assert Figure("d", 0.012345, "×").shown() == "0.0123"
    assert Figure("e", None, "ms").shown() == "n/a"


def test_generated_corpus_is_deterministic_and_mixed(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", 60)
    second = generate(tmp_path / "b", 60)
    assert first.sections == 60
    assert {f.suffix for f in first.files} == {".md", ".pdf"}
    assert first.large_file in first.files
    for one, two in zip(first.files, second.files, strict=True):
        assert one.relative_to(first.root) == two.relative_to(second.root)
        assert one.read_bytes() == two.read_bytes()
    assert synthetic_texts(3) == synthetic_texts(3)
    assert queries(3) == queries(3) and queries(3) != queries(3, seed=1)


def test_pdfs_have_one_section_per_page(tmp_path: Path) -> None:
    from pypdf import PdfReader

    corpus = generate(tmp_path / "c", 100)
    pages = sum(len(PdfReader(str(f)).pages) for f in corpus.files if f.suffix == ".pdf")
    markdown_sections = sum(f.read_text().count("\n## ") for f in corpus.files if f.suffix == ".md")
    assert pages + markdown_sections == corpus.sections
    assert len(PdfReader(str(corpus.large_file)).pages) == 5  # 5% of 100


def test_edit_changes_one_percent_of_files(tmp_path: Path) -> None:
    corpus = generate(tmp_path / "d", 300)
    before = {f: f.read_bytes() for f in corpus.files}
    edited = edit_files(corpus, 0.01)
    assert len(edited) == max(1, round(len(corpus.files) * 0.01))
    assert [f for f in corpus.files if f.read_bytes() != before[f]] == sorted(edited, key=corpus.files.index)


def test_child_process_returns_its_result() -> None:
    assert in_fresh_process(math.sqrt, 16.0, timeout_s=60) == 4.0


def test_the_cpu_of_named_threads_is_theirs_alone() -> None:
    """The ingest bench splits a run's CPU between its embedder's workers and the rest: a
    thread that worked counts under its name's prefix only, and while it idles it adds nothing."""
    worked, done = threading.Event(), threading.Event()

    def spin() -> None:
        while time.thread_time() < 0.2:
            pass
        worked.set()
        done.wait()

    busy = threading.Thread(target=spin, name="busy-spinner")
    busy.start()
    try:
        assert worked.wait(60)
        spent = threads_cpu_s("busy-")
        assert spent is not None and 0.15 <= spent <= time.process_time()
        assert threads_cpu_s("no-such-thread") == 0.0
    finally:
        done.set()
        busy.join()


def test_child_process_errors_and_timeouts_are_reported() -> None:
    with pytest.raises(ChildFailed, match="ValueError"):
        in_fresh_process(int, "not a number", timeout_s=60)
    with pytest.raises(ChildFailed, match="longer than"):
        in_fresh_process(time.sleep, 30, timeout_s=1)


def test_sources_are_compiled_even_where_python_writes_no_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # as on our CI machines
    module = tmp_path / "pkg" / "sub" / "mod.py"
    module.parent.mkdir(parents=True)
    module.write_text("X = 1\n")
    compile_sources(tmp_path, ("pkg",))
    assert Path(importlib.util.cache_from_source(str(module))).is_file()
