from __future__ import annotations

import re
from dataclasses import replace

from markdown_it import MarkdownIt

from ingest.report import FileOutcome, IngestReport, Status
from rag.answer import AnswerRecord, Citation, Route, SentenceCheck
from rag.stores import StoredFile
from rag.types import Message, Usage
from ui import render, safe
from ui.corpus import CollectionInfo
from ui.session import SessionState, SessionTotals, Turn
from ui.uploads import UploadResult

EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


def citation(n: int, snippet: str = "text", page: int | None = 2) -> Citation:
    return Citation(n, f"c{n}", f"doc{n}.pdf", page, "Intro > Limits", snippet, 0.5)


def record(**kw: object) -> AnswerRecord:
    base: dict[str, object] = dict(
        question="q",
        standalone_question="q",
        answer="Ten per minute [1].",
        citations=[citation(1)],
        sources=[citation(1), citation(2)],
        route=Route("flash", "gemini-3.8-flash", "context 900 tokens <= 24,000"),
        usage=Usage(prompt_tokens=900, output_tokens=100),
        cost_usd=0.00052,
        ttft_s=0.4,
    )
    base.update(kw)
    return AnswerRecord(**base)  # type: ignore[arg-type]


def assert_inert(html: str) -> None:
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=" in html


def test_document_and_model_html_is_escaped_everywhere_it_is_shown() -> None:
    hostile = record(question=EVIL, answer=EVIL, citations=[citation(1, EVIL)], sources=[citation(1, EVIL)])
    turn = Turn(EVIL, answer=EVIL + " [1]", status="done", record=hostile, passages={1: EVIL})
    state = SessionState(turns=[turn])
    assert_inert(render.conversation_html(state, None))
    assert_inert(render.popover_html(citation(1, EVIL), turn))
    assert_inert(render.sources_html(0, Turn(EVIL, status="done", record=hostile)))
    welcome = render.Welcome((CollectionInfo(EVIL, 1, 1, 1, "e"),), EVIL, (EVIL,))
    assert_inert(render.welcome_html(welcome))
    assert_inert(render.corpus_html([CollectionInfo(EVIL, 1, 1, 1, "e")]))
    assert_inert(render.details_html(record(route=Route("flash", EVIL, EVIL))))
    report = IngestReport("corpus", "e", files=[FileOutcome(EVIL, Status.FAILED, reason=EVIL)])
    assert_inert(render.upload_summary(UploadResult(rejected=[EVIL], report=report)))


def test_citations_become_chips_and_invented_numbers_stay_text() -> None:
    turn = Turn("q", answer="Ten per minute [1]. Twenty [2, 1]. Nine [7].", status="done", record=record(),
                passages={1: "Intro text. Ten requests per minute is the limit. More text.", 2: "Other."})
    html = render.conversation_html(SessionState(turns=[turn]), None)
    assert html.count("class='cite'") == 3 and "[7]" in html
    assert "<mark>Ten requests per minute is the limit.</mark>" in html
    assert "aria-label='Source 1: doc1.pdf, page 2'" in html
    ids = re.findall(r"id='(pop-[^']+)'", html)  # [1] is cited twice: each chip its own popover
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(f"aria-describedby='{i}'" in html for i in ids)


def test_each_chip_marks_the_evidence_of_the_sentence_it_stands_after() -> None:
    passage = "Ten requests per minute is the limit. A lost badge is replaced for 25 euros."
    turn = Turn("q", answer="Ten per minute [1].\n\nLost badges cost 25 euros [1].", status="done",
                record=record(), passages={1: passage})
    html = render.conversation_html(SessionState(turns=[turn]), None)
    assert "data-mark='0'" in html and "data-mark='1'" in html  # which sentence a click opens at
    first, second = html.split("data-mark='1'")
    assert "<mark>Ten requests per minute is the limit.</mark>" in first
    assert "<mark>A lost badge is replaced for 25 euros.</mark>" in second


def test_answer_footer_names_model_route_tokens_ttft_and_the_cost_paid() -> None:
    turn = Turn("q", answer="a", status="done", record=record(), spent_usd=0.00052)
    html = render.turn_html(0, turn)
    assert "gemini-3.8-flash · Flash · 1,000 tokens · first token 0.40 s · cost $0.000520" in html
    cached = Turn("q", answer="a", status="done", spent_usd=0.00001, record=record(
        route=Route("cached", "gemini-3.1-pro-preview", "same question"), cached=True, saved_usd=0.012))
    html = render.turn_html(0, cached)
    assert "cached answer · 1,000 tokens when first answered" in html and "saved $0.0120" in html
    assert "cost $0.000010" in html
    assert "(the answer came from the cache, saving $0.0120)" in render.details_html(cached.record, 0.00001)
    assert "(query embedding and answer)" in render.details_html(record(), 0.00052)  # a first question: no rewrite
    follow_up = [Message("user", "q"), Message("assistant", "a")]
    assert "the question rewrite only" in render.details_html(replace(cached.record, history=follow_up), 0.00001)
    assert "(question rewrite, query embedding and answer)" in render.details_html(record(history=follow_up), 0.00052)


def test_a_rewritten_follow_up_shows_the_question_that_was_searched() -> None:
    turn = Turn("and when?", answer="a", status="done", record=record(standalone_question="When do days expire?"))
    assert "Searched as: When do days expire?" in render.turn_html(1, turn)
    assert "Searched as" not in render.turn_html(0, Turn("q", answer="a", status="done", record=record()))


def test_turns_show_progress_stop_and_errors_readably() -> None:
    assert "Searching" in render.turn_html(0, Turn("q"))
    stopped = render.turn_html(0, Turn("q", answer="Half an", status="stopped"))
    assert "Half an" in stopped and "(stopped)" in stopped
    assert "(stopped before any answer)" in render.turn_html(0, Turn("q", status="stopped"))
    failed = render.turn_html(0, Turn("q", status="error", error="Budget <spent>"))
    assert "Budget &lt;spent&gt;" in failed and "role='alert'" in failed


def test_a_question_keeps_its_line_breaks() -> None:
    html = render.turn_html(0, Turn("First line <b>\nsecond line", status="streaming"))
    assert "First line &lt;b&gt;<br>second line" in html


def test_a_pasted_wall_of_text_shows_as_its_start_and_length() -> None:
    long = "How do retries work? " + "lorem ipsum " * 4_000
    html = render.turn_html(0, Turn(long, status="error", error="The question is too long"))
    assert len(html) < 2_000 and "How do retries work?" in html and "(48,021 characters)" in html


def test_sources_are_listed_once_in_rank_order_cited_ones_marked() -> None:
    turn = Turn("q", status="done", record=record(citations=[citation(2)], sources=[citation(1), citation(2)]))
    html = render.sources_html(0, turn, open_n=2)
    assert html.index("data-n='1'") < html.index("data-n='2'")
    assert "<b>doc2.pdf</b> · page 2 · Intro &gt; Limits" in html
    assert "<li class='uncited'>" in html and "<li class='cited'>" in html and "aria-current=true" in html


def test_totals_show_every_session_figure() -> None:
    html = render.totals_html(SessionTotals(3, 4_500, 0.0123, 1, 0.004, 0.0007, 0.9877, 1.0))
    for stat, value in [("answers", "3"), ("tokens", "4,500"), ("cost", "$0.0123"), ("cache-hits", "1"),
                        ("saved", "$0.0040"), ("implicit-cache", "$0.000700"), ("remaining", "$0.9877 / $1.00")]:
        assert f"data-stat='{stat}'><b>{value}</b>" in html
    assert "<b>3</b> answers" in html and "<b>1</b> cache hit</span>" in html
    offline = render.totals_html(SessionTotals(1, 10, 0.0, 0, 0.0, 0.0, 1.0, 1.0))
    assert "<b>1</b> answer</span>" in offline and "<b>0</b> cache hits</span>" in offline
    assert "implicit-cache" not in offline  # nothing saved by Gemini's cache: not shown as $0.0000


def test_the_documents_tab_lists_every_file_with_its_chunks() -> None:
    """Its card named six documents "and 2 more", and nothing showed the other two."""
    files = (*(StoredFile(f"doc{i}.md", i, None) for i in range(1, 8)), StoredFile(f"{EVIL}.pdf", 1, 3))
    html = render.corpus_html([CollectionInfo("notes", 8, 31, 1, "e", files=files)])
    assert "and 2 more" in html  # the card stays short
    listed = re.findall(r"<li>(.*?)</li>", html)
    assert len(listed) == 8 and "All 8 documents of notes" in html
    assert "doc7.md</span> · 7 chunks" in listed[6] and "· 1 chunk · 3 pages" in listed[7]
    assert_inert(html)


def test_empty_corpus_says_how_to_ingest() -> None:
    assert "python -m ingest PATH" in render.corpus_html([])


def test_upload_summary_lists_each_file_and_the_embedding_cost() -> None:
    report = IngestReport(
        "corpus", "e", files=[FileOutcome("a.md", Status.ADDED, 3, 300), FileOutcome("b.pdf", Status.FAILED,
                                                                                   reason="encrypted PDF"),
                              FileOutcome("c.md", Status.ADDED, 1, 40)],
        tokens=300, cost_usd=0.000045,
    )
    summary = render.upload_summary(UploadResult(rejected=["c.exe: file type .exe is not supported"], report=report))
    assert summary.splitlines()[0] == "Upload into collection **corpus**:"
    assert "- ✅ a.md: added, 3 chunks" in summary and "- ❌ b.pdf: encrypted PDF" in summary
    assert "- ✅ c.md: added, 1 chunk" in summary and "1 chunks" not in summary
    assert "- ❌ c.exe: file type .exe" in summary and "Embedding cost: $0.000045 (300 tokens)" in summary


def test_upload_summary_lists_skipped_images_and_unread_pages() -> None:
    report = IngestReport("corpus", "e", files=[
        FileOutcome("scan.pdf", Status.ADDED, 2, 90, reason="page 3 skipped: no text layer"),
        FileOutcome("photo.png", Status.SKIPPED, reason="an image: offline it has no text to index"),
    ])
    summary = render.upload_summary(UploadResult(report=report))
    assert "- ✅ scan.pdf: added, 2 chunks (page 3 skipped: no text layer)" in summary
    assert "- ⏭️ photo.png: skipped, an image: offline it has no text to index" in summary


TRACKING = (
    "Opens at 6 am ![x](http://tracker.example/leak?d=1) and ![y][img].\n"
    "Rules: [the guide](javascript:alert(1)), [mail](mailto:a@b.example), [site](http://ok.example).\n"
    "Code: `items[0](x)` and a [ref][img].\n\n"
    "[img]: http://tracker.example/ref\n"
)


def test_answers_show_images_as_text_and_keep_only_safe_links() -> None:
    html = safe.markdown(TRACKING)
    assert "<img" not in html
    for fragment in ("![x](http://tracker.example/leak?d=1)", "![y](http://tracker.example/ref)",
                     "[the guide](javascript:alert(1))", "<code>items[0](x)</code>"):
        assert fragment in html
    links = re.findall(r'<a href="([^"]+)" rel="([^"]+)">', html)
    assert {href for href, _ in links} == {"mailto:a@b.example", "http://ok.example", "http://tracker.example/ref"}
    assert all({"noopener", "noreferrer"} <= set(rel.split()) for _, rel in links)


def test_gradio_markdown_gets_text_with_no_image_and_no_link_left() -> None:
    """Rendered by a CommonMark parser, as Gradio renders it: no <img> and no <a> at all;
    every character the document had is still on the page."""
    html = MarkdownIt("commonmark").render(safe.inert_markdown(TRACKING))
    assert "<img" not in html and "<a " not in html
    shown = html.replace("\u2060", "")
    for fragment in ("![x](http://tracker.example/leak?d=1)", "[the guide](javascript:alert(1))",
                     "<code>items[0](x)</code>", "[img]: http://tracker.example/ref"):
        assert fragment in shown
    failed = FileOutcome("![x](http://tracker.example/a).md", Status.FAILED, reason="[r](javascript:x)")
    summary = render.upload_summary(UploadResult(report=IngestReport("corpus", "offline", files=[failed])))
    assert "](" not in summary.replace("]\u2060(", "")


def test_citation_checks_mark_an_unsupported_chip_and_sum_up_under_the_answer() -> None:
    checks = [
        SentenceCheck("Ten per minute.", (1,), "supported", 1.0),
        SentenceCheck("Twenty per hour.", (2,), "unsupported", 0.1, "no figure 20 in passage 2"),
    ]
    turn = Turn("q", answer="Ten per minute [1]. Twenty per hour [2].", status="done",
                record=record(checks=checks), passages={1: "Ten per minute.", 2: "Other."})
    html = render.turn_html(0, turn)
    assert "class='cite' data-act='cite' data-turn='0' data-n='1'" in html
    assert "class='cite unsupported' data-act='cite' data-turn='0' data-n='2'" in html
    assert "Not supported by this passage: no figure 20 in passage 2" in html
    assert "⚠ 1 of 2 cited sentences supported" in html


def test_one_cited_sentence_is_counted_in_the_singular() -> None:
    """An answer with one claim said "✓ 1 of 1 cited sentences supported" under it."""
    checks = [SentenceCheck("Ten per minute.", (1,), "supported", 1.0)]
    turn = Turn("q", answer="Ten per minute [1].", status="done", record=record(checks=checks),
                passages={1: "Ten per minute."})
    assert "✓ 1 of 1 cited sentence supported</span>" in render.turn_html(0, turn)
    assert render.checks_html(checks) == "1 of 1 cited sentence supported by their source"


def test_a_popover_shows_the_passage_without_markdown_block_syntax() -> None:
    passage = "## Limits\n\n- Ten requests per minute.\n- Retry after 30 s.\n"
    shown = render.excerpt_html(passage, "- Retry after 30 s.")
    assert shown == "Limits Ten requests per minute. <mark>Retry after 30 s.</mark>"


def test_the_corpus_panel_says_which_embedder_built_each_collection() -> None:
    html = render.corpus_html([CollectionInfo("notes", 2, 9, 1, "offline:all-MiniLM-L6-v2-int8:384")])
    assert "searched with all-MiniLM-L6-v2-int8 (offline, 384 dims)" in html
    assert "searched with the embedder that built it" in html


def test_a_code_block_quoted_on_one_line_is_marked_in_its_passage():
    """A code unit is quoted with its lines joined, without a shell's "\\" continuations, and a
    YAML list's "- " markers stand between its words in the passage: neither was found, so the
    popover marked nothing (a review's repro)."""
    passage = ("Start the server:\n\n```sh\ndocker run --rm -p 8080:8080 \\\n  gemrag/server:latest\n```\n\n"
               "Steps:\n\n```yaml\nsteps:\n  - name: checkout the repository\n```\n")
    shell = render.excerpt_html(passage, "docker run --rm -p 8080:8080 gemrag/server:latest")
    assert "<mark>docker run --rm -p 8080:8080 \\ gemrag/server:latest</mark>" in shell
    yaml = render.excerpt_html(passage, "steps: - name: checkout the repository")
    assert "<mark>steps: name: checkout the repository</mark>" in yaml


def test_a_reply_quoting_a_code_block_shows_its_lines_and_a_chip_after_it_none_inside() -> None:
    """An offline reply quoted a script or a run of shell commands on one line, and a "[1]" in
    quoted code ("sys.argv[1]") became a chip inside the code: now the block keeps its lines,
    its chip stands after it and marks the code's sentence in the passage, and the code's own
    brackets stay code."""
    passage = "Read the first argument:\n\n```python\nimport sys\nname = sys.argv[1]\n```\n"
    answer = ("Based on your documents:\n\n- Read the first argument:\n  ```\n  import sys\n  name = sys.argv[1]\n"
              "  ```\n  [1]\n- Also `argv[2]` is there [1]")
    turn = Turn("q", answer=answer, status="done", record=record(), passages={1: passage})
    html = render.conversation_html(SessionState(turns=[turn]), None)
    assert "<pre><code>import sys\nname = sys.argv[1]\n</code></pre>" in html
    assert "<code>argv[2]</code>" in html
    assert html.count("class='cite'") == 2 and "data-mark='1'" in html  # the two marks, aligned
    block = html.split("data-mark='1'")[0]
    assert "<mark>import sys name = sys.argv[1]</mark>" in block


def test_a_popover_shows_a_code_block_without_its_fences() -> None:
    """The popover showed a passage's "```python" and "```" lines as text around the code."""
    passage = "Read the first argument:\n\n```python\nimport sys\nname = sys.argv[1]\n```\n\nThen print it."
    shown = render.excerpt_html(passage, "import sys name = sys.argv[1]")
    assert "```" not in shown and "<mark>import sys name = sys.argv[1]</mark> Then print it." in shown


def test_a_mark_after_a_block_that_opens_its_item_reads_the_code_alone() -> None:
    """A review's repro: the reply's first item a block alone took "Based on your documents:"
    as its lead-in, and "--prune" lost its dashes."""
    from ui.evidence import citation_marks

    answer = "Based on your documents:\n\n- ```\n  --prune old\n  ```\n  [1]\n- Then:\n  ```\n  ls -la\n  ```\n  [2]"
    assert citation_marks(answer) == [({1}, "--prune old"), ({2}, "Then: ls -la")]
