"""scripts/beir_export.py: one of our test sets in BEIR layout, read back by rag.eval's BEIR loader."""

from __future__ import annotations

from pathlib import Path

from rag.eval.beir import load_beir
from rag.eval.testset import load_testset
from tests.fakes.scripts import load_script

beir_export = load_script("beir_export")
ROOT = Path(__file__).resolve().parent.parent


def test_the_sample_set_exports_to_a_beir_directory_with_pages_as_documents(tmp_path: Path) -> None:
    count, queries = beir_export.export(ROOT / "corpus/eval/testset.jsonl", ROOT / "corpus", tmp_path)
    beir = load_beir(tmp_path)
    assert beir.testset.problems == []
    assert len(beir.documents) == count and len(beir.testset.cases) == queries
    ids = {d.id for d in beir.documents}
    assert "quotas.md" in ids and "pdf/pricing.pdf#p2" in ids and "pdf/pricing.pdf" not in ids
    cases = load_testset(ROOT / "corpus/eval/testset.jsonl").cases
    standalone = [c for c in cases if not c.unanswerable and not c.history]
    assert queries == len(standalone)
    by_id = {c.id: c for c in beir.testset.cases}
    page_case = next(c for c in standalone if any(e.page for e in c.relevant))
    entry = next(e for e in page_case.relevant if e.page)
    wanted = next(d for d in beir.documents if d.id == f"{entry.source}#p{entry.page}")
    assert wanted.filename in {r.source for r in by_id[page_case.id].relevant}
