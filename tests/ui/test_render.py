from __future__ import annotations

from ingest.report import FileOutcome, IngestReport, Status
from rag.answer import AnswerRecord, Citation, Route
from rag.types import Usage
from ui import render
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
    turn = Turn(EVIL, answer=EVIL, status="done", record=hostile)
    for message in render.turn_messages(turn):
        assert_inert(message["content"])
    assert_inert(render.sources_html(hostile))
    assert_inert(render.passage_html(citation(1, EVIL)))
    assert_inert(render.corpus_html([CollectionInfo(EVIL, 1, 1, 1, "e")]))
    assert_inert(render.details_html(record(route=Route("flash", EVIL, EVIL))))
    report = IngestReport("corpus", "e", files=[FileOutcome(EVIL, Status.FAILED, reason=EVIL)])
    assert_inert(render.upload_summary(UploadResult(rejected=[EVIL], report=report)))


def test_answer_footer_names_model_route_tokens_ttft_and_cost() -> None:
    footer = render.answer_footer(record())
    assert footer == "gemini-3.8-flash · Flash · 1,000 tokens · first token 0.40 s · $0.000520"
    cached = render.answer_footer(
        record(route=Route("cached", "gemini-3.1-pro-preview", "same question"), cached=True, saved_usd=0.012)
    )
    assert "cached answer · 1,000 tokens when first answered" in cached and "saved $0.0120" in cached
    assert "escalated to Pro" in render.answer_footer(record(route=Route("pro", "gemini-3.1-pro-preview", "long")))


def test_turns_show_progress_stop_and_errors_readably() -> None:
    assert "Searching" in render.turn_messages(Turn("q"))[1]["content"]
    stopped = render.turn_messages(Turn("q", answer="Half an", status="stopped"))[1]["content"]
    assert stopped.startswith("Half an") and "(stopped)" in stopped
    failed = render.turn_messages(Turn("q", status="error", error="Budget <spent>"))[1]["content"]
    assert "Budget &lt;spent&gt;" in failed


def test_sources_list_cited_passages_first_with_file_page_heading_and_score() -> None:
    html = render.sources_html(record(citations=[citation(2)], sources=[citation(1), citation(2)]))
    assert html.index("[2]") < html.index("[1]")
    assert "<b>doc2.pdf</b> · page 2 · Intro &gt; Limits" in html and "0.500" in html
    assert "class='uncited'" in html


def test_totals_show_every_session_figure() -> None:
    html = render.totals_html(SessionTotals(3, 4_500, 0.0123, 1, 0.004, 0.9877, 1.0))
    for stat, value in [("answers", "3"), ("tokens", "4,500"), ("cost", "$0.0123"), ("cache-hits", "1"),
                        ("saved", "$0.0040"), ("remaining", "$0.9877 / $1.00")]:
        assert f"data-stat='{stat}'><span>" in html and f"<b>{value}</b>" in html


def test_chat_messages_alternate_user_and_assistant_per_turn() -> None:
    state = SessionState(turns=[Turn("a", answer="x", status="done", record=record()), Turn("b")])
    assert [m["role"] for m in render.chat_messages(state)] == ["user", "assistant"] * 2


def test_empty_corpus_says_how_to_ingest() -> None:
    assert "python -m ingest PATH" in render.corpus_html([])


def test_upload_summary_lists_each_file_and_the_embedding_cost() -> None:
    report = IngestReport(
        "corpus", "e", files=[FileOutcome("a.md", Status.ADDED, 3, 300), FileOutcome("b.pdf", Status.FAILED,
                                                                                   reason="encrypted PDF")],
        tokens=300, cost_usd=0.000045,
    )
    summary = render.upload_summary(UploadResult(rejected=["c.exe: file type .exe is not supported"], report=report))
    assert summary.splitlines()[0] == "Upload into collection **corpus**:"
    assert "- ✅ a.md: added, 3 chunks" in summary and "- ❌ b.pdf: encrypted PDF" in summary
    assert "- ❌ c.exe: file type .exe" in summary and "Embedding cost: $0.000045 (300 tokens)" in summary


TRACKING = (
    "Opens at 6 am ![x](http://tracker.example/leak?d=1) and ![y][img].\n"
    "Rules: [the guide](javascript:alert(1)), [mail](mailto:a@b.example), [site](http://ok.example).\n"
    "Code: `items[0](x)` and a [ref][img].\n\n"
    "[img]: http://tracker.example/ref\n"
)


def test_markdown_leaves_no_image_and_no_link_but_shows_the_text() -> None:
    """Rendered by a CommonMark parser, as the chat renders it: no <img> and no <a> at all;
    every character the document had is still on the page."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(render.markdown(TRACKING))
    assert "<img" not in html and "<a " not in html
    shown = html.replace("\u2060", "")
    for fragment in ("![x](http://tracker.example/leak?d=1)", "[the guide](javascript:alert(1))",
                     "<code>items[0](x)</code>", "[img]: http://tracker.example/ref"):
        assert fragment in shown


def test_chat_answers_and_upload_summaries_use_inert_markdown() -> None:
    turn = Turn("q", answer=TRACKING, status="done", record=record(answer=TRACKING))
    assert "](" not in render.turn_messages(turn)[1]["content"].replace("]\u2060(", "")
    failed = FileOutcome("![x](http://tracker.example/a).md", Status.FAILED, reason="[r](javascript:x)")
    summary = render.upload_summary(UploadResult(report=IngestReport("corpus", "offline", files=[failed])))
    assert "](" not in summary.replace("]\u2060(", "")
