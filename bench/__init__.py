"""Benchmarks: `python -m bench` measures ingest, retrieval, answering and the cache
against in-run baselines (the embedder alone, a plain LangChain pipeline, the provider)."""
