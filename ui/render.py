"""The page's HTML: the conversation with citation chips, the first screen, the sources of an
answer, its details, the session totals and the corpus.

Everything from documents, answers and users goes through ui.safe: plain text is escaped,
Markdown is rendered without raw HTML or images and sanitised. Our own markup (chips,
buttons, popovers) is added after sanitising and carries only numbers and escaped text.
Buttons carry `data-act` (what a click does) and `data-turn`/`data-n`; the page's script
(ui/page.js) turns a click into one event for ui/handlers.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count, repeat

from ingest.report import Status
from rag.answer import AnswerRecord, Citation, Route, SentenceCheck
from rag.costs import dollars
from rag.errors import ConfigError
from rag.filetypes import marks_headings
from rag.providers.extractive import OFFLINE_NOTE
from rag.providers.quotable import section
from rag.store import check_collection_name
from rag.text import CITATION, counted, unfenced
from rag.types import place
from ui import safe
from ui.corpus import CollectionInfo
from ui.evidence import citation_marks, used_sentence
from ui.session import SessionState, SessionTotals, Turn
from ui.uploads import UploadResult

text = safe.text

ROUTE_LABELS = {
    "flash": "Flash",
    "pro": "escalated to Pro",
    "chosen": "your choice",
    "fallback": "Pro unavailable: Flash instead",
    "cached": "cached answer",
    "offline": "offline",
    "degraded": "budget spent: cheaper model",
}

OFFLINE_LINE = (
    "**Offline mode:** answers quote your documents word for word, with sources, at no cost; they "
    "cannot write new text or read images. For written answers set `GEMINI_API_KEY` and restart."
)
_THUMB = (  # Lucide's thumbs-up (ISC licence), drawn inline: no icon font, no fetch
    "<svg aria-hidden='true' viewBox='0 0 24 24' width='16' height='16' fill='none' stroke='currentColor' "
    "stroke-width='2' stroke-linecap='round' stroke-linejoin='round'{turn}><path d='M7 10v12'/><path d='M15 5.88 "
    "14 10h5.83a2 2 0 0 1 1.92 2.56l-2.33 8A2 2 0 0 1 17.5 22H4a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h2.76a2 2 0 0 0 "
    "1.79-1.11L12 2a3.13 3.13 0 0 1 3 3.88Z'/></svg>"
)
THUMBS = {"up": _THUMB.format(turn=""), "down": _THUMB.format(turn=" style='transform: rotate(180deg)'")}
POPOVER_CONTEXT = 110  # characters of the passage shown either side of the sentence used
# A question past this many characters shows its start only: a pasted document refused as too
# long (it goes back into the box whole) was a wall of text above its one-line refusal.
QUESTION_SHOWN = 600
# A citation mark in the rendered answer, or (group 1) code, whose "sys.argv[1]" is no mark.
_CITES = re.compile(rf"(<code>.*?</code>)|{CITATION.pattern}", re.S)
_BLOCK_SYNTAX = re.compile(r"(?m)^\s*(?:#{1,6}|[-*+•]|\d+[.)])\s+")


@dataclass(frozen=True)
class Welcome:
    """What the first screen shows before the first question."""

    collections: tuple[CollectionInfo, ...]
    collection: str  # the one questions go to
    suggestions: tuple[str, ...]


def route_label(route: Route) -> str:
    return ROUTE_LABELS.get(route.kind, route.kind)


def shown_answer(answer: str) -> str:
    """The answer without the offline answerer's note: the page says that once, up top."""
    return answer.replace(OFFLINE_NOTE, "").rstrip()


# --- the conversation ---


def conversation_html(state: SessionState, welcome: Welcome | None) -> str:
    turns = "".join(turn_html(i, t) for i, t in enumerate(state.turns) if i >= state.first_shown)
    body = turns or (welcome_html(welcome) if welcome else "")
    return f"<div class='conv' aria-live='polite'>{body}</div>"


def turn_html(index: int, turn: Turn) -> str:
    record = turn.record
    rewritten = ""
    if record and record.standalone_question.strip() != turn.question.strip():
        rewritten = f"<div class='rewritten'>Searched as: {text(record.standalone_question)}</div>"
    return (
        f"<article class='turn' data-turn='{index}' data-status='{turn.status}'>"
        f"<div class='q'><span class='who'>You</span>{_question(turn.question)}{_attached(turn)}</div>{rewritten}"
        f"<div class='a' data-testid='bot'>{_answer_body(index, turn)}{_answer_footer(index, turn)}</div>"
        "</article>"
    )


def _question(question: str) -> str:
    """As typed: its Shift+Enter line breaks kept (HTML ran the lines together)."""
    shown = text(question[:QUESTION_SHOWN]).replace("\n", "<br>")
    if len(question) <= QUESTION_SHOWN:
        return shown
    return f"{shown}… <span class='clipped'>({counted(len(question), 'character')})</span>"


def _attached(turn: Turn) -> str:
    if not turn.images:
        return ""
    return f" <span class='attached'>(with {counted(turn.images, 'image')})</span>"


def _answer_body(index: int, turn: Turn) -> str:
    if turn.status == "error":
        return f"<p class='error' role='alert'>{text(turn.error)}</p>"
    body = shown_answer(turn.answer)
    if not body:  # stopped before its first word: the empty answer still says why it is empty
        return {"streaming": "<p class='searching'>Searching your documents…</p>",
                "stopped": "<p class='stopped'>(stopped before any answer)</p>"}.get(turn.status, "")
    html = safe.markdown(body)
    sources = {c.n: c for c in turn.sources}
    if sources:
        chips = count()  # each chip's own popover id: an offline answer cites [1] after many sentences
        # The k-th mark on the page is the answer's k-th (ui.evidence) unless Markdown ate one (a link's text).
        aligned = sum(1 for m in _CITES.finditer(html) if m[2]) == len(citation_marks(turn.answer))
        marks: Iterator[int | None] = count() if aligned else repeat(None)
        html = _CITES.sub(lambda m: m[1] or _chips(index, turn, m[2], sources, chips, next(marks)), html)
    if turn.status == "stopped":
        html += "<p class='stopped'>(stopped)</p>"
    return html


def _chips(
    index: int, turn: Turn, group: str, sources: dict[int, Citation], chips: Iterator[int], mark: int | None
) -> str:
    numbers = [int(n) for n in group.split(",")]
    if not all(n in sources for n in numbers):
        return f"[{text(group)}]"  # a number the model invented stays plain text
    return "".join(chip(index, sources[n], turn, next(chips), mark) for n in numbers)


def chip(index: int, citation: Citation, turn: Turn, k: int, mark: int | None = None) -> str:
    """A numbered chip: hover or focus shows the passage, a click opens the source there.
    `k`: the chip's place in its answer, which makes its popover's id unique on the page;
    `mark`: which citation mark of the answer it is (ui.evidence.citation_marks), so its
    popover and the source it opens mark the evidence of the sentence it stands after."""
    n = citation.n
    where = spelled_place(citation)
    label = f"Source {n}: {citation.source}" + (f", {where}" if where else "")
    doubt = _doubt(turn, n)
    flag = " unsupported" if doubt else ""
    if doubt:
        label += ", not supported by it"
    at = "" if mark is None else f" data-mark='{mark}'"
    return (
        f"<button type='button' class='cite{flag}' data-act='cite' data-turn='{index}' data-n='{n}'{at} "
        f"aria-label='{text(label)}' aria-describedby='pop-{index}-{k}'>{n}"
        f"<span class='pop' role='tooltip' id='pop-{index}-{k}'>{popover_html(citation, turn, mark)}</span></button>"
    )


def popover_html(citation: Citation, turn: Turn, mark: int | None = None) -> str:
    passage = turn.passages.get(citation.n, citation.snippet)
    quote = used_sentence(turn.answer, citation.n, passage, mark, marks_headings(citation.source))
    doubt = _doubt(turn, citation.n)
    warning = f"<span class='doubt'>⚠ Not supported by this passage: {text(doubt)}</span>" if doubt else ""
    return (
        f"{warning}<span class='where'>{where_html(citation)}</span>"
        f"<span class='quote'>{excerpt_html(passage, quote)}</span>"
        "<span class='hint'>Click to open the source at this place</span>"
    )


def _doubt(turn: Turn, n: int) -> str:
    """Why the citation check (rag.citecheck) found a sentence citing [n] unsupported; "" if none was."""
    checks = turn.record.checks if turn.record else []
    return next((c.reason or c.verdict for c in checks if n in c.cited and c.verdict == "unsupported"), "")


def checks_summary(record: AnswerRecord) -> str:
    """One line under the answer: how many cited sentences their sources support."""
    cited = [c for c in record.checks if c.verdict != "uncited"]
    if not cited:
        return ""
    supported = sum(c.verdict == "supported" for c in cited)
    mark = "✓" if supported == len(cited) else "⚠"
    return (
        f"<span class='checks' data-supported='{supported}' data-cited='{len(cited)}'>"
        f"{mark} {supported} of {counted(len(cited), 'cited sentence')} supported</span>"
    )


def excerpt_html(passage: str, quote: str | None) -> str:
    """The sentence used, marked, with a little of the passage around it; the passage's
    own line breaks (PDF lines) and block syntax (Markdown headings, bullets) flattened."""
    flat = _flatten(passage)
    found = _found(flat, _flatten(quote)) if quote else None
    if found:
        at, end = found
        before, after = flat[max(0, at - POPOVER_CONTEXT) : at], flat[end : end + POPOVER_CONTEXT]
        lead = "…" if at > POPOVER_CONTEXT else ""
        tail = "…" if end + POPOVER_CONTEXT < len(flat) else ""
        return f"{lead}{text(before)}<mark>{text(flat[at:end])}</mark>{text(after)}{tail}"
    short = flat[: 2 * POPOVER_CONTEXT]
    return text(short) + ("…" if len(flat) > len(short) else "")


def _flatten(text: str) -> str:
    """The passage as the popover shows it: on one line, without Markdown's block syntax
    (headings, bullets, a code block's fences)."""
    return " ".join(_BLOCK_SYNTAX.sub("", unfenced(text)).split())


# Between two words of a quote, the passage may hold markers the quote has not: a code unit is
# quoted with its lines joined (rag.providers.quotable), so a YAML list's "- " and a shell's
# "\" line continuations stand between its words in the passage, and not in the quote.
_MARKS = re.compile(r"[-*+•>#\\]+")
_GAP = rf"\s+(?:{_MARKS.pattern}\s+)*"


def _found(flat: str, quote: str) -> tuple[int, int] | None:
    """Where the (flattened) quote stands in the flattened passage: as written, else word for
    word past such markers."""
    at = flat.find(quote)
    if at >= 0:
        return at, at + len(quote)
    words = [w for w in quote.split() if not _MARKS.fullmatch(w)]
    match = re.search(_GAP.join(map(re.escape, words)), flat) if words else None
    return match.span() if match else None


def spelled_place(citation: Citation) -> str:
    """"page 3", "slide 2", "page 3, figure": read aloud better than "p. 3"."""
    return place(citation.page, citation.unit, citation.kind, spelled=True)


def source_choice(citation: Citation) -> str:
    """A passage as the feedback form offers it: "[2] monitoring.md, Dashboards", "[1]
    handbook.pdf, page 2". Several passages of one file were four alike "[n] monitoring.md"
    lines; the innermost heading tells them apart."""
    where = [f"[{citation.n}] {citation.source}", spelled_place(citation), section(citation.heading)]
    return ", ".join(filter(None, where))


def where_html(citation: Citation) -> str:
    parts = [f"<b>{text(citation.source)}</b>"]
    if where := spelled_place(citation):
        parts.append(text(where))
    if citation.heading:
        parts.append(text(citation.heading))
    return " · ".join(parts)


def _answer_footer(index: int, turn: Turn) -> str:
    if turn.status not in ("done", "stopped") or (turn.record is None and turn.spent_usd is None):
        return ""
    parts: list[str] = []
    record = turn.record
    if record is not None:
        parts.append(f"{text(record.route.model)} · {route_label(record.route)}")
        tokens = f"{record.usage.total_tokens:,} tokens" + (" when first answered" if record.cached else "")
        if record.usage.thinking_tokens and not record.cached:
            tokens += f" ({record.usage.thinking_tokens:,} thinking)"
        parts += [tokens, f"first token {record.ttft_s:.2f} s"]
    if turn.spent_usd is not None:
        parts.append(f"cost {dollars(turn.spent_usd)}")
    if record is not None and record.cached:
        parts.append(f"saved {dollars(record.saved_usd)}")
    elif record is not None and record.cache_saved_usd:
        parts.append(f"implicit cache saved {dollars(record.cache_saved_usd)}")
    if record is not None and checks_summary(record):
        parts.append(checks_summary(record))
    actions = ""
    if record is not None:
        count = len(record.sources)
        actions = (
            f"<button type='button' class='link' data-act='sources' data-turn='{index}'>"
            f"Sources ({len(record.citations)} cited of {count})</button>"
            + _rate_button(index, turn, "up", "Good answer")
            + _rate_button(index, turn, "down", "Bad answer")
        )
    return f"<div class='meta'><span class='footer'>{' · '.join(parts)}</span><span class='acts'>{actions}</span></div>"


def _rate_button(index: int, turn: Turn, rating: str, label: str) -> str:
    pressed = "true" if turn.feedback and turn.feedback.rating == rating else "false"
    return (
        f"<button type='button' class='rate' data-act='rate' data-turn='{index}' data-n='{rating}' "
        f"aria-label='{label}' aria-pressed='{pressed}' title='{label}'>{THUMBS[rating]}</button>"
    )


# --- the first screen ---


def _unknown_collection(name: str) -> str:
    """What the first screen says of a collection typed in the Settings tab that holds
    nothing: a name no collection may have is refused here, where "holds no documents yet:
    add some" sent a user to upload into "Team Docs" and to be refused only when asking
    (UI walkthrough)."""
    try:
        check_collection_name(name)
    except ConfigError as refused:
        return f"{text(str(refused))} Choose another collection in Settings."
    return (f"Questions go to collection <b>{text(name)}</b>, which holds no documents yet: add some in the "
            "Documents tab, or choose another collection in Settings.")


def welcome_html(welcome: Welcome) -> str:
    cards = "".join(_collection_card(c, c.name == welcome.collection) for c in welcome.collections)
    if not cards:
        cards = ("<p>Nothing is ingested yet: add documents in the Documents tab, or run "
                 "<code>python -m ingest PATH</code>.</p>")
    elif all(c.name != welcome.collection for c in welcome.collections):  # typed in the Settings tab
        cards = f"<p class='note'>{_unknown_collection(welcome.collection)}</p>" + cards
    asks = "".join(
        f"<li><button type='button' class='suggest' data-act='ask' data-q='{text(q)}'>{text(q)}</button></li>"
        for q in welcome.suggestions
    )
    suggested = f"<h3>Try asking</h3><ul class='suggestions'>{asks}</ul>" if asks else ""
    return (
        "<section class='welcome' aria-label='Getting started'>"
        "<h2>Ask your documents</h2>"
        "<p class='lead'>Every answer cites its sources as numbered chips: hover one to read the passage, "
        "click it to open the page.</p>"
        f"{suggested}<h3>Loaded</h3><div class='cards'>{cards}</div></section>"
    )


def _collection_card(info: CollectionInfo, current: bool) -> str:
    names = [d.source for d in info.files]
    shown = ", ".join(text(n) for n in names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    badge = "<span class='badge'>answering from this</span>" if current else ""
    return (
        f"<div class='card' data-collection='{text(info.name)}'><div class='card-head'><b>{text(info.name)}</b>"
        f"{badge}</div><div class='card-stats'>{counted(info.documents, 'document')} · "
        f"{counted(info.chunks, 'chunk')} · last ingest {text(info.last_ingest or 'unknown')}</div>"
        f"<div class='card-embedder'>searched with {text(embedder_label(info.embedder))}</div>"
        f"<div class='card-files'>{shown}</div></div>"
    )


def embedder_label(embedding_id: str) -> str:
    """"offline:all-MiniLM-L6-v2-int8:384" reads as "all-MiniLM-L6-v2-int8 (offline, 384 dims)"."""
    kind, _, rest = embedding_id.partition(":")
    model, _, dim = rest.rpartition(":")
    return f"{model} ({kind}, {dim} dims)" if model and dim.isdigit() else embedding_id


# --- the side panel: sources, details, totals, corpus ---


def sources_html(index: int | None, turn: Turn | None, open_n: int | None = None) -> str:
    """Every passage the model saw, once, in rank order; the cited ones stand out."""
    if index is None or turn is None or (turn.record is None and not turn.sources):
        return "<p class='empty'>Ask a question: its sources appear here.</p>"
    cited = turn.cited
    rows = "".join(
        f"<li class='{'cited' if c.n in cited else 'uncited'}'>"
        f"<button type='button' class='src' data-act='cite' data-turn='{index}' data-n='{c.n}'"
        f"{' aria-current=true' if c.n == open_n else ''}>"
        f"<span class='num'>{c.n}</span><span class='src-text'>{where_html(c)}</span>"
        f"<span class='tag'>{'cited' if c.n in cited else 'not cited'}</span></button></li>"
        for c in turn.sources
    )
    return (
        f"<div class='sources'><p class='for'>Sources for: {text(turn.question)}</p>"
        f"<ol>{rows or '<li>No passages were retrieved.</li>'}</ol></div>"
    )


def source_image(url: str, name: str) -> str:
    """A cited page or figure in the viewer, named as alt text; a click opens it full size in a
    tab of its own, as the fullscreen button of Gradio's image did."""
    return (f"<a class='source-image' href='{text(url)}' target='_blank' rel='noopener noreferrer'>"
            f"<img src='{text(url)}' alt='{text(name)}'></a>")


def viewer_caption(citation: Citation, note: str = "") -> str:
    extra = f"<p class='note'>{text(note)}</p>" if note else ""
    return f"<div class='viewer-where' data-n='{citation.n}'>[{citation.n}] {where_html(citation)}</div>{extra}"


def details_html(record: AnswerRecord | None, spent_usd: float | None = None) -> str:
    """Which model answered and why, and what the answer cost, all calls included."""
    if record is None:
        return ""
    usage = record.usage
    cost = dollars(spent_usd if spent_usd is not None else record.cost_usd)
    rewritten = bool(record.history)  # a follow-up is rewritten into a standalone question first (rag.rewrite)
    if record.cached:
        paid = "the question rewrite only: " if rewritten else ""
        cost += f" ({paid}the answer came from the cache, saving {dollars(record.saved_usd)})"
    else:
        cost += f" ({'question rewrite, ' if rewritten else ''}query embedding and answer)"
        if record.cache_saved_usd:
            cost += f"; Gemini's implicit cache took {dollars(record.cache_saved_usd)} off"
    rows = [
        ("Model", f"{text(record.route.model)} ({route_label(record.route)})"),
        ("Why", text(record.route.reason)),
        ("Tokens", f"{usage.prompt_tokens:,} in ({usage.cached_tokens:,} from Gemini's implicit cache) · "
                   f"{usage.output_tokens:,} out · {usage.thinking_tokens:,} thinking"),
        ("Time", f"first token {record.ttft_s:.2f} s · answer {record.latency_s:.2f} s"),
        ("Cost", cost),
    ]
    if record.checks:
        rows.append(("Citations", checks_html(record.checks)))
    cells = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in rows)
    return f"<dl class='details' data-route='{text(record.route.kind)}'>{cells}</dl>"


def checks_html(checks: Sequence[SentenceCheck]) -> str:
    """How many cited sentences their sources support, and the sentences to check by hand."""
    cited = [c for c in checks if c.verdict != "uncited"]
    supported = sum(c.verdict == "supported" for c in cited)
    flagged = "".join(
        f"<li data-verdict='{c.verdict}'>{text(c.sentence)} <i>({text(c.verdict)}: {text(c.reason)})</i></li>"
        for c in checks if c.flagged
    )
    summary = f"{supported} of {counted(len(cited), 'cited sentence')} supported by their source"
    return summary + (f"<ul class='gr-flagged'>{flagged}</ul>" if flagged else "")


def totals_html(totals: SessionTotals) -> str:
    """The session's figures; what Gemini's implicit cache saved only once it saved something
    (offline, or before any cached prompt, "$0.0000 implicit cache saved" says nothing)."""
    stats = [
        ("answers", "answer" if totals.answers == 1 else "answers", f"{totals.answers}"),
        ("tokens", "tokens", f"{totals.tokens:,}"),
        ("cost", "spent", dollars(totals.cost_usd)),
        ("cache-hits", "cache hit" if totals.cache_hits == 1 else "cache hits", f"{totals.cache_hits}"),
        ("saved", "saved", dollars(totals.saved_usd)),
        *([("implicit-cache", "implicit cache saved", dollars(totals.cache_saved_usd))]
          if totals.cache_saved_usd else []),
        ("remaining", "left of budget", f"{dollars(totals.remaining_usd)} / {dollars(totals.budget_usd)}"),
    ]
    cells = "".join(f"<span class='stat' data-stat='{k}'><b>{value}</b> {label}</span>" for k, label, value in stats)
    return f"<div class='totals' aria-label='This session'>{cells}</div>"


def unavailable(what: str, reason: str) -> str:
    """One line in place of a panel that cannot be filled, so the rest of the page works on."""
    return f"<div class='unavailable' role='status'>⚠️ {text(what)} unavailable: {text(reason)}</div>"


def corpus_html(collections: Sequence[CollectionInfo]) -> str:
    if not collections:
        return "<p>Nothing ingested yet: upload files below, or run <code>python -m ingest PATH</code>.</p>"
    cards = "".join(_collection_card(c, False) + _file_list(c) for c in collections)
    return (
        f"<div class='cards'>{cards}</div><p class='note'>Each collection is searched with the embedder "
        "that built it; answers come from Gemini when a key is set, whichever embedder built it.</p>"
    )


def _file_list(info: CollectionInfo) -> str:
    """Every document of the collection with its chunks (and pages with text): the card names six
    and "and 11 more", which the Documents tab had no way to show."""
    if not info.files:
        return ""
    rows = "".join(
        f"<li><span class='file-name'>{text(d.source)}</span> · {counted(d.chunks, 'chunk')}"
        + (f" · {counted(d.pages, 'page')}" if d.pages else "") + "</li>"
        for d in info.files
    )
    return (f"<details class='card-all-files' data-collection='{text(info.name)}'><summary>All "
            f"{counted(len(info.files), 'document')} of {text(info.name)}</summary><ul>{rows}</ul></details>")


def upload_summary(result: UploadResult) -> str:
    """What happened to each uploaded file, in plain words (for a Gradio Markdown component)."""
    md = safe.inert_markdown
    lines: list[str] = []
    report = result.report
    if report is not None:
        done = [f for f in report.files if f.status in (Status.ADDED, Status.UPDATED, Status.UNCHANGED)]
        notes = {f.source: f" ({md(f.reason)})" for f in done if f.reason}  # pages left unread, a move
        lines += [f"- ✅ {md(f.source)}: {f.status.value}, {counted(f.chunks, 'chunk')}{notes.get(f.source, '')}"
                  for f in done]
        lines += [f"- ❌ {md(f.source)}: {md(f.reason)}" for f in report.of(Status.FAILED)]
        lines += [f"- ⏭️ {md(f.source)}: skipped, {md(f.reason)}" for f in report.of(Status.SKIPPED)]
        if report.stopped:
            lines.append(f"- ⚠️ {md(report.stopped)}")
        if report.vision_calls:
            lines.append(f"- Cost: {dollars(report.cost_usd)} ({report.tokens:,} tokens embedded; "
                         f"{report.vision_calls} figures and scans read by Gemini, {report.vision_tokens:,} tokens)")
        elif report.cost_usd:
            lines.append(f"- Embedding cost: {dollars(report.cost_usd)} ({report.tokens:,} tokens)")
    lines += [f"- ❌ {md(reason)}" for reason in result.rejected]
    collection = f" into collection **{md(report.collection)}**" if report else ""
    return f"Upload{collection}:\n\n" + "\n".join(lines) if lines else "Nothing was uploaded."
