"""Conversation history per session, kept by the server so a client may send only a session
id. Stored in the shared cache store (Redis with `REDIS_URL`), so any replica continues any
conversation; bounded in turns and expiring with the cache TTL."""

from __future__ import annotations

import json

from rag.kv import Table, open_kv
from rag.settings import Settings
from rag.types import Message

MAX_MESSAGES = 20  # the rewrite step reads only the recent turns anyway


class Conversations:
    def __init__(self, settings: Settings) -> None:
        self.kv = open_kv(settings, "cache")
        self.table = Table("conversations", settings.cache_ttl_s, settings.cache_max_entries)

    def history(self, session: str) -> list[Message]:
        raw = self.kv.get(self.table, session)
        return [Message(m["role"], m["text"]) for m in json.loads(raw)] if raw else []

    def append(self, session: str, question: str, answer: str) -> None:
        messages = [*self.history(session), Message("user", question), Message("model", answer)][-MAX_MESSAGES:]
        self.kv.put(self.table, session, json.dumps([{"role": m.role, "text": m.text} for m in messages]).encode())
