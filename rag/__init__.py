"""gemrag core: settings, providers, store, retrieval, chain, cache, costs."""

__version__ = "0.1.0"
