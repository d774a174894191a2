"""A deterministic benchmark corpus: Markdown handbooks and multi-page PDFs of a chosen size.

Benchmarks need corpora of 1k, 5k or 20k chunks that anyone can rebuild bit for bit, so the
text is drawn from a seeded generator over a technical vocabulary (Zipf-weighted, so BM25
sees realistic term statistics). Each Markdown section and each PDF page holds about one
chunk of text under the offline chunk profile, which makes the chunk count predictable;
the benchmarks always report the count the pipeline actually produced. One file is much
larger than the rest: it is the one the removal benchmark deletes.
"""

from __future__ import annotations

import itertools
import random
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

VOCABULARY = """
model request token quota limit rate minute day project key billing price cost input output
cache context window stream response chunk embedding vector index search query document page
section heading source citation answer question retrieval ranking score fusion hybrid dense
sparse keyword lexical semantic batch retry backoff delay error status server client timeout
deadline latency throughput concurrency thread process memory disk storage collection upsert
delete manifest hash version corpus ingest loader parser splitter overlap window budget ledger
session user tenant region endpoint deployment container service monitor metric alert trace
log dashboard incident security secret rotation permission prompt injection instruction system
evaluation judge metric recall precision relevance faithfulness reference label dataset split
flash pro lite tier free paid enterprise schedule job queue worker pipeline stage step config
file folder path format markdown pdf html text table figure image caption footnote appendix
schema field value type default option flag parameter argument setting environment variable
upgrade release changelog deprecation migration compatibility fallback route threshold policy
the a of and to in for with on by from at as is are be can should must may will when which
that this these each every more less than after before during within without across between
""".split()

SECTION_WORDS = 144  # about 170 MiniLM word pieces: one chunk at the 200-token offline profile
SECTIONS_PER_MARKDOWN = 12
PAGES_PER_PDF = (3, 8)
PDF_SHARE = 0.4  # of chunks, the rest in Markdown
LARGE_SHARE = 0.05  # of chunks in the one large file
PDF_LINE_CHARS = 95
FIXED_DATE = datetime(2025, 1, 1, tzinfo=UTC)


class TextSource:
    """Seeded sentences, paragraphs and queries over the vocabulary."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cum_weights = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(VOCABULARY))))
        shuffled = VOCABULARY[:]
        random.Random(seed + 1).shuffle(shuffled)
        self.words = shuffled

    def sentence(self, n_words: int) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cum_weights, k=n_words)
        text = " ".join(words)
        return text[0].upper() + text[1:] + "."

    def paragraph(self, n_words: int) -> str:
        sentences = []
        while n_words > 0:
            length = min(n_words, self.rng.randint(8, 18))
            sentences.append(self.sentence(length))
            n_words -= length
        return " ".join(sentences)

    def title(self) -> str:
        return " ".join(self.rng.choices(self.words[:80], k=3)).title()

    def query(self) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.cum_weights, k=self.rng.randint(4, 9))) + "?"


def synthetic_texts(n: int, seed: int = 11) -> list[str]:
    """Chunk-sized texts for benchmarks that build a store without files."""
    source = TextSource(seed)
    return [source.paragraph(SECTION_WORDS) for _ in range(n)]


def queries(n: int, seed: int = 13) -> list[str]:
    source = TextSource(seed)
    return [source.query() for _ in range(n)]


@dataclass(frozen=True)
class GeneratedCorpus:
    root: Path
    files: tuple[Path, ...]
    large_file: Path
    sections: int  # Markdown sections + PDF pages: about one chunk each


def generate(root: Path, chunks: int, seed: int = 7) -> GeneratedCorpus:
    """Writes about `chunks` chunks' worth of files under `root` (which must be empty or
    absent); the same arguments always produce the same bytes."""
    root.mkdir(parents=True, exist_ok=True)
    source = TextSource(seed)
    large_pages = max(2, round(chunks * LARGE_SHARE))
    pdf_pages = max(1, round(chunks * PDF_SHARE) - large_pages)
    md_sections = max(1, chunks - large_pages - pdf_pages)

    files = [_write_pdf(root / "large" / "complete-reference.pdf", source, large_pages)]
    large = files[0]
    for i, pages in enumerate(_split(pdf_pages, source.rng, PAGES_PER_PDF)):
        files.append(_write_pdf(root / "pdf" / f"guide-{i:04d}.pdf", source, pages))
    for i, sections in enumerate(_split(md_sections, source.rng, (SECTIONS_PER_MARKDOWN,) * 2)):
        files.append(_write_markdown(root / "md" / f"chapter-{i:04d}.md", source, sections))
    return GeneratedCorpus(root, tuple(files), large, large_pages + pdf_pages + md_sections)


def edit_files(corpus: GeneratedCorpus, share: float, seed: int = 17) -> list[Path]:
    """Changes one section's text in `share` of the files (at least one), as an editor
    would: the files' other chunks keep their content."""
    rng = random.Random(seed)
    markdown = [f for f in corpus.files if f.suffix == ".md"]
    picked = rng.sample(markdown, max(1, round(len(corpus.files) * share)))
    for path in picked:
        path.write_text(path.read_text() + f"\n\nRevision note {rng.randint(0, 10**9)}: updated limits.\n")
    return picked


def _split(total: int, rng: random.Random, bounds: tuple[int, int]) -> list[int]:
    sizes = []
    while total > 0:
        size = min(total, rng.randint(*bounds))
        sizes.append(size)
        total -= size
    return sizes


def _write_markdown(path: Path, source: TextSource, sections: int) -> Path:
    lines = [f"# {source.title()}", ""]
    for _ in range(sections):
        lines += [f"## {source.title()}", "", source.paragraph(SECTION_WORDS), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _write_pdf(path: Path, source: TextSource, pages: int) -> Path:
    """Lines are wrapped here and placed with `text()`: fpdf2's `multi_cell` measures every
    glyph and took most of the generation time."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_auto_page_break(auto=False)
    for _ in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 14)
        pdf.text(15, 20, source.title())
        pdf.set_font("Helvetica", size=10)
        for row, line in enumerate(textwrap.wrap(source.paragraph(SECTION_WORDS), PDF_LINE_CHARS)):
            pdf.text(15, 32 + 5 * row, line)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
