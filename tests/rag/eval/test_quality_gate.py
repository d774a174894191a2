"""The real regression gate on the sample corpus: retrieval quality of the shipped defaults
may not fall below the committed baseline (corpus/eval/baseline-retrieval.json)."""

from pathlib import Path

import pytest

from rag.eval.cli import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_sample_corpus_retrieval_holds_the_baseline(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(
        [
            "corpus/eval/testset.jsonl",
            "--retrieval-only",
            "--baseline", "corpus/eval/baseline-retrieval.json",
            "--out", str(tmp_path / "out"),
            "--data-dir", str(tmp_path / "data"),
            "--quiet",
        ]
    )
    assert code == 0, "retrieval on corpus/eval fell below the baseline: see the report above"
