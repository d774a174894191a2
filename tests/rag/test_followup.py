"""rag/providers/followup.py: which questions lean on the turns before them, and what the
offline rewrite makes of them."""

import pytest


def test_the_offline_rewrite_leaves_a_request_for_a_named_document_standalone():
    """"summarise the pricing guide", asked after a question on free-tier limits, was
    searched with that question's words appended; "summarise that document" points back."""
    from rag.providers.followup import rewrite_follow_up
    from rag.types import Message

    history = [Message("user", "How many requests per minute does the free tier allow?"), Message("model", "...")]
    assert rewrite_follow_up("summarise the pricing guide", history) == "summarise the pricing guide"
    assert rewrite_follow_up("summarise that document", history) == (
        "summarise that document (many requests per minute free tier allow)?")
    assert rewrite_follow_up("and for Pro?", history) == "and for Pro (many requests per minute free tier allow)?"


@pytest.mark.parametrize("question", [
    "what's the GIL?",  # short, but names what it asks about
    "how do I add a legend to my plot?",
    "how do I look up a row by its name?",  # the pronoun comes after what it stands for
    "what font size do labels use by default and how do I change it?",
    "How do we keep repeated attempts from piling extra load on an API that is already struggling?",
    "round(2.675, 2) gives me 2.67, is that a bug?",
    "itertools.groupby gives me the same key several times, what am I doing wrong?",
    "is there an emacs mode for asy files?",
    "sort a list?",  # two words, naming nothing: still a question of its own
    "how do I check that a file exists?",  # "that" opens a clause
    "Does the IT policy allow remote work?",
    "OR-Tools or GLPK, which is faster?",
    "Why do the same random numbers appear every time I run the script?",
    "How often did people ask our help bot exactly the same thing?",
    "Is it possible to read a csv file without pandas?", "How long does it take to build glpk from source?",
    "a library that parses dates?", "any module that reads zip files?",  # "that" relates a clause
    "APIキーはどのくらいの頻度で変更すべきですか？",  # no English word, but it names what it asks about
    "something that rounds floats to two places?", "the function that splits a path?",
    "what other ways can I write s.t. in a constraint?",  # "other" of its own subject, named
    "are there other packages for tables?", "which other key sets the space?",  # or of another kind
    "is there any other way to set the margins in geometry?",  # or saying more
])
def test_a_question_that_stands_on_its_own_is_searched_as_asked_after_another(question):
    """Asked mid-conversation about something else, 84 of the test sets' 296 questions were
    rewritten with the previous question's words and lost pages (scripts/chat_check.py)."""
    from rag.providers.followup import rewrite_follow_up
    from rag.types import Message

    history = [Message("user", "How do I install glpk from source?"), Message("model", "...")]
    assert rewrite_follow_up(question, history) == question


@pytest.mark.parametrize("question", [
    "and on Tier 1?", "What about 503?", "what if the file has no header line?", "Flash-Lite?", "why?",
    "Why is its concurrency lower than the default?", "will it get deleted by itself?",
    "What does a case score on it if its first relevant chunk is at rank 3?",
    "what happens if I forget that and call glp_intopt without an optimal basis?",
    "what does the other option do?", "does the same thing work for stopping a long computation?",
    "Can they be carried over?", "summarise that manual", "that page says what?", "does that work?",
    "it's slow, why?", "it’s slow, why?", "what's the default?", "ok, what about 503?", "Thanks. And for Pro?",
    "for Windows?", "which one is faster?", "how do the others compare?", "what's the difference?",
    "how would I do the same thing on Windows?", "does it work on Windows?", "is it faster?",
    "use that instead?", "is that the default?", "what's that?",
    "do i have to do that every time i connect?",  # "every time" after "that" opens no clause
    "what other methods can i pick?", "is there another way?",  # more of what the last answer named
])
def test_a_follow_up_gets_the_previous_question_s_words(question):
    from rag.providers.followup import rewrite_follow_up
    from rag.types import Message

    history = [Message("user", "How do I install glpk from source?"), Message("model", "...")]
    assert rewrite_follow_up(question, history).endswith("(install glpk source)?")


def test_a_follow_up_of_a_follow_up_keeps_the_topic_of_the_question_that_set_it():
    """A third turn had the second's words alone ("pro"): "what happens when I go over it?"
    quoted how questions are routed to Pro instead of what a rate-limit error does. The
    words come back to the question that stands on its own, no further; without the name a
    later question replaced ("flash" after "and for Pro?") or a thanks (a review's repros)."""
    from rag.providers.followup import rewrite_follow_up
    from rag.types import Message

    def chat(*questions: str) -> list[Message]:
        return [m for q in questions for m in (Message("user", q), Message("model", "..."))]

    history = chat("How do I install glpk from source?", "How many requests per minute does the free tier allow "
                   "for Flash?", "and for Pro?")
    assert rewrite_follow_up("what happens when I go over it?", history) == (
        "what happens when I go over it (pro many requests per minute free tier allow)?")
    assert rewrite_follow_up("and for Pro?", history[:4]) == (
        "and for Pro (many requests per minute free tier allow flash)?")
    assert rewrite_follow_up("and for Pro?", chat("What does Gemini Flash cost?", "Thanks!")) == (
        "and for Pro (gemini flash cost)?")
    # an aside opening a question is dropped, the same word in its subject kept (CLI walkthrough)
    assert rewrite_follow_up("and bottom to top?", chat("Great, how do I make dot draw from left to right?")) == (
        "and bottom to top (make dot draw left right)?")
    # ... but a word it starts with is no aside ("Right-to-left", "No-SQL": review)
    assert rewrite_follow_up("and in Qt?", chat("Right-to-left layout in GTK: how?")) == (
        "and in Qt (right-to-left layout gtk)?")
    asked = ["what about 503?", "and 500?", "and for Pro?"]
    assert rewrite_follow_up("does it retry?", chat("What does HTTP 429 mean?", *asked)) == (
        "does it retry (pro 500 503)?")  # three questions back at most
