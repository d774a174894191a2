"""What a caller may choose for one answer (the API's `model`, the CLI's --model): one check,
so the terminal cannot send what the API refuses (the bound on `k`, `MAX_K`, lives with
`AskOptions` in rag.answer, where the chain checks it for every door).

Kept free of FastAPI so `python -m rag ask` can import it without loading the server.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from rag.answer import Done, Event
from rag.errors import InvalidRequest
from rag.lifecycle import Retired
from rag.providers.base import Generator
from rag.settings import Settings


@dataclass(frozen=True)
class Forced:
    """The model that answers a forced model, and the note its route carries when a retired
    model was replaced ("gemini-2.5-pro is retired since 2026-12-01; gemini-3.8-flash answered")."""

    model: str | None  # None: nothing forced, the router chooses
    note: str = ""


def answer_model(requested: str | None, generator: Generator, settings: Settings, today: date | None = None) -> Forced:
    """A forced model must be one of the answer models (Flash, Pro): any other name was sent
    to Gemini as asked (a 404, or an embedding model charged as an answer) and an unknown one
    charged at $0. A retired model is treated as a retired configured one (rag.lifecycle):
    replaced with a note when `on_retired = "replace"`, by the answer model of its role (a
    retired Pro by today's Pro, a retired Flash by today's Flash; a configured gemini-2.5-flash
    was replaced while `--model gemini-2.5-flash` was refused), else by its catalogue
    replacement if that is an answer model; refused otherwise. Raises InvalidRequest(field="model")."""
    allowed = list(dict.fromkeys([generator.flash_model, generator.pro_model]))
    if not requested or requested in allowed:
        return Forced(requested)
    models = f"the answer models ({', '.join(allowed)})"
    row = settings.models.get(requested)
    today = today or datetime.now(UTC).date()
    if row is None or not row.retired_on(today):
        raise InvalidRequest(f"{requested!r} is not one of {models}.", field="model")
    since = row.shutdown if row.shutdown and row.shutdown <= today else today
    retired = f"{requested} is retired since {since.isoformat()}"
    same_role = {"flash": generator.flash_model, "pro": generator.pro_model}.get(row.role)
    replacement = same_role or (row.replacement if row.replacement in allowed else None)
    if replacement is None:
        raise InvalidRequest(f"{retired}; choose one of {models}.", field="model")
    if settings.on_retired == "fail":
        raise InvalidRequest(f'{retired}; its replacement is {replacement} (on_retired = "fail").', field="model")
    return Forced(replacement, Retired("model", requested, since, replacement, missing=False).route_note())


def noted(events: Iterable[Event], note: str) -> Iterator[Event]:
    """The answer's route says a retired model was replaced (`note`, Forced.note), as every
    route a replaced configured model takes does. Closed, it closes `events`."""
    try:
        for event in events:
            if note and isinstance(event, Done):
                route = event.record.route
                event = Done(replace(event.record, route=replace(route, reason=f"{route.reason}; {note}")))
            yield event
    finally:
        if isinstance(events, collections.abc.Generator):
            events.close()
