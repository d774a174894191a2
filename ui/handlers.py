"""The functions Gradio calls: each takes the panel values and returns what to show.

They hold no Gradio layout, so tests call them directly; ui/app.py wires them to events.
Output tuples are documented where they are built; `gr.skip()` leaves a component as it is.
"""

from __future__ import annotations

import itertools
import logging
import mimetypes
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from ingest.pipeline import LockWait
from ingest.report import Progress
from rag.answer import AskOptions, Citation, Event, Mode
from rag.backend import Backend
from rag.errors import GemragError, redact
from rag.feedback import Feedback, FeedbackStore, Place, Rating
from rag.filetypes import SUPPORTED, marks_headings
from rag.providers.grounding import CHUNK_ID_PREFIX
from rag.sentences import as_shown
from rag.server.auth import Caller
from rag.server.mounts import CallerOf, logged_in
from rag.settings import Settings
from rag.store import Store
from rag.types import Attachment, Chunk, Message
from ui import browser_copies, preview, render, safe, source_images
from ui.chat import Answerer, Choices, stream_turn
from ui.corpus import CollectionInfo, describe_collections
from ui.evidence import used_sentence
from ui.session import SessionState, SessionTotals, Turn
from ui.suggest import Suggester
from ui.uploads import UploadRejected, UploadResult, check, ingest_uploads

Update = dict[str, Any]
SKIP: Any = gr.skip
SOURCES_TAB = "sources"  # the drawer's tab with the source viewer
# While an answer streams, the conversation is redrawn at most this often: redrawn at each
# delta (a word, offline), a follow-up of 160 words took 6 s in the browser where the CLI
# took 0.5, the chain waiting on each redraw of the whole conversation.
FRAME_S = 0.1
# An upload into a collection another ingest holds (a CLI run, an API job) waits this long for
# it, its progress saying so, before it is refused: it was refused at once, to be sent again.
UPLOAD_WAIT_S = 600.0
log = logging.getLogger(__name__)


class Handlers:
    def __init__(self, settings: Settings, backend: Backend, caller_of: CallerOf | None = None) -> None:
        self.settings = settings
        self.backend = backend  # shared by every session: stores, ledger, budget, the chain
        self.caller_of = caller_of  # a logged-in user's key; None: no keys, everyone is the local user
        self.feedback = FeedbackStore(settings)
        self.suggester = Suggester(settings, backend.generator, backend.ledger, backend.budget)
        self.collections: tuple[CollectionInfo, ...] | None = None  # read again on every page load and upload

    # --- chat ---
    def respond(
        self, question: str, state: SessionState, collection: str, mode: Mode, top_k: float, model: str,
        image: str | None = None, request: gr.Request | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: chat, question box, Ask, Stop, the image box, then the answer panel (see
        `panel`) and totals. The question box and the image box empty once the question is
        answered; a question refused (too long, a budget spent) goes back into the box, and its
        image stays (it was dropped, so asking again after raising the budget lost it)."""
        bind_to_user(state, request)
        question = question.strip()
        if not question or state.streaming():
            yield (SKIP(),) * 12
            return
        images = self._attachments(image)
        choices = Choices(collection or self.settings.collection, mode, int(top_k), model or "", images)
        spent_before = self._spent(state)
        busy = (gr.update(visible=False), gr.update(visible=True))
        answerer = Within(self.backend.chain, self._caller(state.user))
        drawn_at = -FRAME_S
        for turn in stream_turn(answerer, state, question, choices, self.settings):
            if turn.status == "streaming" and (now := time.monotonic()) - drawn_at >= FRAME_S:
                drawn_at = now
                yield self.chat(state), "", *busy, *(SKIP(),) * 8
        spent_after = self._spent(state)
        if spent_before is not None and spent_after is not None:
            turn.spent_usd = spent_after - spent_before
        if turn.sources:  # a stopped answer's too: its chips show their passages
            turn.passages = self._passages(turn)
        idle = (gr.update(visible=True), gr.update(visible=False))
        if turn.record is None and turn.error:  # refused: left to edit and send again, its image still attached
            kept, attached = question, SKIP()
        else:
            kept, attached = "", gr.update(value=None)
        yield self.chat(state), kept, *idle, attached, *self.panel(state), self.totals(state)

    def _attachments(self, image: str | None) -> tuple[Attachment, ...]:
        """The attached image as the model reads it; none offline (the box is disabled there)."""
        if not image or not self.backend.generator.online:
            return ()
        path = Path(image)
        return (Attachment(mimetypes.guess_type(path.name)[0] or "image/png", path.read_bytes()),)

    def chat(self, state: SessionState) -> str:
        return render.conversation_html(state, None if state.shown else self._welcome(state))

    def _welcome(self, state: SessionState) -> render.Welcome | None:
        """The first screen of the collection this tab asks: its card marked, its questions
        suggested (a suggestion from another collection would be asked where it has no answer)."""
        if self.collections is None:
            return None  # never read: the corpus panel says why
        caller = self._caller(state.user)
        reached = tuple(c for c in self.collections if caller is None or caller.reaches(c.name))
        name = state.collection or self.settings.collection
        current = next((c for c in reached if c.name == name), None)
        asks = self.suggester.for_collection(current) if current else []
        return render.Welcome(reached, name, tuple(asks))

    def choose_collection(self, collection: str, state: SessionState) -> str:
        """The Settings tab's collection, for this tab's questions. Output: the chat."""
        state.collection = collection
        return self.chat(state)

    def stop(self, state: SessionState) -> str:
        state.stop_streaming()
        return self.chat(state)

    def new_chat(self, state: SessionState) -> tuple[Any, ...]:
        """Outputs: chat, the answer panel, the feedback form. Totals stay: cleared answers were paid for."""
        state.clear()
        return self.chat(state), *self.panel(state), gr.update(visible=False)

    def panel(self, state: SessionState) -> tuple[str, str, Update, str, Update, Update]:
        """The side panel for the shown answer: details, its sources, the page image, the
        section viewer, then the drawer and its tabs (left as they are)."""
        index = state.shown_index()
        turn = state.turn(index) if index is not None else None
        record = turn.record if turn else None
        return (
            render.details_html(record, turn.spent_usd if turn else None),
            render.sources_html(index, turn, state.viewing),
            gr.update(value=None, visible=False),
            "",
            SKIP(),
            SKIP(),
        )

    def act(self, state: SessionState, evt: gr.SelectData) -> tuple[Any, ...]:
        """A button in the chat or the sources list. Outputs: the panel (see `panel`), then
        the feedback form: its group, title, source picker and comment box."""
        index, action = int(evt.index[0]), str(evt.index[1])
        mark = evt.index[2] if len(evt.index) > 2 else None  # a chip's citation mark; none in the sources list
        keep_form = (SKIP(),) * 4
        if action in ("cite", "sources"):
            state.selected = index
            state.viewing = int(evt.value) if action == "cite" and evt.value else None
            state.viewing_mark = int(mark) if action == "cite" and mark is not None else None
            return *self.open_source(state), *keep_form
        if action == "rate" and evt.value in ("up", "down"):
            return (SKIP(),) * 6 + self.rate(state, index, evt.value)
        return (SKIP(),) * 10

    def open_source(self, state: SessionState) -> tuple[str, str, Update, str, Update, Update]:
        """The panel with source [state.viewing] of the selected answer opened at its place:
        a PDF page image with the cited text highlighted, or the section with the passage marked
        (the evidence of the clicked chip's own sentence, or of all the sentences citing it).
        The drawer opens at its Sources tab: a chip clicked while it showed Documents opened the
        source out of sight."""
        details, sources, *_ = self.panel(state)
        shown = gr.update(open=True), gr.update(selected=SOURCES_TAB)
        index = state.shown_index()
        turn = state.turn(index) if index is not None else None
        citation = _source(turn, state.viewing)
        if turn is None or citation is None:
            return details, sources, gr.update(value=None, visible=False), "", *shown
        cited = citation.n in turn.cited
        passage = turn.passages.get(citation.n, citation.snippet)
        quote = (used_sentence(turn.answer, citation.n, passage, state.viewing_mark, marks_headings(citation.source))
                 if cited else None)
        image: Update = gr.update(value=None, visible=False)
        excerpt = f"<blockquote class='passage'>{render.excerpt_html(passage, quote)}</blockquote>"
        try:
            store = self.backend.stores.get(turn.collection)
            chunks = store.get([citation.chunk_id]) or _at_place(store, citation)
            if not chunks:
                raise preview.SourceUnavailable(f"{citation.source} was re-ingested since this answer: ask again.")
            if chunks[0].kind == "figure" and chunks[0].page is None:  # an image file: shown as it is
                figure = preview.figure_image(self.settings, turn.collection, chunks[0])
                image = _image(turn.collection, figure, f"{citation.source}, figure")
                viewer = render.viewer_caption(citation) + excerpt
            elif chunks[0].page is not None and chunks[0].unit == "page":  # a PDF page; a slide shows as text
                page = preview.pdf_page(self.settings, turn.collection, chunks[0], quote)
                note = "" if page.found else "The cited text could not be located on the page image."
                image = _image(turn.collection, page.image, f"{citation.source}, page {page.page}")
                viewer = render.viewer_caption(citation, note)
            else:
                section = preview.text_section(self.settings, turn.collection, chunks[0], quote)
                viewer = render.viewer_caption(citation) + f"<div class='section'>{section.html}</div>"
        except (preview.SourceUnavailable, GemragError) as exc:
            viewer = render.viewer_caption(citation, str(exc)) + excerpt
        except OSError as exc:  # its message names the server's path: the reason alone
            reason = f"{citation.source} cannot be read now ({exc.strerror or type(exc).__name__})."
            viewer = render.viewer_caption(citation, reason) + excerpt
        except Exception as exc:  # a bug: one line here, not an Error box over the whole chat
            viewer = render.viewer_caption(citation, self._reason(exc)) + excerpt
        return details, sources, image, viewer, *shown

    def _passages(self, turn: Turn) -> dict[int, str]:
        """The full text of every source of the answer, for popovers and highlights (the
        record keeps only a short snippet)."""
        sources = turn.sources
        try:
            stored = self.backend.stores.get(turn.collection).get([s.chunk_id for s in sources])
            chunks = {c.id: as_shown(c).text for c in stored}  # as retrieval showed them
        except GemragError:
            chunks = {}  # emptied since: the snippets are all there is
        return {s.n: chunks.get(s.chunk_id, s.snippet) for s in sources}

    def _spent(self, state: SessionState) -> float | None:
        """The session's spending so far, None when the ledger cannot be read (the totals say so)."""
        try:
            return self.backend.ledger.session(state.session_id).cost_usd
        except Exception:
            return None

    def totals(self, state: SessionState) -> str:
        """From the ledger and budget the chain charges and enforces, so cache hits, savings and
        the budget are the chain's (cleared and stopped answers still count: they were paid for)."""
        try:
            self.backend.ledger.check()
            spent = self.backend.ledger.session(state.session_id)
            remaining = self.backend.budget.remaining_usd(state.session_id)
        except Exception as exc:
            return render.unavailable("Costs", self._reason(exc))
        return render.totals_html(SessionTotals.of(spent, remaining, self.settings.session_budget_usd))

    def _reason(self, exc: Exception) -> str:
        """One line for a panel that cannot be filled: a user's error as it is, anything else
        with its type (and its traceback in the server log); never the key."""
        if not isinstance(exc, GemragError):
            log.exception("a UI panel failed")
        reason = str(exc) if isinstance(exc, GemragError) else f"{type(exc).__name__}: {exc}"
        return redact(reason, self.settings.api_key)

    # --- ratings ---
    def rate(self, state: SessionState, index: int, rating: Rating) -> tuple[Any, ...]:
        """Stores the rating at once; the form that opens adds a comment and the right source.
        Outputs: the feedback group, its title, source picker and comment box."""
        turn = state.turn(index)
        if turn is None or turn.record is None:
            return (SKIP(),) * 4
        record = turn.record
        feedback = Feedback(
            collection=turn.collection,
            question=turn.question,
            standalone_question=record.standalone_question,
            answer=record.answer,
            rating=rating,
            cited=tuple(_place(c, turn) for c in record.citations),
            session_id=state.session_id,
            corpus_version=record.corpus_version,
        )
        if turn.feedback is not None:
            feedback = replace(feedback, id=turn.feedback.id, comment=turn.feedback.comment,
                               right_source=turn.feedback.right_source)
        try:
            self.feedback.save(feedback)
        except Exception as exc:
            return gr.update(visible=True), render.text(f"Rating not stored: {self._reason(exc)}"), SKIP(), SKIP()
        turn.feedback, state.rating = feedback, index
        thanks = "Thanks: rated good." if rating == "up" else "Thanks: rated bad. Which source had the answer?"
        choices = [(render.source_choice(c), c.n) for c in record.sources]
        return (
            gr.update(visible=True),
            f"**{thanks}** Answer to: {safe.inert_markdown(turn.question)}",
            gr.update(choices=choices, value=None),
            gr.update(value=""),
        )

    def save_feedback(self, state: SessionState, comment: str, right: int | None) -> str:
        turn = state.turn(state.rating) if state.rating is not None else None
        if turn is None or turn.feedback is None:
            return "Rate an answer with a thumb first."
        source = _source(turn, right)
        turn.feedback = replace(
            turn.feedback, comment=comment.strip(), right_source=_place(source, turn) if source else None
        )
        try:
            self.feedback.save(turn.feedback)
        except Exception as exc:
            return render.text(f"Not saved: {self._reason(exc)}")
        command = f"python -m rag.eval feedback --collection {safe.inert_markdown(turn.collection)}"
        return f"Saved. `{command}` turns it into a test case."

    # --- first screen and corpus ---
    def load(self, state: SessionState, request: gr.Request | None = None) -> tuple[Any, ...]:
        """Outputs: chat (the first screen), totals, corpus panel, collection choices. A user
        whose key does not reach the server's collection starts on the first of their own."""
        bind_to_user(state, request)
        caller = self._caller(state.user)
        asking = state.collection or self.settings.collection
        if caller is not None and caller.collections and not caller.reaches(asking):
            state.collection = min(caller.collections)
        corpus, choices = self.corpus(request, state.collection or None)
        return self.chat(state), self.totals(state), corpus, choices

    def corpus(self, request: gr.Request | None = None, chosen: str | None = None) -> tuple[str, Update]:
        """The corpus panel and the collection choices: the collections the user's key
        reaches. `collections` keeps them all, for every user's first screen to choose from."""
        caller = self._caller(_username(request) or "")
        try:
            every = describe_collections(self.settings)
        except Exception as exc:
            return render.unavailable("The corpus", self._reason(exc)), SKIP()
        self.collections = tuple(every)
        collections = [c for c in every if caller is None or caller.reaches(c.name)]
        if caller is None or caller.collections is None:
            reached = {self.settings.collection}
        else:  # its own, ingested or not: an ingest key's first upload goes into one
            reached = set(caller.collections)
        names = sorted({c.name for c in collections} | reached)
        choices = gr.update(choices=names, value=chosen) if chosen else gr.update(choices=names)
        return render.corpus_html(collections), choices

    def refresh(self, state: SessionState, request: gr.Request | None = None) -> tuple[str, Update, str]:
        """Outputs: the corpus panel, the collection choices, and the chat, whose first screen
        counts what was ingested since the page loaded (it still said 18 documents beside 19)."""
        return *self.corpus(request), self.chat(state)

    @staticmethod
    def upload_types() -> list[str]:
        return sorted(SUPPORTED)

    def picked(self, state: SessionState, evt: gr.EventData) -> str:
        """Files just chosen or dropped into the upload box, named and sized by ui/upload.js
        before Gradio sends them. Gradio refuses a type or size it does not take with a toast
        alone, so the status kept the last upload's result and a refused file looked uploaded.
        Output: the upload status, naming each refused file and why; else empty until the
        upload's own summary comes, which names them again (`SessionState.refused_uploads`)."""
        files = getattr(evt, "files", None) or []
        refused: list[str] = []
        for file in files:
            try:
                check(str(file.get("name", "")), int(file.get("size", 0)), self.settings)
            except UploadRejected as exc:
                refused.append(str(exc))
        state.refused_uploads = refused
        return render.upload_summary(UploadResult(rejected=refused)) if refused else ""

    def _caller(self, name: str) -> Caller | None:
        return logged_in(self.caller_of, name)

    def _may_not_ingest(self, request: gr.Request | None, collection: str) -> str | None:
        """Why this user may not add documents to `collection` (None: they may): with API
        keys, only a key of role ingest or admin that reaches it, as for the API's uploads."""
        caller = self._caller(_username(request) or "")
        try:
            if caller is not None:
                caller.require("ingest").enter(collection)  # the API's own rules
        except GemragError as refused:
            return str(refused)
        return None

    def upload(
        self, files: list[str] | None, collection: str, state: SessionState,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
        request: gr.Request | None = None,
    ) -> tuple[str, str, Update, None, str]:
        """Outputs: the upload's summary, then the corpus panel and the collection choices, an
        empty file box (the next files chosen are uploaded alone, not beside these), and the
        chat, whose first screen counts the documents just added. A logged-in user whose key
        may only ask is refused, as the API refuses that key's uploads."""
        def report(p: Progress) -> None:
            # By chunks once some are known: one large PDF read "0/1 steps" for its whole ingest
            # (UI walkthrough); the files done are named beside them.
            done, total, unit = ((p.chunks_done, p.chunks_total, "chunks") if p.chunks_total
                                 else (p.files_done, p.files_total, "files"))
            files = f" (file {min(p.files_done + 1, p.files_total)} of {p.files_total})" if p.chunks_total else ""
            progress((done, total), desc=f"Ingesting {p.at_work}{files}".strip(), unit=unit)

        def waiting(seconds: float) -> None:
            # A fraction, not None: Gradio shows no description beside an unknown progress.
            progress(0.0, desc=f"Waiting for another ingest into {collection} to finish ({seconds:.0f} s)")

        collection = collection or self.settings.collection
        refused = self._may_not_ingest(request, collection)
        if refused:
            browser_copies.discard([Path(f) for f in files or []], self.settings)  # Gradio's copies, unused
            return f"❌ {safe.inert_markdown(refused)}", *self.corpus(request), None, self.chat(state)
        try:
            embedder = self.backend.embedder_for(collection)
            result = ingest_uploads([Path(f) for f in files or []], self.settings, embedder, collection, report,
                                    generator=self.backend.generator, account=_username(request),
                                    wait=LockWait(UPLOAD_WAIT_S, waiting))
            result.rejected[:0] = state.refused_uploads  # named first, as the box refused them first
            state.refused_uploads = []
            summary = render.upload_summary(result)
        except GemragError as exc:
            summary = f"❌ {safe.inert_markdown(redact(str(exc), self.settings.api_key))}"
        return summary, *self.corpus(request), None, self.chat(state)


class Within:
    """The chain, for a user whose key reaches only some collections: a question to another
    is refused in the chat, as the API refuses it (the collection box takes any name typed)."""

    def __init__(self, chain: Answerer, caller: Caller | None) -> None:
        self.chain = chain
        self.caller = caller

    def stream(
        self, question: str, history: Sequence[Message] = (), session_id: str = "", options: AskOptions | None = None,
    ) -> Iterator[Event]:
        options = options or AskOptions()
        if self.caller is not None and options.collection is not None:
            self.caller.enter(options.collection)
        yield from self.chain.stream(question, history, session_id, options)


def bind_to_user(state: SessionState, request: gr.Request | None) -> None:
    """A logged-in user's session is named under their key, as the API names its sessions
    ("<key name>/<id>"), so its spending counts against that key's budgets: it counted as the
    shared "local" account's, and a key past its own budget went on answering in the UI."""
    name = _username(request)
    if name and "/" not in state.session_id:
        state.session_id = f"{name}/{state.session_id}"
        state.user = name


def _username(request: gr.Request | None) -> str | None:
    """The logged-in user's key name, when the app is mounted with API keys."""
    return getattr(request, "username", None) if request is not None else None


def _image(collection: str, path: Path, name: str) -> Update:
    """A source's image in the viewer, linked through `ui.source_images` (Gradio's own link
    would show the server's path to it), named as alt text: a screen reader announced the
    cited page as an unnamed image."""
    return gr.update(value=render.source_image(source_images.url(collection, path), name), visible=True)


def _source(turn: Turn | None, n: int | None) -> Citation | None:
    if turn is None or n is None:
        return None
    return next((c for c in turn.sources if c.n == n), None)


def _at_place(store: Store, citation: Citation) -> list[Chunk]:
    """The collection's first chunk at the citation's file and page: where a File Search
    citation (whose chunk is Google's, not in the collection) opens."""
    if not citation.chunk_id.startswith(CHUNK_ID_PREFIX):
        return []
    where: dict[str, Any] = {"source": citation.source}
    if citation.page is not None:
        where = {"$and": [where, {"page": citation.page}]}
    return list(itertools.islice(store.chunks(where=where), 1))


def _place(citation: Citation, turn: Turn) -> Place:
    return Place(citation.source, citation.page, citation.chunk_id, turn.passages.get(citation.n, citation.snippet))
