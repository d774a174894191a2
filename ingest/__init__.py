"""Ingestion: load → chunk → embed → store, incremental and crash-safe."""
