"""The test sets over real documents (scripts/testsets.py): well-formed, labelled with
evidence, and every quoted piece of evidence really in the file (and page) the case names.

The documents come from Debian packages that CI does not install for these tests: the label
checks run where the package is installed and are skipped elsewhere; everything else runs on
the committed files alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.eval.testset import load_testset
from rag.settings import load_settings
from tests.fakes.scripts import load_script

testsets = load_script("testsets")
REAL_SETS = [s for s in testsets.doc_sets().values() if s.installed_root is not None]


def test_there_are_real_document_sets_beside_the_sample() -> None:
    names = {s.name for s in REAL_SETS}
    assert {"python-docs", "glpk", "asymptote"} <= names
    assert any(f.endswith(".html") for s in REAL_SETS for f in s.files)
    assert any(f.endswith(".pdf") for s in REAL_SETS for f in s.files)


@pytest.mark.parametrize("doc_set", REAL_SETS, ids=lambda s: s.name)
def test_set_is_large_varied_and_every_answerable_case_quotes_its_evidence(doc_set) -> None:  # type: ignore[no-untyped-def]
    testset = load_testset(doc_set.testset)
    assert not testset.problems, [str(p) for p in testset.problems]
    cases = testset.cases
    assert len(cases) >= 80
    unanswerable = [c for c in cases if c.unanswerable]
    # At least one in fourteen, and up to three in ten: with 20 more near-miss and farther
    # questions per set (2026-12-05), one question moves a set's refusal rate by about 3
    # points, where it moved 11 with 9.
    assert 0.07 <= len(unanswerable) / len(cases) <= 0.30
    tags = {t for c in cases for t in c.tags}
    assert {"multi-hop", "follow-up", "unanswerable"} <= tags
    assert all(c.history for c in cases if "follow-up" in c.tags)
    assert all(len({(r.source, r.page) for r in c.relevant}) >= 2 for c in cases if "multi-hop" in c.tags)
    chosen = set(doc_set.files)
    assert all(r.source in chosen for c in cases for r in c.relevant)
    raw = [json.loads(line) for line in doc_set.testset.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert all(r.get("evidence") for r in raw if "unanswerable" not in r["tags"])
    if doc_set.files[0].endswith(".pdf"):
        assert all(r.page for c in cases for r in c.relevant), "PDF cases name their pages"


@pytest.mark.slow
@pytest.mark.parametrize("doc_set", REAL_SETS, ids=lambda s: s.name)
def test_every_quoted_evidence_is_in_its_document(doc_set, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if not all((doc_set.installed_root / f).is_file() for f in doc_set.files):
        pytest.skip(f"Debian package {doc_set.package} is not installed")
    monkeypatch.setenv("GEMRAG_DATA_DIR", str(tmp_path))
    assert testsets.verify_installed(doc_set) == []


def test_verify_reports_a_quote_missing_from_its_page(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from fpdf import FPDF

    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = FPDF()
    for text in ("The pump runs at 40 litres per minute.", "Replace the filter every 90 days."):
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.cell(text=text)
    pdf.output(str(docs / "manual.pdf"))
    cases = tmp_path / "manual.jsonl"
    rows = [
        {"id": "ok", "question": "how fast is the pump?", "reference_answer": "40 litres per minute",
         "relevant": [{"source": "manual.pdf", "page": 1}], "tags": [],
         "evidence": [{"source": "manual.pdf", "page": 1, "quote": "40 litres per  minute"}]},
        {"id": "wrong-page", "question": "filter?", "reference_answer": "every 90 days",
         "relevant": [{"source": "manual.pdf", "page": 1}], "tags": [],
         "evidence": [{"source": "manual.pdf", "page": 1, "quote": "every 90 days"}]},
        {"id": "no-evidence", "question": "colour?", "reference_answer": "blue",
         "relevant": [{"source": "manual.pdf", "page": 2}], "tags": []},
    ]
    cases.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    monkeypatch.setenv("GEMRAG_DATA_DIR", str(tmp_path / "data"))
    doc_set = testsets.DocSet("manual", cases, "manual-doc", docs, ("manual.pdf",))
    problems = testsets.verify_installed(doc_set)
    assert len(problems) == 2
    assert "wrong-page" in problems[0] and "page 1" in problems[0]
    assert "no-evidence" in problems[1] and "no evidence" in problems[1]


def test_install_copies_exactly_the_chosen_files(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    installed = tmp_path / "usr-share-doc"
    (installed / "library").mkdir(parents=True)
    for name in ("library/json.html", "library/os.html", "index.html"):
        (installed / name).write_text(f"<h1>{name}</h1>", encoding="utf-8")
    monkeypatch.setenv("GEMRAG_DATA_DIR", str(tmp_path / "data"))
    doc_set = testsets.DocSet("docs", tmp_path / "x.jsonl", "some-doc", installed, ("library/json.html", "index.html"))
    corpus = testsets.install(doc_set)
    (corpus / "library" / "dropped.html").write_text("stale", encoding="utf-8")
    (installed / "index.html").write_text("<h1>changed</h1>", encoding="utf-8")
    corpus = testsets.install(doc_set)
    found = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file())
    assert found == ["index.html", "library/json.html"]
    assert (corpus / "index.html").read_text(encoding="utf-8") == "<h1>changed</h1>"


def test_install_names_the_package_when_it_cannot_install(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(testsets.os, "geteuid", lambda: 1000)
    doc_set = testsets.DocSet("docs", tmp_path / "x.jsonl", "python3.11-doc", tmp_path / "absent", ("a.html",))
    with pytest.raises(SystemExit, match=r"apt-get install -y python3\.11-doc"):
        testsets.install(doc_set)


def test_crossval_reports_each_set_with_a_weight_chosen_on_the_others() -> None:
    rrf, low, mid, high = (testsets.Fusion("rrf"), testsets.Fusion("convex", 0.3),
                           testsets.Fusion("convex", 0.5), testsets.Fusion("convex", 0.7))

    def row(ndcg: float) -> dict[str, float]:
        return {"ndcg10": ndcg, "mrr": ndcg, "hit": 1.0, "recall": 1.0}

    scores = {
        "a": {rrf: row(0.5), low: row(0.9), mid: row(0.6), high: row(0.1)},
        "b": {rrf: row(0.5), low: row(0.8), mid: row(0.7), high: row(0.2)},
        "c": {rrf: row(0.5), low: row(0.1), mid: row(0.6), high: row(0.9)},
    }
    table = testsets.markdown_crossval(scores, [low, mid, high])
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert lines["a"].startswith("| a | 0.5 | 0.600 |")  # b and c prefer 0.5 (0.7+0.6 > 0.8+0.1)
    assert lines["b"].startswith("| b | 0.5 | 0.700 |")  # a and c: 1.2 at 0.5, 1.0 at 0.3 and 0.7
    assert lines["c"].startswith("| c | 0.3 | 0.100 |")  # a and b both prefer 0.3
    assert table.rstrip().endswith("convex 0.5")  # all three: 1.9 (0.5) > 1.8 (0.3) > 1.2 (0.7)


def _tiny_set(root: Path, name: str, pages: dict[str, str], cases: list[dict[str, object]]) -> object:
    docs = root / f"{name}-installed"
    for page, text in pages.items():
        (docs / page).parent.mkdir(parents=True, exist_ok=True)
        (docs / page).write_text(f"<html><body><h1>{page}</h1><p>{text}</p></body></html>", encoding="utf-8")
    testset = root / f"{name}.jsonl"
    testset.write_text("\n".join(json.dumps(c) for c in cases) + "\n", encoding="utf-8")
    return testsets.DocSet(name, testset, f"{name}-doc", docs, tuple(pages))


@pytest.mark.slow
def test_crossval_runs_rag_eval_per_setting_and_reports_each_set(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GEMRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GEMRAG_FUSION", raising=False)
    monkeypatch.delenv("GEMRAG_FUSION_ALPHA", raising=False)

    def case(i: str, question: str, page: str) -> dict[str, object]:
        return {"id": i, "question": question, "reference_answer": "x", "relevant": [{"source": page}], "tags": []}

    pumps = _tiny_set(tmp_path, "pumps", {
        "pump.html": "The pump moves 40 litres of water per minute and hums quietly.",
        "filter.html": "Replace the charcoal filter every 90 days to keep the water clean.",
        "hose.html": "The garden hose is 15 metres long and made of green rubber.",
    }, [case("p1", "how many litres per minute does the pump move?", "pump.html"),
        case("p2", "when do I swap the charcoal filter?", "filter.html")])
    stars = _tiny_set(tmp_path, "stars", {
        "sun.html": "The Sun is a yellow dwarf star at the centre of the solar system.",
        "moon.html": "The Moon orbits the Earth once every 27 days.",
    }, [case("s1", "what kind of star is the sun?", "sun.html"),
        case("s2", "how long does the moon take to go round the earth?", "moon.html")])
    report = testsets.crossval([pumps, stars], [0.5], tmp_path / "cv", [])
    assert (tmp_path / "cv" / "crossval.md").read_text(encoding="utf-8").strip() == report.strip()
    assert all((tmp_path / "cv" / s / run / "report.json").is_file()
               for s in ("pumps", "stars") for run in ("rrf", "convex-0.5"))
    rows = {line.split(" | ")[0].strip("| "): line for line in report.splitlines() if line.startswith("| ")}
    assert rows["convex 0.5"].endswith("| 1.000 |")  # every question finds its page first
    assert rows["pumps"].startswith("| pumps | 0.5 | 1.000 |") and rows["stars"].startswith("| stars | 0.5 | 1.000 |")
    assert "GEMRAG_FUSION" not in os.environ and "GEMRAG_FUSION_ALPHA" not in os.environ
    assert "second ranking stage: none" in report  # the fused order alone, then the default pipeline's
    assert f"second ranking stage: {load_settings().rerank}" in report
