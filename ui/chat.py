"""The chat turn: stream one answer into the session, then publish its sources and costs.

Stopping is cooperative: the Stop button marks the turn stopped and the stream ends at the
next piece of text, closing the chain's generator. (Gradio's own `cancels` kills the event
mid-flight, which shows an "Error" badge and can leave the turn half-recorded.)

Errors a user can act on (GemragError: budget, quota, key, empty collection) become a
readable message in the chat. Anything else is logged with its traceback on the server and
shown as one line, never as a traceback, and never with the API key in it.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.answer import AnswerRecord, AskOptions, Delta, Done, Event, Mode
from rag.errors import GemragError, redact
from rag.settings import Settings
from rag.types import Attachment, Message
from ui.session import SessionState, Turn

log = logging.getLogger(__name__)


class Answerer(Protocol):
    """What the chat needs from rag.chain.Chain."""

    def stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        session_id: str = "",
        options: AskOptions = ...,
    ) -> Iterator[Event]: ...


@dataclass(frozen=True)
class Choices:
    """The settings panel's values for one question."""

    collection: str
    mode: Mode
    top_k: int
    model: str  # "" lets the router choose
    images: tuple[Attachment, ...] = ()

    def options(self) -> AskOptions:
        return AskOptions(
            collection=self.collection, mode=self.mode, top_k=self.top_k, model=self.model or None, images=self.images
        )


def stream_turn(
    answerer: Answerer, state: SessionState, question: str, choices: Choices, settings: Settings
) -> Iterator[Turn]:
    """Append a turn to the session and yield it each time its text grows."""
    history = state.history()
    turn = state.start_turn(question, choices.collection)
    turn.images = len(choices.images)
    yield turn
    events = answerer.stream(question, history, state.session_id, choices.options())
    try:
        for event in events:
            if turn.status == "stopped":  # the Stop button, between two pieces of text
                break
            if isinstance(event, Delta):
                turn.answer += event.text
                turn.streamed_sources = event.sources or turn.streamed_sources
                yield turn
            elif isinstance(event, Done):
                _finish(turn, event.record)
    except GemragError as exc:
        _fail(turn, redact(str(exc), settings.api_key))
    except Exception as exc:
        log.exception("answering %r failed", question)
        _fail(turn, redact(f"Something went wrong while answering ({type(exc).__name__}: {exc}). "
                           "The details are in the server log.", settings.api_key))
    finally:
        if isinstance(events, Generator):
            events.close()  # ends the model's stream too, not just our reading of it
    yield turn


def _finish(turn: Turn, record: AnswerRecord) -> None:
    turn.record = record
    turn.answer = record.answer
    turn.status = "done"


def _fail(turn: Turn, message: str) -> None:
    turn.status = "error"
    turn.error = message

