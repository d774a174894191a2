"""One malformed JSON reply from the API does not stop an ingest (issue #14, item 8): it is
retried like a 5xx, through `python -m ingest` as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.testing.fake_gemini import FakeGemini, Fault
from tests.fakes.corpus import Corpus
from tests.fakes.gemini_cli import gemini_env, run

pytestmark = pytest.mark.slow


def test_a_malformed_embedding_reply_is_retried_and_the_ingest_completes(
    corpus: Corpus, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    fake_gemini.inject(Fault.malformed_json(), times=1, method="batchEmbedContents")
    done = run("ingest", str(corpus.root), env=gemini_env(fake_gemini, tmp_path / "data"))
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = [r.status for r in fake_gemini.calls("batchEmbedContents")]
    assert statuses[0] == 200 and len(statuses) >= 2  # the broken reply, then the retry
    assert "malformed" not in done.stdout


def test_malformed_replies_that_persist_fail_with_one_clear_line(
    corpus: Corpus, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    fake_gemini.inject(Fault.malformed_json(), times=None, method="batchEmbedContents")
    done = run("ingest", str(corpus.root), env=gemini_env(fake_gemini, tmp_path / "data", max_attempts=3))
    assert done.returncode != 0
    assert "malformed JSON; after 3 attempts" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_an_ingest_the_budget_cannot_cover_is_refused_before_any_embedding_is_sent(
    corpus: Corpus, fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    """Ingest never checked a budget: with every budget at 0 it embedded on Gemini all the
    same ($0.003 for the sample corpus), though an answer was refused under the same settings."""
    done = run("ingest", str(corpus.root), env=gemini_env(fake_gemini, tmp_path / "data", daily_budget_usd=0))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "daily budget would be exceeded" in done.stdout + done.stderr
    assert fake_gemini.calls("batchEmbedContents") == []
    assert "Traceback" not in done.stderr
    # Not the session budget, a conversation's: an ingest's session is its collection's for
    # ever, and the default $1 would have refused every paid ingest into it once spent.
    spent = run("ingest", str(corpus.root), env=gemini_env(fake_gemini, tmp_path / "data", session_budget_usd=0))
    assert spent.returncode == 0, spent.stdout + spent.stderr
