"""API keys and roles.

Keys are stored hashed only ("name:role:sha256:<hex>"), in `GEMRAG_API_KEYS` or a file:
a leaked config does not leak a usable key. A fifth field names the collections the key may
use ("name:ask:sha256:<hex>:handbook|policies"): one server can hold several teams' documents
without every key reading, and an ingest key replacing, every team's. Without it a key
reaches every collection, as before. Keys are 32 random bytes, so a plain SHA-256
is enough (a slow password hash protects guessable secrets, not random ones). Roles are
ordered: `admin` may do everything `ingest` may, which may do everything `ask` may.

With no keys configured the server trusts the local machine only: it refuses to bind
another address, and refuses any request that does not come from loopback.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.errors import ConfigError, GemragError
from rag.store import check_collection_name

Role = Literal["ask", "ingest", "admin"]
ROLES: tuple[Role, ...] = ("ask", "ingest", "admin")  # each includes the ones before it
KEY_PREFIX = "gr_"
LOCAL_CALLER = "local"
COLLECTIONS_SEP = "|"  # between the collections of a key's fifth field: a name never holds one


class Unauthorized(GemragError):
    """No key, or a key that matches none configured (401)."""


class Forbidden(GemragError):
    """A valid key without the role the route needs or for another collection, or a
    non-loopback client with no keys (403)."""


@dataclass(frozen=True)
class Caller:
    """Who is asking: sessions and their costs belong to this name. `collections`: the ones
    the key may use, None for all."""

    name: str
    role: Role
    collections: frozenset[str] | None = None

    def may(self, needed: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)

    def reaches(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def default(self, collection: str) -> str:
        """The collection a request that names none asks: the server's `collection`, or the
        key's only one when it may not use the server's (a team's key needs no "collection"
        in every request)."""
        if self.reaches(collection) or self.collections is None or len(self.collections) != 1:
            return collection
        return next(iter(self.collections))

    def enter(self, collection: str) -> str:
        """The collection, if the key may use it, else Forbidden naming the ones it may."""
        if not self.reaches(collection):
            mine = ", ".join(sorted(self.collections or ())) or "none"
            raise Forbidden(f"Key {self.name!r} may not use collection {collection!r}; its collections: {mine}.")
        return collection

    def require(self, needed: Role) -> Caller:
        """Itself if it may, else Forbidden naming its role and the one needed."""
        if not self.may(needed):
            raise Forbidden(f"Key {self.name!r} has role {self.role!r}; this needs {needed!r}.")
        return self


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(name: str, role: Role, collections: Sequence[str] = ()) -> tuple[str, str]:
    """A fresh key and the line to configure it with (the key itself is shown once, never
    stored); limited to `collections` when some are named."""
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name or ":" in name or "," in name or "/" in name:
        raise ConfigError(f"key name {name!r} must be non-empty and contain no ':', ',' or '/'")
    for collection in collections:
        check_collection_name(collection)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    scope = f":{COLLECTIONS_SEP.join(dict.fromkeys(collections))}" if collections else ""
    return key, f"{name}:{role}:sha256:{key_hash(key)}{scope}"


def is_loopback(host: str | None) -> bool:
    if host in ("localhost", "testclient"):  # Starlette's in-process test client
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class ApiKeys:
    def __init__(self, entries: dict[str, Caller]) -> None:
        self._by_hash = entries

    @classmethod
    def load(cls, inline: str, file: Path | None) -> ApiKeys:
        """Entries from the env var and the file; a malformed one is refused naming where it is."""
        lines = [("GEMRAG_API_KEYS", item) for item in inline.split(",")]
        if file is not None:
            try:
                text = file.read_text()
            except OSError as exc:
                raise ConfigError(f"api_keys_file {file}: cannot read it ({exc.strerror or exc})") from None
            lines += [(f"{file}:{n}", line) for n, line in enumerate(text.splitlines(), start=1)]
        entries: dict[str, Caller] = {}
        named: dict[str, tuple[str, Caller]] = {}  # the first entry of each name, and where it is
        for where, raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":")
            if len(parts) not in (4, 5) or parts[2] != "sha256" or parts[1] not in ROLES or len(parts[3]) != 64:
                alone = " (a key's collections are separated by '|', not ',')" if len(parts) == 1 else ""
                raise ConfigError(
                    f"{where}: API key entry {parts[0]!r} is not 'name:role:sha256:<64 hex>[:collection|...]' with "
                    f"role one of {', '.join(ROLES)}{alone}; make one with python -m rag.server keygen NAME ROLE"
                )
            caller = Caller(parts[0], parts[1], _collections(parts[4:], where, parts[0]))
            first_where, first = named.setdefault(caller.name, (where, caller))
            if first != caller:  # sessions, costs and the UI's login go by name: one name, one set of rights
                raise ConfigError(
                    f"{where}: API key entry {caller.name!r} has another role or other collections than the entry of "
                    f"that name at {first_where}; keys sharing a name (one being rotated) must match: give each its "
                    "own name")
            entries[parts[3].lower()] = caller
        return cls(entries)

    @property
    def configured(self) -> bool:
        return bool(self._by_hash)

    def caller_of(self, name: str) -> Caller | None:
        """The key a mounted app's user logged in with, by its name (keys sharing a name have
        the same rights: `load`), None for a name no key has."""
        return next((c for c in self._by_hash.values() if c.name == name), None)

    def caller(self, presented: str | None, client_host: str | None) -> Caller:
        if not self.configured:
            if not is_loopback(client_host):
                raise Forbidden("No API keys are configured, so this server answers loopback clients only.")
            return Caller(LOCAL_CALLER, "admin")
        if not presented:
            raise Unauthorized("An API key is required: send 'Authorization: Bearer <key>'.")
        caller = self._by_hash.get(key_hash(presented))
        if caller is None:
            raise Unauthorized("The API key is not valid.")
        return caller


def _collections(field: Sequence[str], where: str, name: str) -> frozenset[str] | None:
    """A key entry's fifth field: None when there is none (every collection)."""
    if not field:
        return None
    names = [n.strip() for n in field[0].split(COLLECTIONS_SEP)]
    try:
        return frozenset(check_collection_name(n) for n in names)
    except ConfigError as exc:
        raise ConfigError(
            f"{where}: API key entry {name!r}: {exc} The fifth field lists collections separated by "
            f"'{COLLECTIONS_SEP}'; leave it out (no trailing ':') for a key that reaches them all."
        ) from None


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return x_api_key
