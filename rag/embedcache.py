"""Query embeddings, cached so a repeated question makes no embedding call.

Keyed by the embedder's `embedding_id` (model and dimensions) and the exact text: a vector
is only reused for the same text under the same embedder, so it is exactly what a new call
would have returned.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Sequence

from rag.kv import KV, Clock, Table, open_kv
from rag.providers.base import Embedder
from rag.settings import Settings
from rag.types import Embedded, Usage


class EmbeddingCache:
    def __init__(self, settings: Settings, kv: KV | None = None, clock: Clock = time.time) -> None:
        self.kv = kv or open_kv(settings, "cache", clock)
        self.table = Table("query-embeddings", settings.cache_ttl_s, settings.embed_cache_max_entries)

    def embed_query(self, embedder: Embedder, text: str) -> Embedded:
        """A hit costs nothing and says so: its usage is zero."""
        key = hashlib.sha256(f"{embedder.embedding_id}\n{text}".encode()).hexdigest()
        raw = self.kv.get(self.table, key)
        if raw is not None:
            model, _, vector = raw.partition(b"\0")
            return Embedded([unpack_vector(vector)], Usage(), model.decode())
        embedded = embedder.embed_query(text)
        self.kv.put(self.table, key, embedded.model.encode() + b"\0" + pack_vector(embedded.vectors[0]))
        return embedded


def pack_vector(vector: Sequence[float]) -> bytes:
    """Little-endian float64, so a vector read back is exactly the one the embedder returned."""
    return struct.pack(f"<{len(vector)}d", *vector)


def unpack_vector(raw: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(raw) // 8}d", raw))
