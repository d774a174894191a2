from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rag.answer import AskOptions, Delta, Event
from rag.backend import Backend
from rag.chain import Chain
from rag.errors import BudgetExceeded
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.types import Message
from ui import render
from ui.chat import Choices, stream_turn
from ui.session import SessionState

KEY = "test-key-PLANTED-in-ui-9d1"
CHOICES = Choices("corpus", "hybrid", 4, "")


class Failing:
    """An answerer that streams some text, then fails the way the chain can."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def stream(
        self, question: str, history: Sequence[Message] = (), session_id: str = "",
        options: AskOptions = AskOptions(),  # noqa: B008
    ) -> Iterator[Event]:
        yield Delta("Partial ")
        raise self.error


@pytest.fixture(scope="module")
def chain(ui_settings: Settings) -> Chain:
    return Backend.build(ui_settings, OfflineProvider()).chain


def test_a_turn_streams_then_records_the_answer_with_page_citations(chain: Chain, ui_settings: Settings) -> None:
    state = SessionState()
    seen = [t.answer for t in stream_turn(chain, state, "When must the laptop be encrypted?", CHOICES, ui_settings)]
    turn = state.turns[0]
    assert turn.status == "done" and turn.record is not None
    assert len(seen) > 3 and seen[1] and seen[1] != seen[-1]  # text grew piece by piece
    assert ("onboarding.pdf", 2) in {(c.source, c.page) for c in turn.record.citations}
    assert turn.record.session_id == state.session_id


def test_follow_ups_carry_the_sessions_history(chain: Chain, ui_settings: Settings) -> None:
    state = SessionState()
    list(stream_turn(chain, state, "How many vacation days do employees get?", CHOICES, ui_settings))
    list(stream_turn(chain, state, "When do they expire?", CHOICES, ui_settings))
    record = state.turns[1].record
    assert record is not None and record.history == state.history()[:2]
    assert "vacation" in record.standalone_question


def test_errors_become_a_readable_message_without_the_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_key=KEY)
    state = SessionState()
    budget = BudgetExceeded("Session budget of $1.00 spent; raise GEMRAG_SESSION_BUDGET_USD.")
    list(stream_turn(Failing(budget), state, "q", CHOICES, settings))
    assert state.turns[0].status == "error" and state.turns[0].error == str(budget)
    list(stream_turn(Failing(RuntimeError(f"socket closed for key {KEY}")), state, "q", CHOICES, settings))
    error = state.turns[1].error
    assert error.startswith("Something went wrong while answering (RuntimeError: socket closed for key [redacted])")
    assert KEY not in error and "Traceback" not in error
    assert state.history() == []


def test_stop_ends_the_stream_at_the_next_piece_and_keeps_it_out_of_history(
    chain: Chain, ui_settings: Settings
) -> None:
    state = SessionState()
    turns = stream_turn(chain, state, "When do unused vacation days expire?", CHOICES, ui_settings)
    next(turns), next(turns)
    shown = state.turns[0].answer
    state.stop_streaming()  # what the Stop button does, from another request
    assert len(list(turns)) == 1  # one last update, no more text
    turn = state.turns[0]
    assert turn.status == "stopped" and turn.answer == shown and turn.record is None
    assert state.history() == []


def test_a_stopped_answer_keeps_the_chips_of_what_it_cites(chain: Chain, ui_settings: Settings) -> None:
    """The sources came only with the record, in the `Done` a stopped stream never reaches:
    the stopped text's [1] was plain text, its sources panel empty."""
    state = SessionState()
    turns = stream_turn(chain, state, "When do unused vacation days expire?", CHOICES, ui_settings)
    turn = next(turns)
    while "[" not in turn.answer:
        turn = next(turns)
    state.stop_streaming()
    list(turns)
    assert turn.status == "stopped" and turn.record is None
    assert [c.n for c in turn.sources] == list(range(1, len(turn.sources) + 1)) and turn.cited
    html = render.turn_html(0, turn)
    cited = min(turn.cited)
    assert f"data-n='{cited}'" in html and f"Source {cited}: {turn.sources[cited - 1].source}" in html
    assert "(stopped)" in html and f"data-n='{cited}'" in render.sources_html(0, turn)


def test_a_streaming_answer_is_redrawn_once_a_frame_not_at_every_delta(
    ui_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, each word is a delta: redrawing the whole conversation at each one made a
    follow-up of 160 words take 6 s in the browser, the chain waiting on every redraw."""
    from ui import handlers as module

    ticks = iter(range(10**6))
    monkeypatch.setattr(module.time, "monotonic", lambda: next(ticks) * 0.01)  # a delta every 10 ms
    handlers = module.Handlers(ui_settings, Backend.build(ui_settings, OfflineProvider()))
    state = SessionState()
    updates = list(handlers.respond("When must the laptop be encrypted?", state, "corpus", "hybrid", 4, ""))
    deltas = len(state.turns[0].answer.split())
    assert state.turns[0].status == "done" and deltas > 20
    assert 2 <= len(updates) <= deltas / 5  # a frame (0.1 s) of ten deltas each, then the last
    assert "data-status='done'" in updates[-1][0]  # the last update shows the whole answer
