"""Choose the provider from settings: Gemini with a key, the offline default without."""

from __future__ import annotations

from rag.providers.base import Provider
from rag.settings import Settings, get_settings


def get_provider(settings: Settings | None = None) -> Provider:
    settings = settings or get_settings()
    if settings.online:
        from rag.providers.gemini import GeminiProvider

        return GeminiProvider(settings)
    from rag.providers.offline import OfflineProvider

    return OfflineProvider()


__all__ = ["Provider", "get_provider"]
