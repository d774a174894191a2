"""One browser tab's conversation: its turns and the history the chain sees.

Gradio keeps one `SessionState` per browser session (gr.State with a factory), so two tabs
never share history, costs or ids. Turns are recorded before they stream, and the object is
updated in place, so an answer stopped half-way still shows what was said, marked stopped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from rag.answer import AnswerRecord, Citation
from rag.chain import cited_numbers
from rag.costs import Totals
from rag.feedback import Feedback
from rag.types import Message

TurnStatus = Literal["streaming", "done", "stopped", "error"]


@dataclass
class Turn:
    question: str
    collection: str = ""
    answer: str = ""
    status: TurnStatus = "streaming"
    record: AnswerRecord | None = None
    error: str = ""
    passages: dict[int, str] = field(default_factory=dict)  # full text of each source [n] shown to the model
    spent_usd: float | None = None  # what the ledger recorded for this turn: rewrite, embedding, answer
    feedback: Feedback | None = None  # the reader's rating, as stored
    images: int = 0  # images attached to the question
    streamed_sources: tuple[Citation, ...] = ()  # the passages the text's [n] number, as it streams (`Delta`)

    @property
    def sources(self) -> tuple[Citation, ...]:
        """What the answer's [n] chips open: the record's, or for an answer stopped before its
        record came, the passages its text was streamed with. None while it streams: the
        chips come once the text stops changing under the pointer."""
        if self.record:
            return tuple(self.record.sources)
        return self.streamed_sources if self.status == "stopped" else ()

    @property
    def cited(self) -> set[int]:
        """The numbers of the `sources` its text cites: the record's citations, or those its
        text so far names."""
        if self.record:
            return {c.n for c in self.record.citations}
        return set(cited_numbers(self.answer, len(self.sources)))


@dataclass(frozen=True)
class SessionTotals:
    """The session's line in the cost ledger, as the page shows it."""

    answers: int
    tokens: int
    cost_usd: float
    cache_hits: int
    saved_usd: float
    cache_saved_usd: float  # Gemini's implicit cache: cached prompt tokens billed below the input price
    remaining_usd: float  # under both the session and the daily limit
    budget_usd: float  # the session limit

    @classmethod
    def of(cls, totals: Totals, remaining_usd: float, budget_usd: float) -> SessionTotals:
        return cls(
            answers=totals.answers,
            tokens=totals.usage.total_tokens,
            cost_usd=totals.cost_usd,
            cache_hits=totals.cache_hits,
            saved_usd=totals.saved_usd,
            cache_saved_usd=totals.cache_saved_usd,
            remaining_usd=remaining_usd,
            budget_usd=budget_usd,
        )


@dataclass
class SessionState:
    session_id: str = field(default_factory=lambda: f"ui-{uuid.uuid4().hex[:12]}")
    turns: list[Turn] = field(default_factory=list)  # every turn, also cleared ones: they were paid for
    first_shown: int = 0  # turns before this were cleared from the chat
    selected: int | None = None  # the turn whose sources are shown; None means the latest answer
    viewing: int | None = None  # the source [n] open in the viewer
    viewing_mark: int | None = None  # the chip opening it (ui.evidence.citation_marks); None: from the sources list
    rating: int | None = None  # the turn whose rating the feedback form completes
    collection: str = ""  # the one chosen in the Settings tab; "" until then: the server's
    user: str = ""  # the logged-in key's name, when the app is mounted with API keys (`bind_to_user`)
    # Files the upload box refused as they were picked (`Handlers.picked`): Gradio never sends
    # them, so the upload's own summary names them again, or it dropped them from the list.
    refused_uploads: list[str] = field(default_factory=list)

    @property
    def shown(self) -> list[Turn]:
        return self.turns[self.first_shown :]

    def clear(self) -> None:
        """A fresh conversation in the same session: its spending still counts."""
        self.stop_streaming()
        self.first_shown = len(self.turns)
        self.selected = self.viewing = self.viewing_mark = self.rating = None

    def start_turn(self, question: str, collection: str) -> Turn:
        self.stop_streaming()
        turn = Turn(question, collection)
        self.turns.append(turn)
        self.selected = self.viewing = self.viewing_mark = None
        return turn

    def stop_streaming(self) -> None:
        """Mark an unfinished turn stopped: its partial text stays visible but never becomes
        history the model is asked to build on."""
        for turn in self.turns:
            if turn.status == "streaming":
                turn.status = "stopped"

    def history(self) -> list[Message]:
        """Completed exchanges only, as the chain's rewrite step expects them."""
        messages: list[Message] = []
        for turn in self.shown:
            if turn.status == "done":
                messages += [Message("user", turn.question), Message("model", turn.answer)]
        return messages

    def shown_index(self) -> int | None:
        """The answered turn whose sources and details the side panel shows: the one picked,
        else the latest answer."""
        picked = self.turn(self.selected) if self.selected is not None else None
        if picked is not None and picked.record is not None:
            return self.selected
        answered = [i for i in range(self.first_shown, len(self.turns)) if self.turns[i].record is not None]
        return answered[-1] if answered else None

    def turn(self, index: int) -> Turn | None:
        """A shown turn by its index in `turns` (the page names turns by that index)."""
        return self.turns[index] if self.first_shown <= index < len(self.turns) else None

    def streaming(self) -> bool:
        return any(turn.status == "streaming" for turn in self.turns)
