"""Checking the configured models against what the key can use, once a day at startup.

Google retires models on dates (its deprecations page; the catalogue records them) and
sometimes earlier or later than announced, rerouting or refusing the old name. A user who set
a key must not learn that from a failed first question. So at startup, with a key, we list the
models the key can use (`models.list`, cached for a day under the data dir: it is one request,
but every process start would otherwise repeat it) and check each configured model: one that
is past its shutdown date or missing from the list either stops the command
(`on_retired = "fail"`) or is replaced by its catalogue replacement (`"replace"`, the default),
and every answer it affects says so on its route.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from rag.errors import ConfigError, InvalidKey, ProviderError
from rag.settings import FIELD_ROLES, Settings

log = logging.getLogger(__name__)

LISTING_TTL_S = 24 * 3600
UNREACHABLE_TTL_S = 600  # a failed listing is not tried again in this process for this long
MAX_HOPS = 5  # a replacement may itself be retired: follow the chain this far

Listing = dict[str, list[str]]  # model name -> its supported generation methods
Lister = Callable[[], Listing]

# When the listing last failed in this process, by cache file. A command loads its settings
# more than once (its run, then the error reporter's key redaction): without this, an
# unreachable API would be listed, retried and warned about again each time.
_failed_at: dict[Path, float] = {}


@dataclass(frozen=True)
class Retired:
    """A configured model that cannot answer: retired on `since` (its shutdown date, or the day
    the key's listing no longer had it), and what replaces it."""

    field: str
    model: str
    since: date
    replacement: str | None
    missing: bool  # absent from the key's listing, rather than past a catalogue shutdown date

    def route_note(self) -> str:
        return f"{self.model} is retired since {self.since.isoformat()}; {self.replacement} answered"

    def line(self, on_retired: str) -> str:
        why = "is not offered to this key" if self.missing else "is retired"
        if self.replacement is None:
            return f"{self.field}: {self.model} {why} since {self.since.isoformat()} and has no known replacement"
        replace = on_retired == "replace"
        then = f"using {self.replacement} instead" if replace else f"its replacement is {self.replacement}"
        return f"{self.field}: {self.model} {why} since {self.since.isoformat()}; {then}"


@dataclass(frozen=True)
class Checked:
    settings: Settings  # the settings to run with: retired models replaced
    retired: tuple[Retired, ...]
    listing: Listing | None  # None: the API could not be reached; only shutdown dates were checked


def check_models(settings: Settings, lister: Lister, today: date | None = None) -> Checked:
    """Every configured model checked; raises ConfigError with one line per problem when a
    model must stop the command (on_retired = "fail", or no replacement is available)."""
    today = today or datetime.now(UTC).date()
    listing = cached_listing(settings, lister)
    problems = [found for field in FIELD_ROLES if (found := _retired(settings, field, listing, today))]
    if not problems:
        return Checked(settings, (), listing)
    lines = [p.line(settings.on_retired) for p in problems]
    stop = settings.on_retired == "fail" or any(p.replacement is None for p in problems)
    if stop:
        hint = (
            'set the model in gemrag.toml (python -m rag models lists the current ones), or on_retired = "replace"'
            if settings.on_retired == "fail"
            else "set the model in gemrag.toml (python -m rag models lists the current ones)"
        )
        raise ConfigError("; ".join(lines) + f". To go on: {hint}.")
    for line in lines:
        log.warning("%s", line)
    replaced = settings.model_copy(
        update={p.field: p.replacement for p in problems}
        | {"replaced": settings.replaced | {p.replacement: p.route_note() for p in problems if p.replacement}}
    )
    return Checked(replaced, tuple(problems), listing)


def _retired(settings: Settings, field: str, listing: Listing | None, today: date) -> Retired | None:
    model = getattr(settings, field)
    row = settings.models[model]
    retired = row.retired_on(today)
    missing = not retired and listing is not None and model not in listing
    if not missing and not retired:
        return None
    since = row.shutdown if row.shutdown and row.shutdown <= today else today
    return Retired(field, model, since, _live_replacement(settings, field, model, listing, today), missing)


def _live_replacement(
    settings: Settings, field: str, model: str, listing: Listing | None, today: date
) -> str | None:
    """The first model down the catalogue's replacement chain that is live, listed for this
    key and of a role the field accepts; but a Pro model is replaced by the field's default
    Pro model while that one is live: Google's replacement for gemini-2.5-pro is a Flash
    model, and Pro escalation quietly stopped (every "pro" route answered by Flash)."""
    default = Settings.model_fields[field].default
    if settings.models[model].role == "pro" and _live(settings, default, listing, today, ("pro",)):
        return str(default)
    seen = {model}
    current = settings.models[model].replacement
    for _ in range(MAX_HOPS):
        if current is None or current in seen or current not in settings.models:
            return None
        if _live(settings, current, listing, today, FIELD_ROLES[field]):
            return current
        seen.add(current)
        current = settings.models[current].replacement
    return None


def _live(settings: Settings, model: object, listing: Listing | None, today: date, roles: tuple[str, ...]) -> bool:
    """A catalogued model of one of `roles`, not retired, and listed for this key (if known)."""
    row = settings.models.get(model) if isinstance(model, str) else None
    return row is not None and not row.retired_on(today) and (listing is None or model in listing) and row.role in roles


def cached_listing(settings: Settings, lister: Lister, clock: Callable[[], float] = time.time) -> Listing | None:
    """The key's model listing, fetched at most once a day per key and endpoint; after a
    failure, not again in this process for UNREACHABLE_TTL_S. The file holds a hash of the
    key, never the key."""
    path = _listing_path(settings)
    try:
        saved = json.loads(path.read_text())
        if clock() - float(saved["fetched_at"]) < LISTING_TTL_S:
            return {str(k): list(v) for k, v in saved["models"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or unreadable: list again
    if clock() - _failed_at.get(path, -math.inf) < UNREACHABLE_TTL_S:
        return None  # warned about already
    listing = _list(lister)
    if listing is None:
        _failed_at[path] = clock()
        return None
    path.write_text(json.dumps({"fetched_at": clock(), "models": listing}, sort_keys=True))
    return listing


def _list(lister: Lister) -> Listing | None:
    """A key that may not list models is a configuration error; an unreachable API is not one
    (the first real call reports it), so the check is then skipped with a warning."""
    try:
        return lister()
    except InvalidKey as error:
        if error.status == 403:
            detail = str(getattr(error.__cause__, "message", "") or "permission denied").rstrip(". ")
            raise ConfigError(
                f"The API key cannot list models (403 PERMISSION_DENIED: {detail}). It lacks permission for "
                "the Generative Language API's ModelService.ListModels method: the key is restricted to other APIs or "
                "methods, or the API is not enabled for its project. Allow it for the key "
                "(https://console.cloud.google.com/apis/credentials) or use a key from "
                "https://aistudio.google.com/apikey; check_models = false skips this check."
            ) from None
        raise
    except ProviderError as error:
        reason = str(error).rstrip(".")
        log.warning("Could not list the models this key can use (%s); checked shutdown dates only.", reason)
        return None


def _listing_path(settings: Settings) -> Path:
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    digest = hashlib.sha256(f"{settings.base_url or ''}\n{key}".encode()).hexdigest()[:16]
    return settings.path(f"models-{digest}.json")
