"""One browser tab's conversation: its turns, the history the chain sees, and its totals.

Gradio keeps one `SessionState` per browser session (gr.State with a factory), so two tabs
never share history, costs or ids. Turns are recorded before they stream, and the object is
updated in place, so an answer stopped half-way still shows what was said, marked stopped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from rag.answer import AnswerRecord
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


@dataclass(frozen=True)
class SessionTotals:
    answers: int
    tokens: int
    cost_usd: float
    cache_hits: int
    saved_usd: float
    budget_usd: float

    @property
    def remaining_usd(self) -> float:
        return max(self.budget_usd - self.cost_usd, 0.0)


@dataclass
class SessionState:
    session_id: str = field(default_factory=lambda: f"ui-{uuid.uuid4().hex[:12]}")
    turns: list[Turn] = field(default_factory=list)
    selected: int | None = None  # the turn whose sources are shown; None means the latest answer

    def start_turn(self, question: str, collection: str) -> Turn:
        self.stop_streaming()
        turn = Turn(question, collection)
        self.turns.append(turn)
        self.selected = None
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
        for turn in self.turns:
            if turn.status == "done":
                messages += [Message("user", turn.question), Message("model", turn.answer)]
        return messages

    def records(self) -> list[AnswerRecord]:
        return [t.record for t in self.turns if t.record is not None]

    def shown_turn(self) -> Turn | None:
        """The answered turn whose sources and details the side panel shows."""
        if self.selected is not None and 0 <= self.selected < len(self.turns):
            turn = self.turns[self.selected]
            return turn if turn.record else None
        answered = [t for t in self.turns if t.record is not None]
        return answered[-1] if answered else None

    def select_message(self, message_index: int) -> None:
        """The chat shows each turn as a user message then an answer, so two messages per turn."""
        self.selected = message_index // 2

    def totals(self, budget_usd: float) -> SessionTotals:
        records = self.records()
        return SessionTotals(
            answers=len(records),
            tokens=sum(r.usage.total_tokens for r in records),
            cost_usd=sum(r.cost_usd for r in records),
            cache_hits=sum(r.cached for r in records),
            saved_usd=sum(r.saved_usd for r in records),
            budget_usd=budget_usd,
        )
