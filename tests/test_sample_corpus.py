"""The sample corpus and its test set: PDFs rebuild identically, and every label points at its answer.

The evaluation is only as good as its labels. A page label that is off by one makes a
correct citation count as wrong, so these tests read the committed PDFs and check that each
reference answer's key figures are really on the pages the test set names.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

import pypdf
import pytest

from rag.eval.testset import Relevant, TestCase, load_testset
from rag.refusal import NOT_IN_DOCUMENTS
from tests.fakes.scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SOURCES = ROOT / "scripts" / "corpus_src"
TESTSET = CORPUS / "eval" / "testset.jsonl"
PDF_DIR = CORPUS / "pdf"
REFUSAL = NOT_IN_DOCUMENTS  # what the answering prompt tells a model to reply
DATED = re.compile(r"as\s+of\s+2025-09", re.I)  # the corpus dates its figures; lines may wrap inside


builder = load_script("build_corpus_pdfs")


@cache
def pdf_pages(source: str) -> tuple[str, ...]:
    return tuple(page.extract_text() for page in pypdf.PdfReader(CORPUS / source).pages)


@cache
def cases() -> tuple[TestCase, ...]:
    testset = load_testset(TESTSET)
    assert not testset.problems, [str(p) for p in testset.problems]
    return tuple(testset.cases)


def _ungroup(text: str) -> str:
    """1,024 and 1024 are the same figure; answers and documents may write either."""
    return re.sub(r"(?<=\d),(?=\d{3})", "", text)


_UNITS = r"MB|GB|ms|hours?|minutes?|seconds?|days?"  # units that make a bare number specific
_FIGURE = re.compile(rf"(?<![\w.-])\$?(\d[\d.,/]*\d|\d)%?(?:[-\s]({_UNITS})\b)?")


def key_terms(reference: str) -> set[str]:
    """The checkable part of an answer: figures (with their unit, when one follows), identifiers, codes.

    Dates are left out: every page carries "as of 2025-09", so they locate nothing.
    """
    text = re.sub(r"\b20\d\d-\d\d\b", " ", _ungroup(reference))
    terms = set()
    for match in _FIGURE.finditer(text):
        figure, unit = match.group(1), match.group(2)
        unit = unit[:-1] if unit and unit.endswith("s") and unit != "ms" else unit
        terms.add(f"{figure} {unit}" if unit else match.group(0).lstrip("$"))
    for token in text.split():
        word = token.strip(".,;:()\"'")
        if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", word) or re.search(r"[a-z][=_]|[A-Z]+-\d", word):
            terms.add(word)
    return terms


def contains(text: str, term: str) -> bool:
    pattern = r"[-\s]+".join(re.escape(part) for part in term.split()) + (r"s?" if " " in term else "")
    return re.search(rf"(?<![\w.]){pattern}(?!\w|[.,/]\d)", _ungroup(text)) is not None


def _text_of(relevant: Relevant) -> str:
    assert relevant.source
    if relevant.page is None:
        return (CORPUS / relevant.source).read_text(encoding="utf-8")
    return pdf_pages(relevant.source)[relevant.page - 1]


@cache
def places() -> dict[tuple[str, int | None], str]:
    """Every place an answer can be: each Markdown chapter, and each page of each PDF."""
    found: dict[tuple[str, int | None], str] = {}
    for path in sorted(CORPUS.rglob("*.md")):
        found[(path.relative_to(CORPUS).as_posix(), None)] = path.read_text(encoding="utf-8")
    for path in sorted(CORPUS.rglob("*.pdf")):
        source = path.relative_to(CORPUS).as_posix()
        for number, text in enumerate(pdf_pages(source), start=1):
            found[(source, number)] = text
    return found


def hits(text: str, terms: set[str]) -> int:
    return sum(contains(text, term) for term in terms)


def own_terms(case: TestCase, relevant: Relevant) -> set[str]:
    """The answer's terms this place must supply: in a multi-hop case, those no other place holds."""
    terms = key_terms(case.reference_answer)
    others = [_text_of(other) for other in case.relevant if other != relevant]
    return {term for term in terms if not any(contains(text, term) for text in others)}


# --- the documents ---------------------------------------------------------------------


def test_corpus_has_the_documents_the_handbook_promises() -> None:
    markdown = sorted(CORPUS.glob("*.md"))
    pdfs = sorted(PDF_DIR.glob("*.pdf"))
    assert len(markdown) >= 7 and len(pdfs) >= 5 and len(markdown) + len(pdfs) >= 12


def test_ingesting_the_corpus_folder_reads_the_handbook_and_nothing_else() -> None:
    """`python -m ingest corpus/` (the README's first command, and the sample set's ingest)
    reads every file of a type it takes under corpus/: a record of measurements kept in
    corpus/eval/ as Markdown would have been answered from as a chapter of the handbook."""
    from rag.filetypes import SUPPORTED

    read = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.suffix.lower() in SUPPORTED}
    handbook = {p.relative_to(CORPUS).as_posix() for p in [*CORPUS.glob("*.md"), *PDF_DIR.glob("*.pdf")]}
    assert read == handbook


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.md")), ids=lambda p: p.name)
def test_markdown_chapter_has_heading_structure_length_and_dates(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert re.search(r"^## ", text, re.M) and re.search(r"^### ", text, re.M)
    assert 600 <= len(text.split()) <= 1500
    assert DATED.search(text)


@pytest.mark.parametrize("source", sorted(SOURCES.glob("*.md")), ids=lambda p: p.name)
def test_pdf_opens_with_one_page_per_source_page(source: Path) -> None:
    expected = source.read_text(encoding="utf-8").count(builder.PAGE_MARKER) + 1
    pages = pdf_pages(f"pdf/{source.stem}.pdf")
    assert len(pages) == expected and 3 <= expected <= 6
    assert f"page {expected} of {expected}" in pages[-1]
    assert all(DATED.search(page) for page in pages)


def test_build_reproduces_the_committed_pdfs_byte_for_byte(tmp_path: Path) -> None:
    built = builder.build(SOURCES, tmp_path)
    assert {p.name for p in built} == {p.name for p in PDF_DIR.glob("*.pdf")}
    for path in built:
        assert path.read_bytes() == (PDF_DIR / path.name).read_bytes(), f"{path.name} is stale: rebuild"


def test_build_refuses_a_page_that_overflows(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "long.md").write_text("# Long\n" + "A sentence that fills the page.\n\n" * 120 + "<!-- page -->\nEnd.\n")
    with pytest.raises(builder.SourceError, match="long: source page 1 does not fit"):
        builder.build(src, tmp_path / "out")


def test_build_refuses_text_outside_latin1(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "arrow.md").write_text("# Arrow\nFlash \u2192 Pro\n", encoding="utf-8")
    assert builder.main(["--src", str(src), "--out", str(tmp_path / "out")]) == 1
    with pytest.raises(builder.SourceError, match=r"arrow\.md: character '\u2192' is outside Latin-1"):
        builder.build(src, tmp_path / "out")


def test_build_parses_pages_headings_and_lists(tmp_path: Path) -> None:
    source = tmp_path / "doc.md"
    source.write_text("# Title\n## Head\nOne\nline.\n\n- **bold** item\n1. `code` step\n<!-- page -->\n### Sub\n")
    doc = builder.parse_source(source)
    assert doc.title == "Title"
    assert [[(b.kind, b.text) for b in page] for page in doc.pages] == [
        [("h2", "Head"), ("para", "One line."), ("bullet", "bold item"), ("numbered", "code step")],
        [("h3", "Sub")],
    ]


# --- the test set ----------------------------------------------------------------------


def test_testset_parses_and_covers_every_kind_of_question() -> None:
    tags = Counter(tag for case in cases() for tag in case.tags)
    assert len(cases()) >= 45
    assert tags["multi-hop"] >= 8 and tags["page-specific"] >= 8
    assert tags["follow-up"] >= 5 and tags["unanswerable"] >= 6 and tags["single-hop"] >= 10


def test_testset_kinds_have_their_shape() -> None:
    for case in cases():
        sources = {r.source for r in case.relevant}
        if "unanswerable" in case.tags:
            assert case.reference_answer == REFUSAL, case.id
        if "follow-up" in case.tags:
            assert case.history, case.id
        if "multi-hop" in case.tags:
            assert len(sources) >= 2, case.id
        if "page-specific" in case.tags:
            assert len(case.relevant) == 1 and case.relevant[0].page is not None, case.id


def test_every_relevant_source_exists_and_every_pdf_source_names_an_existing_page() -> None:
    for case in cases():
        for relevant in case.relevant:
            assert relevant.source and (CORPUS / relevant.source).is_file(), (case.id, relevant.source)
            if relevant.source.endswith(".pdf"):
                assert relevant.page is not None, (case.id, "a PDF source needs a page")
                assert 1 <= relevant.page <= len(pdf_pages(relevant.source)), (case.id, relevant.page)
            else:
                assert relevant.page is None, (case.id, "pages are for PDFs")


def test_every_labelled_place_is_where_the_reference_answers_figures_are() -> None:
    """The labelled place matches the answer's figures at least as well as any other place in the corpus,
    and a labelled PDF page holds one that no other page of that PDF has, so it is not off by one.
    In a multi-hop case each place is judged on the figures the other places do not supply."""
    for case in cases():
        if "unanswerable" in case.tags:
            continue
        assert key_terms(case.reference_answer), (case.id, "the reference answer has nothing checkable")
        for relevant in case.relevant:
            here = (relevant.source, relevant.page)
            terms = own_terms(case, relevant)
            score = {place: hits(text, terms) for place, text in places().items()}
            best_elsewhere = max(n for place, n in score.items() if place != here)
            assert score[here] and score[here] >= best_elsewhere, (case.id, here, terms)
            if relevant.page is not None:
                only_here = [
                    term
                    for term in terms
                    if [
                        place
                        for place, text in places().items()
                        if place[0] == relevant.source and contains(text, term)
                    ]
                    == [here]
                ]
                assert only_here, (case.id, here, "every figure of the answer is also on another page")


def test_key_terms_keep_figures_units_and_identifiers_and_drop_dates() -> None:
    terms = key_terms(
        'HTTP 429 RESOURCE_EXHAUSTED: $1,250.50, 2 GB, 48 hours, 88%, "alt=sse", BM25, RB-3 (as of 2025-09).'
    )
    assert terms == {
        "429",
        "RESOURCE_EXHAUSTED",
        "1250.50",
        "2 GB",
        "48 hour",
        "88%",
        "alt=sse",
        "BM25",
        "RB-3",
        "HTTP",
    }
    assert contains("a 1,250.50 bill", "1250.50") and not contains("10.305", "0.30") and not contains("$15.00", "15")
    assert contains("up to 2\nGB", "2 GB") and contains("a 48-hour expiry", "48 hour")
    assert not contains("2,048 tokens", "2 GB")
