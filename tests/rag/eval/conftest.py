"""Fixtures of the evaluation tests: the tiny corpus in a store, a test set over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.eval.checkpoint import Checkpoint
from rag.eval.runner import Evaluator
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from tests.fakes.tiny_corpus import build_store


@pytest.fixture
def tiny_store(settings: Settings, offline_provider: OfflineProvider) -> Store:
    return build_store(settings, offline_provider, name="eval-tiny")


@pytest.fixture
def evaluator(settings: Settings, offline_provider: OfflineProvider, tiny_store: Store, tmp_path: Path) -> Evaluator:
    return Evaluator(settings, offline_provider, tiny_store, Checkpoint(tmp_path / "out"))
