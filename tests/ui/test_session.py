from __future__ import annotations

import pytest

from rag.answer import AnswerRecord, Route
from rag.budget import Budget
from rag.costs import Ledger
from rag.settings import Settings
from rag.types import Message, Usage
from tests.fakes.clock import ManualClock
from ui.session import SessionState, SessionTotals, Turn


def answered(question: str, answer: str, tokens: int, cost: float, cached: bool = False) -> Turn:
    record = AnswerRecord(
        question=question, standalone_question=question, answer=answer, citations=[], sources=[],
        route=Route("cached" if cached else "flash", "m", "r"), usage=Usage(prompt_tokens=tokens),
        cost_usd=cost, saved_usd=0.01 if cached else 0.0, cached=cached,
    )
    return Turn(question, "corpus", answer, "done", record)


def test_each_session_gets_its_own_id() -> None:
    assert SessionState().session_id != SessionState().session_id


def test_history_holds_only_finished_exchanges() -> None:
    state = SessionState(turns=[answered("q1", "a1", 10, 0.0)])
    state.start_turn("q2", "corpus").answer = "half"
    state.start_turn("q3", "corpus")  # starting a new turn stops the unfinished one
    state.turns[-1].status = "error"
    assert state.turns[1].status == "stopped"
    assert state.history() == [Message("user", "q1"), Message("model", "a1")]


def test_totals_are_the_sessions_line_in_the_ledger(settings: Settings) -> None:
    ledger = Ledger(settings, clock=ManualClock())  # a fixed day: catalogue prices change on dates
    ledger.charge("s1", "gemini-3.8-flash", Usage(prompt_tokens=1_000, output_tokens=100), "answer")
    hit = answered("q1", "a", 1_000, 0.0, cached=True).record
    assert hit is not None
    ledger.record_hit("s1", hit)
    ledger.charge("s2", "gemini-3.8-flash", Usage(prompt_tokens=5_000), "answer")
    totals = SessionTotals.of(ledger.session("s1"), Budget(settings, ledger).remaining_usd("s1"), 1.0)
    cost = (1_000 * 0.75 + 100 * 3.75) / 1e6  # gemini-3.8-flash in 2026: $0.75 in, $3.75 out per million
    assert (totals.answers, totals.tokens, totals.cache_hits) == (2, 1_100, 1)
    assert totals.cost_usd == pytest.approx(cost) and totals.saved_usd == pytest.approx(0.01)
    assert totals.remaining_usd == pytest.approx(1.0 - cost)


def test_the_panel_shows_the_picked_answer_else_the_latest() -> None:
    state = SessionState(turns=[answered("q1", "a1", 1, 0), answered("q2", "a2", 1, 0)])
    assert state.shown_index() == 1
    state.selected = 0  # a chip or "Sources" of the first answer
    assert state.shown_index() == 0
    state.start_turn("q3", "corpus")  # a new question shows the newest answer again
    assert state.shown_index() == 1


def test_clearing_starts_a_new_conversation_but_keeps_the_sessions_spending() -> None:
    state = SessionState(turns=[answered("q1", "a1", 100, 0.25)])
    state.clear()
    assert state.shown == [] and state.history() == [] and state.shown_index() is None
    assert state.turn(0) is None and state.turns[0].record is not None  # kept for the ledger, not shown
    state.turns.append(answered("q2", "a2", 10, 0.0))
    assert state.shown_index() == 1
