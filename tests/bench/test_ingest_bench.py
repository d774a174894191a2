"""The ingest benchmark's ceiling: the embedder alone over exactly what ingest embedded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bench.ingest_bench import COLLECTION, measure_ceiling
from rag.providers.minilm import DIM
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from rag.types import Chunk


class Recording:
    """Stands in for the model: keeps what it was asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts = list(texts)
        return np.zeros((len(texts), DIM), dtype=np.float32)


def test_the_ceiling_embeds_each_chunk_with_its_context_as_ingest_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, api_key=None)
    chunks = [
        Chunk(id="a", text="Rows are numbered from 1.", source="glpk.pdf", index=0, start=0, end=25,
              content_hash="ha", page=14, context="2.1 Problem object"),
        Chunk(id="b", text="No outline here.", source="notes.md", index=0, start=0, end=16, content_hash="hb"),
    ]
    Store(settings, OfflineProvider.embedding_id, COLLECTION).upsert(chunks, [[0.1] * DIM, [0.2] * DIM])
    model = Recording()
    monkeypatch.setattr("rag.providers.minilm.shared_minilm", lambda: model)

    ceiling = measure_ceiling(settings)

    assert ceiling.chunks == 2
    assert sorted(model.texts) == sorted(c.embedded_text for c in chunks)
    assert "2.1 Problem object\nRows are numbered from 1." in model.texts
