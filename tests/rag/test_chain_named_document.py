"""A question asking for a whole named document gets that document, looked up among all the
collection's files, not only those retrieval found; one naming a file the collection does not
hold is answered from the passages found, and the route says so. On the Gemini path, against
the fake Gemini server."""

from __future__ import annotations

import pytest

from rag.answer import AskOptions
from rag.chain import Chain
from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini
from tests.fakes.tiny_corpus import DOCS, Doc, build_store

# Its words share nothing with the questions below, so retrieval ranks it last.
PRICING = Doc("pdf/pricing.pdf", "Flash bills thirty cents per million input tokens; Pro bills two dollars.", 1)
ONE_HIT = AskOptions(top_k=1)  # retrieval finds one file, and not pricing.pdf


@pytest.fixture
def chain(gemini_settings: Settings) -> Chain:
    provider = GeminiProvider(gemini_settings)
    return Chain(gemini_settings, provider, build_store(gemini_settings, provider, docs=(*DOCS, PRICING)))


def sent(fake: FakeGemini) -> str:
    """The text of the one answer call's conversation: the sources, then the question."""
    [call] = fake.calls("streamGenerateContent")
    return "\n".join(part.get("text", "") for turn in call.body["contents"] for part in turn["parts"])


@pytest.mark.parametrize("question", ["Summarise the whole pricing.pdf", "Summarise the whole pricing guide"])
def test_the_named_document_is_sent_whole_though_retrieval_missed_it(
    chain: Chain, fake_gemini: FakeGemini, question: str
) -> None:
    """Before: the name was looked for among the retrieved files only, and the best-ranked
    one (another document) was sent whole to Pro instead."""
    assert PRICING.source not in {h.chunk.source for h in chain.search(question, options=ONE_HIT).hits}
    record = chain.ask(question, options=ONE_HIT)
    assert record.route.kind == "pro"
    assert f"the question asks for the whole of {PRICING.source}" in record.route.reason
    assert PRICING.text in sent(fake_gemini)


def test_a_named_file_the_collection_lacks_is_answered_from_the_passages_found(
    chain: Chain, fake_gemini: FakeGemini
) -> None:
    """Before: another document was sent whole to Pro, with nothing saying invoices.pdf was
    not there."""
    record = chain.ask("Summarise the whole invoices.pdf", options=ONE_HIT)
    assert record.route.kind == "flash"
    assert "the question names invoices.pdf, which is not among the files searched" in record.route.reason
    assert "sent instead of a whole document" in record.route.reason
    [shown] = record.sources
    assert f'file="{shown.source}"' in sent(fake_gemini)
    assert fake_gemini.calls("countTokens") == []  # no whole document was measured for Pro
