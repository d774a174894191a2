"""The functions Gradio calls: each takes the panel values and returns what to show.

They hold no Gradio layout, so tests call them directly; ui/app.py wires them to events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from rag.answer import AnswerRecord, Citation, Mode
from rag.settings import Settings
from ui import render
from ui.chat import Answerer, Choices, stream_turn
from ui.corpus import describe_collections
from ui.session import SessionState

Update = dict[str, Any]


class Handlers:
    def __init__(self, settings: Settings, answerer: Answerer) -> None:
        self.settings = settings
        self.answerer = answerer  # one chain for every session: it holds the stores and indexes

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
        for turn in stream_turn(self.answerer, state, question, choices, self.settings):
            if turn.status == "streaming":
                yield render.chat_messages(state), "", *(gr.skip(),) * 5
        yield render.chat_messages(state), "", *self.answer_panel(state), self.totals(state)

    def stop(self, state: SessionState) -> list[dict[str, str]]:
        state.stop_streaming()
        return render.chat_messages(state)

    def select_answer(self, state: SessionState, evt: gr.SelectData) -> tuple[Any, ...]:
        state.select_message(int(evt.index if not isinstance(evt.index, list | tuple) else evt.index[0]))
        return self.answer_panel(state)

    def answer_panel(self, state: SessionState) -> tuple[str, str, Update, str]:
        """Details, sources, the citation picker and the picked passage of the shown answer."""
        record = state.shown_record()
        first = _first_citation(record)
        picker = gr.update(
            choices=[(render.citation_label(c), c.n) for c in (record.sources if record else [])],
            value=first.n if first else None,
        )
        return (
            render.details_html(record),
            render.sources_html(record),
            picker,
            render.passage_html(first, cited=_is_cited(record, first)),
        )

    def show_passage(self, n: int | None, state: SessionState) -> str:
        record = state.shown_record()
        citation = next((c for c in record.sources if c.n == n), None) if record else None
        return render.passage_html(citation, cited=_is_cited(record, citation))

    def totals(self, state: SessionState) -> str:
        return render.totals_html(state.totals(self.settings.session_budget_usd))

    # --- corpus ---
    def corpus(self) -> tuple[str, Update]:
        collections = describe_collections(self.settings)
        names = sorted({c.name for c in collections} | {self.settings.collection})
        return render.corpus_html(collections), gr.update(choices=names)


def _first_citation(record: AnswerRecord | None) -> Citation | None:
    if record is None:
        return None
    return (record.citations or record.sources or [None])[0]


def _is_cited(record: AnswerRecord | None, citation: Citation | None) -> bool:
    return bool(record and citation and any(c.n == citation.n for c in record.citations))
