"""Every sub-benchmark at tiny sizes, through the real `python -m bench` command, so the
harness cannot rot. No timing is asserted: only that each part ran, measured what it says
and found what must hold whatever the speed (nothing lost, the routes taken)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHES

REPO = Path(__file__).resolve().parents[2]
# Each sub-benchmark bounds itself (240 s at --smoke); on a busy shared machine the whole
# smoke run can pass pytest's default 300 s although it needs about a minute of CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("bench-out")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--work", str(out / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "latest-smoke.json").read_text())


def figures(run: dict, bench: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {f["name"]: f for t in run["tables"] if t["bench"] == bench for f in t["figures"]}


def test_every_sub_benchmark_reports_figures_with_units(smoke_run: dict) -> None:  # type: ignore[type-arg]
    assert smoke_run["problems"] == []
    assert smoke_run["profile"] == "smoke"
    assert smoke_run["machine"]["cores"] >= 1 and smoke_run["commit"]
    assert {t["bench"] for t in smoke_run["tables"]} == set(BENCHES)
    # our bytecode was written before anything was timed, as a user's own runs leave it
    assert Path(importlib.util.cache_from_source(str(REPO / "ingest" / "cli.py"))).is_file()
    for table in smoke_run["tables"]:
        for figure in table["figures"]:
            assert figure["unit"], f"{table['title']}: {figure['name']} has no unit"


def test_ingest_compares_against_ceiling_and_langchain(smoke_run: dict) -> None:  # type: ignore[type-arg]
    got = figures(smoke_run, "ingest")
    assert 15 <= got["chunks stored"]["value"] <= 25  # about one chunk per generated section (20)
    # Ratios are medians of alternating rounds, each round's ratio listed, with the load.
    assert any("3 rounds, alternating" in t["setup"] for t in smoke_run["tables"] if t["bench"] == "ingest")
    assert got["ours / ceiling"]["note"].count(",") >= 2 and got["load average during the runs"]["value"] >= 0
    assert 0 < got["ours: CPU outside the embedder"]["value"] < 1  # reading, chunking and storing cost something
    for name in ("embedder alone (ceiling)", "LangChain: throughput", "ours / ceiling", "ours / LangChain peak RSS"):
        assert got[name]["value"] > 0, name
    assert got["chunks embedded again, unchanged"]["value"] == 0
    full = next(t for t in smoke_run["tables"] if t["bench"] == "ingest" and t["title"].startswith("full ingest"))
    rerun = next(f for f in full["figures"] if f["name"] == "re-ingest, nothing changed")
    assert "median of [" in rerun["note"] and rerun["note"].count(" s, worst") == 1  # several fresh runs
    assert "1 chunks embedded" in got["re-ingest, 1% of files edited"]["note"]  # one section was edited
    assert "chunks deleted" in got["remove one large file (call)"]["note"]


def test_gemini_ingest_loses_and_duplicates_nothing(smoke_run: dict) -> None:  # type: ignore[type-arg]
    got = figures(smoke_run, "gemini-ingest")
    assert got["embedding requests"]["value"] >= 2
    assert got["chunks lost"]["value"] == 0
    assert got["chunks duplicated"]["value"] == 0
    assert got["vectors misplaced"]["value"] == 0
    # The floor is the larger of the API's and local work's, the latter measured in the run.
    assert got["local-work floor"]["value"] > 0 and got["API floor"]["value"] > 0
    assert got["wall / floor"]["value"] > 0 and "local-work floor" in got["wall / floor"]["note"]


def test_retrieval_measures_every_mode(smoke_run: dict) -> None:  # type: ignore[type-arg]
    got = figures(smoke_run, "retrieval")
    for mode in ("vector", "bm25", "hybrid"):
        assert 0 < got[f"{mode} p50"]["value"] <= got[f"{mode} p99"]["value"]
    assert got["Chroma on disk"]["value"] > 0 and got["BM25 on disk"]["value"] > 0
    # the default fuses the chunks' lines; the same pipeline without them is timed beside it
    assert got["line index on disk"]["value"] > 0 and got["line index build"]["value"] > 0
    assert got["hybrid+local, no lines p95"]["value"] > 0 and "line ranking adds, p95" in got


def test_answer_takes_each_route(smoke_run: dict) -> None:  # type: ignore[type-arg]
    titles = [t["title"] for t in smoke_run["tables"] if t["bench"] == "answer"]
    assert any("route recorded: flash" in t for t in titles)
    assert any("route recorded: pro" in t for t in titles)
    assert any("route recorded: offline" in t for t in titles)
    assert figures(smoke_run, "answer")["cache lookup (hit)"]["value"] is not None


def test_answer_times_every_question_at_the_length_cap(smoke_run: dict) -> None:  # type: ignore[type-arg]
    from bench.answer_bench import WORST_PIECES

    got = figures(smoke_run, "answer")
    slowest = got["slowest question at the cap"]
    assert slowest["value"] > 0
    assert all(repr(piece.strip()[:8]) in slowest["note"] for piece in WORST_PIECES)
    assert got["slowest at the cap / typical"]["met"] is not None


def test_serve_streams_every_session_and_only_the_binding_limit_refuses(smoke_run: dict) -> None:  # type: ignore[type-arg]
    tables = {t["title"]: {f["name"]: f for f in t["figures"]} for t in smoke_run["tables"] if t["bench"] == "serve"}
    [open_limit] = [t for title, t in tables.items() if title.endswith("concurrent sessions")]
    [binding] = [t for title, t in tables.items() if "binding" in title]
    assert open_limit["answers streamed to the end"]["value"] == open_limit["sessions"]["value"]
    assert "0 served from the answer cache" in open_limit["answers streamed to the end"]["note"]
    assert open_limit["TTFB p95"]["value"] > 0
    assert binding["429 with Retry-After (deliberate)"]["value"] > 0
    for table in (open_limit, binding):
        assert table["other errors"]["value"] == 0, table["other errors"]["note"]
        assert table["429s the fake Gemini sent"]["value"] == 0
