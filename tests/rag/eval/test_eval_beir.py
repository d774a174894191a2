"""A BEIR-layout benchmark built by the test: read, ingested into its own collection, scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.eval.beir import load_beir, materialise
from rag.eval.cli import main
from rag.eval.results import RunReport
from rag.eval.testset import CaseError, Relevant
from rag.providers.offline import OfflineProvider

CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces the risk of heart attacks in adults at high risk."},
    {"_id": "d2", "title": "Vitamin C", "text": "Vitamin C supplements do not prevent the common cold."},
    {"_id": "d3", "title": "Sleep", "text": "Adults who sleep less than six hours have a higher risk of obesity."},
    {"_id": "doc/4", "title": "", "text": "Regular exercise lowers blood pressure in people with hypertension."},
]
QUERIES = [
    {"_id": "q1", "text": "Does vitamin C prevent colds?"},
    {"_id": "q2", "text": "Does exercise lower blood pressure?"},
    {"_id": "q3", "text": "A query nobody judged"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td2\t2\nq1\td1\t0\nq2\tdoc/4\t1\nq2\td9\t1\nq2\td3\tx\n"


def make_beir(root: Path, extra_corpus_line: str = "") -> Path:
    """The layout BEIR's loaders read: corpus.jsonl, queries.jsonl, qrels/test.tsv."""
    (root / "qrels").mkdir(parents=True)
    lines = [json.dumps(d) for d in CORPUS] + ([extra_corpus_line] if extra_corpus_line else [])
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in QUERIES) + "\n")
    (root / "qrels" / "test.tsv").write_text(QRELS)
    return root


def test_beir_is_read_with_grades_and_problems(tmp_path: Path) -> None:
    beir = load_beir(make_beir(tmp_path / "tiny-bench", extra_corpus_line='{"title": "no id"}'))
    assert beir.name == "tiny-bench" and len(beir.documents) == 4
    cases = {c.id: c for c in beir.testset.cases}
    assert set(cases) == {"q1", "q2"}  # q3 is not judged; d1's zero grade is "not relevant"
    assert cases["q1"].relevant == (Relevant(source="d2.txt", grade=2.0),)
    hashed = next(d for d in beir.documents if d.id == "doc/4").filename
    assert cases["q2"].relevant == (Relevant(source=hashed),) and "/" not in hashed
    assert [str(p) for p in beir.testset.problems] == [
        "corpus.jsonl line 5: '_id' is missing or not a non-empty string",
        "test.tsv line 5: corpus-id 'd9' is not in corpus.jsonl",
        "test.tsv line 6: score 'x' is not a number",
    ]


def test_missing_qrels_is_a_clear_error(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "b")
    (root / "qrels" / "test.tsv").unlink()
    with pytest.raises(CaseError, match=r"qrels/test\.tsv is missing"):
        load_beir(root)


def test_materialise_writes_title_and_text_and_keeps_unchanged_files(tmp_path: Path) -> None:
    beir = load_beir(make_beir(tmp_path / "b"))
    docs = materialise(beir, tmp_path / "docs")
    assert (docs / "d2.txt").read_text() == "Vitamin C\n\nVitamin C supplements do not prevent the common cold.\n"
    before = (docs / "d2.txt").stat().st_mtime_ns
    materialise(beir, docs)
    assert (docs / "d2.txt").stat().st_mtime_ns == before


def test_beir_run_ingests_its_own_collection_and_scores_retrieval(
    tmp_path: Path, offline_provider: OfflineProvider
) -> None:
    root = make_beir(tmp_path / "tiny-bench")
    out = tmp_path / "out"
    code = main([str(root), "--data-dir", str(tmp_path / "data"), "--out", str(out), "-q"],
                embedder=offline_provider, generator=offline_provider)
    assert code == 0
    report = RunReport.load(out / "report.json")
    assert report.collection == "beir-tiny-bench" and report.testset == "beir-tiny-bench"
    assert report.answers == []  # BEIR has no reference answers: retrieval only
    for mode in ("hybrid", "vector", "bm25"):
        row = next(r for r in report.retrieval if r.variant == f"{mode} k=6")
        assert row.cases == 2 and row.ndcg10 == pytest.approx(1.0)


def test_beir_ranks_documents_so_a_long_one_takes_one_rank(tmp_path: Path, offline_provider: OfflineProvider) -> None:
    """BEIR ranks documents. A long review about aspirin spans several chunks, each a good
    match: ranked as passages it took up to three of the first six places (a document-level
    table gives it one); ranked as documents, every variant lists each document once."""
    review = " ".join(
        f"Trial {n} of low-dose aspirin followed adults for {n + 2} years and recorded every heart attack, "
        f"stroke and bleeding event; the aspirin group had fewer heart attacks but more bleeding in trial {n}."
        for n in range(1, 13)
    )
    root = make_beir(tmp_path / "long-doc", extra_corpus_line=json.dumps(
        {"_id": "review", "title": "Aspirin trials", "text": review}))
    question = {"_id": "q1", "text": "Does aspirin lower the risk of heart attacks?"}
    (root / "queries.jsonl").write_text(json.dumps(question))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    out = tmp_path / "out"
    code = main([str(root), "--data-dir", str(tmp_path / "data"), "--out", str(out), "-q"],
                embedder=offline_provider, generator=offline_provider)
    assert code == 0
    report = RunReport.load(out / "report.json")
    assert report.retrieval_cases and all(
        len(set(c.retrieved)) == len(c.retrieved) and "review.txt" in c.retrieved for c in report.retrieval_cases)
    hybrid = [c for c in report.retrieval_cases if c.variant.startswith("hybrid")]
    assert hybrid and all(len(c.retrieved) == 5 for c in hybrid)  # every document there is, once
