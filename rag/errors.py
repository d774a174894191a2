"""Typed errors a user can act on. Messages name the model and what to do; never the key."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from pydantic import SecretStr

from rag.types import Usage


class GemragError(Exception):
    """Base of every error the app shows to a user as a message, not a traceback."""


class ConfigError(GemragError):
    pass


class DataDirUnwritable(ConfigError):
    """The data dir (or a store in it) cannot be made or written: the CLI's configuration error
    (exit 2, naming the path), but on the API the server's fault (503 `data_dir_unwritable`),
    whose `remote` message names no server path."""

    remote = ("The server cannot write to its data directory; the operator must fix it (the server's log names "
              "the path). Try again later.")


ECHO_CHARS = 80


def echoed(value: str) -> str:
    """A caller's value as a message repeats it: quoted, and cut at `ECHO_CHARS` characters.
    A 404 for a 7,000-character job id repeated all of it, a body as long as the request."""
    return repr(value) if len(value) <= ECHO_CHARS else f"{value[:ECHO_CHARS]!r}… ({len(value):,} characters)"


class ProviderError(GemragError):
    """A model call failed after the retries and deadline allowed."""

    def __init__(
        self, message: str, *, model: str = "", status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status = status
        self.retry_after_s = retry_after_s  # when a retry could succeed, if known (a rate limit's next slot)
        self.reason = ""  # the last failure in the retry layer's short words, keys redacted ("503 UNAVAILABLE: ...")
        self.abandoned: tuple[Usage, ...] = ()  # what its attempts with no reply may have billed (rag.retry.Unanswered)


# Records what a call's attempts with no reply may have billed, (model, each attempt's usage),
# in the caller's ledger: the chain's Spending, an ingest run's charges.
ChargeAbandoned = Callable[[str, Sequence[Usage]], None]


@contextmanager
def charging_lost(charge: ChargeAbandoned) -> Iterator[None]:
    """A call that fails in the end still owes what its attempts with no reply may have billed
    (`ProviderError.abandoned`): `charge` records it before the error goes on, so no caller
    has to remember it on its error path."""
    try:
        yield
    except ProviderError as error:
        charge(error.model, error.abandoned)
        raise


class QuotaExhausted(ProviderError):
    """The API said RESOURCE_EXHAUSTED for longer than we may wait."""


class InvalidKey(ProviderError):
    """The API rejected the key (400 API_KEY_INVALID, 401, 403)."""


class StreamInterrupted(ProviderError):
    """A stream broke after it had already yielded text; it is not retried (text was shown)."""


class BudgetExceeded(GemragError):
    pass


class EmptyCollection(GemragError):
    """A question was asked of a collection nothing has been ingested into. `remote`: the
    message an API client gets, which names no server path or URL: the data directory and
    CHROMA_URL (which may carry credentials) are the operator's, not the caller's to fix."""

    def __init__(self, message: str, *, remote: str = "") -> None:
        super().__init__(message)
        self.remote = remote or message


class NoCollection(EmptyCollection):
    """No collection of that name at all (the API's `no_collection`): a client tells a
    mistyped name from a collection not ingested yet by the kind, not the message. `told`
    names the collections there are (`held`) that a caller may use; `remote`, read where no
    caller is known (a job's message), none: a key limited to one team read the others'."""

    def __init__(self, message: str, *, name: str, held: Sequence[str]) -> None:
        self.name, self.held = name, tuple(held)
        super().__init__(message, remote=f"No collection {name!r} on this server.")

    def told(self, reaches: Callable[[str], bool]) -> str:
        listed = [h for h in self.held if reaches(h)]
        there = f"its collections: {', '.join(listed)}" if listed else "it holds none yet"
        return f"No collection {self.name!r} on this server ({there})."  # also an MCP agent's: no HTTP route named


def remote_message(error: GemragError) -> str:
    """What a client of the HTTP API or the MCP server is told: the `remote` message of an
    error that names the server's own paths (a missing collection, an unwritable data dir),
    else the message as the CLI prints it."""
    return error.remote if isinstance(error, EmptyCollection | DataDirUnwritable) else str(error)


class InvalidRequest(GemragError):
    """A question the app cannot act on as asked: an empty one, or one limited to files the
    collection does not hold (answering from nothing would look like "the documents do not
    say", when the asker mistyped a file name). `field`: the request field at fault
    ("question", "sources"), which the HTTP API names in its 422."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def field_path(loc: Sequence[str | int]) -> str:
    """Where a validation error points, as a client writes it: "history[0].role", not
    pydantic's ("history", 0, "role"). The HTTP API's 422 and the MCP tools' refusals say it."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


class EmbedderMismatch(GemragError):
    """A collection built with one embedder cannot be searched or extended with another."""


def redact(message: str, key: SecretStr | None) -> str:
    """Belt and braces for any text shown to a user: the key never appears in it."""
    secret = key.get_secret_value() if key else ""
    return message.replace(secret, "[redacted]") if secret else message
