from __future__ import annotations

from rag.answer import AnswerRecord, Route
from rag.types import Message, Usage
from ui.session import SessionState, Turn


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


def test_totals_sum_the_answers_and_leave_the_rest_of_the_budget() -> None:
    state = SessionState(turns=[answered("q1", "a", 100, 0.25), answered("q1", "a", 100, 0.0, cached=True)])
    totals = state.totals(budget_usd=1.0)
    assert (totals.answers, totals.tokens, totals.cache_hits) == (2, 200, 1)
    assert totals.cost_usd == 0.25 and totals.saved_usd == 0.01 and totals.remaining_usd == 0.75


def test_selecting_a_chat_message_shows_that_turns_answer() -> None:
    state = SessionState(turns=[answered("q1", "a1", 1, 0), answered("q2", "a2", 1, 0)])
    assert state.shown_turn() is state.turns[1]
    state.select_message(1)  # the first turn's answer bubble
    assert state.shown_turn() is state.turns[0]
    state.start_turn("q3", "corpus")  # a new question shows the newest answer again
    assert state.shown_turn() is state.turns[1]
