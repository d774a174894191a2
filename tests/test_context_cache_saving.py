"""scripts/context_cache_saving.py: the README's measured saving of explicit context caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.scripts import load_script

saving = load_script("context_cache_saving")
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_session_on_the_joined_guides_costs_less_with_the_context_cache(tmp_path: Path) -> None:
    on = saving.ask_session(ROOT / "corpus", 3, True, tmp_path / "on")
    off = saving.ask_session(ROOT / "corpus", 3, False, tmp_path / "off")
    assert (on.caches_created, off.caches_created) == (1, 0)
    assert off.cached_tokens == off.storage_usd == 0
    assert on.cached_tokens > 0 and on.cached_tokens % 3 == 0  # the document, read by each of the 3 answers
    assert on.storage_usd > 0 and on.cost_usd < off.cost_usd
    assert "cached context: created" in on.routes[0]
    assert all("cached context: reused" in route for route in on.routes[1:])
    assert all("a follow-up about the whole of guides.md" in route for route in off.routes[1:])


def test_a_corpus_without_guides_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no Markdown guides"):
        saving.long_document(tmp_path)
