"""Conversation history per session, kept so a client may send only a session id: the API's
`session` and the CLI's `--session` (`python -m rag ask --session ID` asks a follow-up of
the last answer). Stored in the shared cache store (Redis with `REDIS_URL`), so any replica
or terminal continues any conversation; bounded in turns and expiring with the cache TTL.
Each account (API key) has its own `cache_max_entries` conversations: in one shared table,
a key opening sessions by the thousand evicted every other key's conversations."""

from __future__ import annotations

import json

from rag.costs import account_of
from rag.kv import Table, open_kv
from rag.settings import Settings
from rag.types import Message

MAX_MESSAGES = 20  # the rewrite step reads only the recent turns anyway


class Conversations:
    def __init__(self, settings: Settings) -> None:
        self.kv = open_kv(settings, "cache")
        self.settings = settings

    def table(self, session: str) -> Table:
        """The conversations of the session's account ("<key name>/<id>"; "local" else)."""
        return Table(f"conversations/{account_of(session)}", self.settings.cache_ttl_s,
                     self.settings.cache_max_entries)

    def history(self, session: str) -> list[Message]:
        raw = self.kv.get(self.table(session), session)
        return _decode(raw) if raw else []

    def append(self, session: str, question: str, answer: str) -> None:
        """One atomic step in the store: asks of one session that finish together (two tabs, a
        double submit, replicas behind a load balancer) each add their turn, none overwrites
        another's."""

        def add(raw: bytes | None) -> bytes:
            messages = [*(_decode(raw) if raw else []), Message("user", question), Message("model", answer)]
            return json.dumps([{"role": m.role, "text": m.text} for m in messages[-MAX_MESSAGES:]]).encode()

        self.kv.update(self.table(session), session, add)


def _decode(raw: bytes) -> list[Message]:
    return [Message(m["role"], m["text"]) for m in json.loads(raw)]
