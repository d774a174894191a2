from dataclasses import dataclass, field

import pytest

from rag.answer import Route
from rag.errors import QuotaExhausted
from rag.prompts import answer_prompt
from rag.router import Router, WholeDocument, named_documents
from rag.text import asks_for_whole_document
from rag.types import Passage, Prompt


@dataclass
class CountingProvider:
    """Only what the router uses: model names, online, and a token count it can observe."""

    tokens: int = 0
    online: bool = True
    flash_model: str = "flash-x"
    pro_model: str = "pro-x"
    counted: list[Prompt] = field(default_factory=list)

    def count_tokens(self, prompt: Prompt, model: str | None = None) -> int:
        self.counted.append(prompt)
        return self.tokens


@pytest.fixture
def router_for(settings):
    def make(**provider) -> tuple[Router, CountingProvider]:
        p = CountingProvider(**provider)
        return Router(settings.model_copy(update={"pro_threshold_tokens": 1_000,
                                                   "whole_document_budget_tokens": 5_000}), p), p

    return make


def _prompt(chars: int) -> Prompt:
    return answer_prompt("question?", (Passage(1, "x" * chars, "a.md"),))


def test_small_prompt_goes_to_flash_without_asking_the_provider_to_count(router_for):
    router, provider = router_for(tokens=10**9)
    route = router.route(_prompt(100)).route
    assert (route.kind, route.model) == ("flash", "flash-x")
    assert "<= 1,000" in route.reason and route.reason.endswith("flash-x")
    assert provider.counted == []  # bounded by the character count: no round trip


def test_large_context_escalates_to_pro_with_the_count_in_the_reason(router_for):
    router, provider = router_for(tokens=3_210)
    routed = router.route(_prompt(5_000))
    assert (routed.route.kind, routed.route.model, routed.route.prompt_tokens) == ("pro", "pro-x", 3_210)
    assert routed.route.reason == "context 3,210 tokens > 1,000: escalated to pro-x"
    assert len(provider.counted) == 1


def test_many_characters_but_few_tokens_stays_on_flash(router_for):
    router, _ = router_for(tokens=900)
    route = router.route(_prompt(5_000)).route
    assert route.kind == "flash" and route.prompt_tokens == 900
    assert "context 900 tokens <= 1,000" in route.reason


def test_whole_document_that_fits_is_sent_whole_to_pro(router_for):
    router, _ = router_for(tokens=4_000)
    whole = WholeDocument("handbook.pdf", _prompt(20_000))
    routed = router.route(_prompt(10), whole)
    assert routed.prompt is whole.prompt
    assert routed.route.kind == "pro"
    assert "whole of handbook.pdf (4,000 tokens, sent whole)" in routed.route.reason


def test_whole_document_over_budget_sends_the_passages_and_says_why(router_for):
    router, _ = router_for(tokens=9_000)
    chunks = _prompt(10)
    routed = router.route(chunks, WholeDocument("big.pdf", _prompt(20_000)))
    assert routed.prompt is chunks
    assert routed.route.kind == "flash"
    assert "the whole of big.pdf (9,000 tokens) is over the 5,000-token budget" in routed.route.reason


def test_forced_model_bypasses_the_router(router_for):
    router, provider = router_for(tokens=10**6)
    route = router.route(_prompt(50_000), forced_model="pro-x").route
    assert route.model == "pro-x" and "chosen by the caller" in route.reason
    assert provider.counted == []


def test_offline_provider_routes_as_offline(router_for):
    router, _ = router_for(online=False, flash_model="offline-extractive", pro_model="offline-extractive")
    route = router.route(_prompt(100)).route
    assert (route.kind, route.model) == ("offline", "offline-extractive")
    assert route.reason.startswith("offline mode")


def test_fallback_says_pro_was_out_of_quota_and_why_pro_was_wanted(router_for):
    router, _ = router_for()
    pro = Route("pro", "pro-x", "context 3,210 tokens > 1,000: escalated to pro-x", 3_210)
    fallback = router.fallback(pro, QuotaExhausted("quota exhausted for pro-x", model="pro-x", status=429))
    assert (fallback.kind, fallback.model, fallback.prompt_tokens) == ("fallback", "flash-x", 3_210)
    assert fallback.reason.startswith("pro-x is out of quota")
    assert "flash-x answered instead" in fallback.reason and "3,210 tokens > 1,000" in fallback.reason


@pytest.mark.parametrize(
    ("question", "whole"),
    [
        ("Summarise this document", True),
        ("summarize the handbook please", True),
        ("Give me a summary of report.pdf", True),
        ("What does the whole document say about leave?", True),
        ("Read the entire file and list the deadlines", True),
        ("How many vacation days do I get?", False),
        ("Summarise the retry policy in one line", False),
        ("TL;DR of the manual?", True),
        ("tl;dr tl;dr\nthe whole thing, from the pricing guide", True),  # the noun after a cue, lines apart
        ("In the pricing guide, summarise the retry policy", False),  # the noun before the cue only
    ],
)
def test_questions_asking_for_whole_documents(question, whole):
    assert asks_for_whole_document(question) is whole


def test_named_document_is_matched_by_path_file_name_or_stem():
    sources = ["guides/api-guide.md", "handbook.pdf", "notes/security_policy.md"]
    assert named_documents("summarise handbook.pdf", sources)[:1] == ["handbook.pdf"]
    assert named_documents("summarise the API guide document", sources)[:1] == ["guides/api-guide.md"]
    assert named_documents("overview of the security policy document", sources)[:1] == ["notes/security_policy.md"]
    assert named_documents("summarise this document", sources) == []


def test_document_wanted_falls_back_to_the_best_ranked_source(router_for):
    router, _ = router_for()
    assert router.wanted("summarise this document", ["b.md", "a.md"]).source == "b.md"
    assert router.wanted("summarise the a document", ["b.md", "a.md"]).source == "b.md"
    assert router.wanted("How long is leave?", ["b.md"]).source is None


def test_a_conversation_about_a_whole_document_stays_on_it(router_for) -> None:
    from rag.types import Message

    router, _ = router_for()
    asked = [Message("user", "Summarise the whole handbook.pdf"), Message("model", "It covers ...")]
    assert router.document_discussed(asked, ["handbook.pdf", "api.md"]) == "handbook.pdf"
    assert router.document_discussed(asked, ["api.md", "handbook.pdf"]) is None  # the follow-up left it
    unnamed = [Message("user", "Give me an overview of this document"), Message("model", "...")]
    assert router.document_discussed(unnamed, ["api.md"]) == "api.md"  # the one it was about ranks first
    chat = [Message("user", "How many vacation days?"), Message("model", "25 [1]")]
    assert router.document_discussed(chat, ["handbook.pdf"]) is None
    assert router.document_discussed([], ["handbook.pdf"]) is None


def test_a_named_document_is_looked_up_among_all_the_collection_files(router_for) -> None:
    router, _ = router_for()
    held = ["handbook.pdf", "pdf/pricing.pdf", "notes/pricing.md", "api.md"]
    ranked = ["handbook.pdf", "api.md"]
    assert router.wanted("Summarise the whole pricing.pdf", ranked, held).source == "pdf/pricing.pdf"
    assert router.wanted("Summarise the whole api document", ranked, held).source == "api.md"
    assert router.wanted("Summarise the capital document", ranked, held).source == "handbook.pdf"  # not "api"
    several = router.wanted("Summarise the pricing guide", ranked, held)  # pricing.pdf or pricing.md?
    assert several.source is None and "could name any of pdf/pricing.pdf, notes/pricing.md" in several.unfound
    assert router.wanted("Summarise the pricing guide", ["notes/pricing.md"], held).source == "notes/pricing.md"
    missing = router.wanted("Summarise the whole invoices.pdf", ranked, held)
    assert missing.source is None and "names invoices.pdf" in missing.unfound
    other = router.wanted("Summarise the whole file pricing.docx", ranked, held)  # not pricing.pdf under another name
    assert other.source is None and "names pricing.docx" in other.unfound


def test_a_question_naming_an_unfound_file_is_routed_on_its_passages_and_says_so(router_for) -> None:
    router, _ = router_for()
    unfound = "the question names invoices.pdf, which is not among the files searched"
    routed = router.route(_prompt(400), unfound=unfound)
    assert routed.route.kind == "flash" and routed.document is None
    assert "invoices.pdf, which is not among the files searched, so the passages found were sent" in routed.route.reason
