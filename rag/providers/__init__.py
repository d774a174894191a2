"""Choosing the models: the generator from the key, the embedder from the collection.

`get_generator` and `get_embedder` give what the settings choose for a new session or a
new collection (Gemini with a key, the offline default without). `Embedders` gives the
embedder that built an existing collection, whatever the key says now, so a collection
ingested offline is still searched with MiniLM after a key is set.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from rag.errors import ConfigError
from rag.providers.base import Embedder, Generator
from rag.settings import Settings, get_settings

if TYPE_CHECKING:
    from rag.providers.gemini import GeminiProvider
    from rag.providers.offline import OfflineProvider


def get_generator(settings: Settings | None = None) -> Generator:
    """The generator of a session: Gemini with a key, the offline answerer without."""
    return _configured(settings or get_settings())


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The embedder a new collection is built with."""
    return _configured(settings or get_settings())


def _configured(settings: Settings) -> GeminiProvider | OfflineProvider:
    if settings.online:
        from rag.providers.gemini import GeminiProvider

        return GeminiProvider(settings)
    from rag.providers.offline import OfflineProvider

    return OfflineProvider()


class Embedders:
    """The embedder for each embedding id a collection records, created once per id and
    shared by every thread. `known` embedders are used as they are (a test's fake, a bench's
    instrumented one); other ids are built from the settings."""

    def __init__(self, settings: Settings, *known: Embedder) -> None:
        self.settings = settings
        self._by_id: dict[str, Embedder] = {e.embedding_id: e for e in known}
        self._lock = threading.Lock()

    def get(self, embedding_id: str) -> Embedder:
        with self._lock:
            if embedding_id not in self._by_id:
                self._by_id[embedding_id] = self._build(embedding_id)
            return self._by_id[embedding_id]

    def _build(self, embedding_id: str) -> Embedder:
        from rag.providers.offline import OfflineProvider

        if embedding_id == OfflineProvider.embedding_id:
            return OfflineProvider()
        gemini_id = f"gemini:{self.settings.embedding_model}:{self.settings.embedding_dim}"
        if embedding_id == gemini_id:
            if not self.settings.online:
                raise ConfigError(
                    f"This collection was built with Gemini embeddings ({embedding_id}); searching it "
                    "needs them too: set GEMINI_API_KEY (and do not force offline mode), or use a "
                    "collection ingested offline."
                )
            from rag.providers.gemini import GeminiProvider

            return GeminiProvider(self.settings)
        raise ConfigError(
            f"This collection was built with the embedder {embedding_id}, which these settings cannot "
            f"provide (they embed with {gemini_id} or offline): set embedding_model and embedding_dim "
            "to match, or re-ingest with --rebuild."
        )


__all__ = ["Embedder", "Embedders", "Generator", "get_embedder", "get_generator"]
