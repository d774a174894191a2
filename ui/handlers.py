"""The functions Gradio calls: each takes the panel values and returns what to show.

They hold no Gradio layout, so tests call them directly; ui/app.py wires them to events.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from ingest.discover import SUPPORTED
from ingest.report import Progress
from rag.answer import AnswerRecord, Citation, Mode
from rag.chain import Chain
from rag.errors import GemragError, redact
from rag.settings import Settings
from ui import render
from ui.chat import Choices, stream_turn
from ui.corpus import describe_collections
from ui.session import SessionState, SessionTotals, Turn
from ui.uploads import ingest_uploads

Update = dict[str, Any]
log = logging.getLogger(__name__)


class Handlers:
    def __init__(self, settings: Settings, chain: Chain) -> None:
        self.settings = settings
        self.chain = chain  # one chain for every session: it holds the stores and indexes

    # --- chat ---
    def respond(
        self, question: str, state: SessionState, collection: str, mode: Mode, top_k: float, model: str
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: chat, question box, then the answer panel (see `answer_panel`) and totals."""
        question = question.strip()
        if not question:
            yield (gr.skip(),) * 7
            return
        choices = Choices(collection or self.settings.collection, mode, int(top_k), model or "")
        for turn in stream_turn(self.chain, state, question, choices, self.settings):
            if turn.status == "streaming":
                yield render.chat_messages(state), "", *(gr.skip(),) * 5
        yield render.chat_messages(state), "", *self.answer_panel(state), self.totals(state)

    def stop(self, state: SessionState) -> list[dict[str, str]]:
        state.stop_streaming()
        return render.chat_messages(state)

    def clear(self, state: SessionState) -> tuple[Any, ...]:
        """Outputs: the answer panel, then totals (unchanged: cleared answers were paid for)."""
        state.clear()
        return *self.answer_panel(state), self.totals(state)

    def select_answer(self, state: SessionState, evt: gr.SelectData) -> tuple[Any, ...]:
        state.select_message(int(evt.index if not isinstance(evt.index, list | tuple) else evt.index[0]))
        return self.answer_panel(state)

    def answer_panel(self, state: SessionState) -> tuple[str, str, Update, str]:
        """Details, sources, the citation picker and the picked passage of the shown answer."""
        turn = state.shown_turn()
        record = turn.record if turn else None
        first = _first_citation(record)
        picker = gr.update(
            choices=[(render.citation_label(c), c.n) for c in (record.sources if record else [])],
            value=first.n if first else None,
        )
        return render.details_html(record), render.sources_html(record), picker, self._passage(turn, first)

    def show_passage(self, n: int | None, state: SessionState) -> str:
        turn = state.shown_turn()
        sources = turn.record.sources if turn and turn.record else []
        return self._passage(turn, next((c for c in sources if c.n == n), None))

    def _passage(self, turn: Turn | None, citation: Citation | None) -> str:
        """The whole passage the model read, not just the record's short snippet."""
        if turn is None or turn.record is None or citation is None:
            return render.passage_html(None)
        cited = any(c.n == citation.n for c in turn.record.citations)
        try:
            chunks = self.chain.store(turn.collection).get([citation.chunk_id])
        except GemragError:
            chunks = []  # re-ingested or emptied since: the snippet is all there is
        full = replace(citation, snippet=chunks[0].text) if chunks else citation
        return render.passage_html(full, cited=cited)

    def totals(self, state: SessionState) -> str:
        """From the chain's cost ledger, so cache hits, savings and the budget are the ones the
        chain enforces (cleared and stopped answers still count: they were paid for)."""
        try:
            self.chain.ledger.check()
            spent = self.chain.ledger.session(state.session_id)
            remaining = self.chain.budget.remaining_usd(state.session_id)
        except Exception as exc:
            return render.unavailable("Costs", self._reason(exc))
        return render.totals_html(SessionTotals.of(spent, remaining, self.settings.session_budget_usd))

    # --- corpus ---
    def corpus(self) -> tuple[str, Update]:
        try:
            collections = describe_collections(self.settings)
        except Exception as exc:
            return render.unavailable("The corpus", self._reason(exc)), gr.skip()
        names = sorted({c.name for c in collections} | {self.settings.collection})
        return render.corpus_html(collections), gr.update(choices=names)

    def _reason(self, exc: Exception) -> str:
        """One line for a panel that cannot be filled: a user's error as it is, anything else
        with its type (and its traceback in the server log); never the key."""
        if not isinstance(exc, GemragError):
            log.exception("a UI panel failed")
        reason = str(exc) if isinstance(exc, GemragError) else f"{type(exc).__name__}: {exc}"
        return redact(reason, self.settings.api_key)

    @staticmethod
    def upload_types() -> list[str]:
        return sorted(SUPPORTED)

    def upload(
        self, files: list[str] | None, collection: str, progress: gr.Progress = gr.Progress()  # noqa: B008
    ) -> tuple[str, str, Update]:
        """Outputs: the upload's summary, then the corpus panel and the collection choices."""
        def report(p: Progress) -> None:
            progress((p.files_done, p.files_total), desc=f"Ingesting {p.current}".strip())

        try:
            result = ingest_uploads(
                [Path(f) for f in files or []], self.settings, self.chain.provider,
                collection or self.settings.collection, report,
            )
            summary = render.upload_summary(result)
        except GemragError as exc:
            summary = f"❌ {render.markdown(redact(str(exc), self.settings.api_key))}"
        return summary, *self.corpus()


def _first_citation(record: AnswerRecord | None) -> Citation | None:
    if record is None:
        return None
    return (record.citations or record.sources or [None])[0]
