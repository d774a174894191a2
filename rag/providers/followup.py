"""The offline default's follow-up rule: whether a question leans on the turns before it,
and the standalone question it then becomes.

With no model to rewrite a follow-up ("and for Pro?"), the offline provider appends the
previous question's content words, but only to a question that leans back: a question that
stands on its own keeps its words, or the last topic's words would pull its search there
(scripts/chat_check.py measures both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.keyterms import key_terms
from rag.text import STOPWORDS, another_language, content_words
from rag.types import Message

FOLLOW_UPS_BACK = 3  # earlier questions whose words a follow-up may take, the latest first


def rewrite_follow_up(question: str, history: Sequence[Message]) -> str:
    """Deterministic standalone rewrite: a follow-up that leans on earlier turns
    (`leans_back`) gets the content words of the questions before it appended, the latest
    first, back to the one that set the topic (the first that stands on its own; at most
    `FOLLOW_UPS_BACK`), less a thanks or an "ok" and the names a later question replaced
    ("flash" after "and for Pro?"). With the previous question's words alone, a third turn
    lost the topic: after "How many requests per minute does the free tier allow for Flash?" and
    "and for Pro?", "what happens when I go over it?" was searched as "... (pro)" and quoted
    how questions are routed to Pro. A question that stands on its own is searched as it
    is: the previous topic's words would pull its search there (scripts/chat_check.py)."""
    asked = [m.text for m in history if m.role == "user"]
    if not asked or not leans_back(question):
        return question
    earlier: list[str] = []
    replaced = False  # a later question named its own subject ("and for Pro?"): older names were replaced
    for before in reversed(asked[-FOLLOW_UPS_BACK:]):
        names = {w for term in key_terms(before) for w in content_words(term)}
        said = content_words(_LEADING_ASIDE.sub("", before))
        earlier += [w for w in said if w not in _POLITE and not (replaced and w in names)]
        replaced = replaced or bool(names)
        if not leans_back(before):
            break  # the question that set the topic
    words = content_words(question)
    missing = [w for w in dict.fromkeys(earlier) if w not in words]
    return f"{question.rstrip(' ?')} ({' '.join(missing)})?" if missing else question


# A question that goes on from the last one says so at its start, perhaps after an "ok" or
# a "thanks" ("and for Pro?", "ok, what about 503?", "what if the file has no header?",
# "for Windows?"), points back at a thing of the last answer within its first words ("the
# other option", "does the same thing work", "which one"; further on, "exactly the same
# thing" is the question's own), or ends asking for more ("the difference?"). Not a name
# that starts with such a word ("OR-Tools", "so-called").
_ASIDE = r"(?:(?:ok|okay|thanks|thank you|great|cool|right|sure|nice|hmm|yes|no)\b(?!-\w)\W*)*"  # not "Right-to-left"
# An aside opening a question is no part of its subject, nor is a thanks anywhere; "right" and
# "great" elsewhere are ("left to right": "and bottom to top?" was searched without "right").
_LEADING_ASIDE = re.compile(rf"^\W*{_ASIDE}", re.I)
_POLITE = frozenset({"ok", "okay", "thanks", "thank", "hmm"})
_GOES_ON = re.compile(
    rf"^{_ASIDE}(?:and|but|also|or|so|what about|how about|what if)(?![-\w])"
    rf"|^{_ASIDE}(?:for|on|in|with|at|under|without|per|via)(?![-\w])(?:\W+[\w.-]+){{0,2}}\W*$"
    r"|^(?:\S+\s+){0,4}(?:the (?:same|other)(?= (?:one|ones|thing|things|way|option|options|kind|case)\b|\W*$)"
    r"|the others\b|(?:which|the (?:first|second|third|last|latter|former|previous)) ones?\b)"
    r"|\b(?:the difference|an example|anything else|what else)\W*$"
)
# "What other methods can I pick?" asks for more of what the last answer named, in a word
# of kind ("ways", "options"), unless it says more (`OTHER_WORDS`) or names its own subject
# ("what other ways can I write s.t. in a constraint?": `key_terms`). "Are there other
# packages for tables?" or "which other key sets the space?" stand on their own.
_OTHER = re.compile(
    rf"^{_ASIDE}(?:what|which|any|(?:are|is) there(?: any)?)\s+(?:other|another)\s+"
    r"(?:ways?|methods?|options?|ones?|things?|ideas?|alternatives?|choices?|settings?|values?|kinds?|types?"
    r"|approach(?:es)?|possibilit(?:y|ies)|solutions?)\b")
OTHER_WORDS = 3  # content words at most, the word of kind included
_CONTRACTED = re.compile(r"n't\b|'(?:s|re|ve|ll|d|m)\b")
_PERSONAL = frozenset({"it", "its", "itself", "they", "them", "their", "theirs", "he", "him", "his", "she", "her"})
# After "it", words that make it stand for nothing: "is it possible to ...?", "how long does
# it take to ...?", "does it matter whether ...?".
_DUMMY_IT = frozenset({"possible", "ok", "okay", "safe", "true", "normal", "worth", "necessary", "recommended",
                       "wise", "allowed", "take", "takes", "matter", "matters"})
_DEMONSTRATIVE = frozenset({"this", "that", "these", "those"})
# After "that", a word that opens a clause: "check that a file exists" points at nothing.
_OPENS_CLAUSE = frozenset({"a", "an", "the", "my", "your", "our", "its", "his", "her", "their", "all", "no", "each",
                           "every", "some", "i", "you", "we", "they"})
# Before "that", a noun these open ("a library that ...", "any module that ...") or one of
# these words: "that" relates a clause to it and points at nothing.
_DETERMINER = frozenset({"a", "an", "the", "any", "some", "every", "each", "no", "another"})
# "every time", "each day": after "that", an adverb, not a clause ("do I have to do that every time?").
_EVERY = frozenset({"every", "each"})
_TIMES = frozenset({"time", "day", "night", "morning", "week", "month", "year"})
_INDEFINITE = frozenset({"something", "anything", "nothing", "everything", "someone", "anyone", "somewhere",
                         "anywhere"})
PRONOUN_REACH = 7  # words from a question's start within which a pronoun seldom has anything in it to point at
DEMONSTRATIVE_REACH = 3


def leans_back(question: str) -> bool:
    """Whether a question leans on the turns before it: it says it goes on or points back at
    a thing of the last answer (`_GOES_ON`), or asks for other things without naming its
    subject (`_OTHER`: "what other methods can i pick?"); it is one word or none, naming nothing ("why?",
    "Flash-Lite?", "what's the difference?"); a personal pronoun comes within its first
    `PRONOUN_REACH` words ("will it get deleted by itself?", "why is its concurrency
    lower?"), where a question has seldom named yet what it could stand for, unlike "how
    do I add a legend to my plot and change its font?"; or a demonstrative stands for a
    thing ("forget that and call ...", "does that work?") or opens the question ("that page
    says what?"). A short question is not a follow-up for being short: "what's the GIL?"
    or "how do I add a legend to my plot?", asked after a question on something else, was
    searched with that question's words and lost its page (chat_check: 84 of 296 questions
    asked after another were rewritten, hit@6 down on three sets of four); so was a request
    for a whole document by name ("summarise the pricing guide"). Apostrophes of either
    kind split words ("it's" holds "it"); "IT" in capitals is no pronoun, nor an "it" that
    stands for nothing ("is it possible to ...?", `_DUMMY_IT`), nor a "that" that opens a
    relative clause ("a library that parses dates?", `_relative`)."""
    typed = question.strip().replace("\u2019", "'")
    lowered = typed.lower()
    if _GOES_ON.search(lowered) or (
        _OTHER.search(lowered) and len(content_words(lowered)) <= OTHER_WORDS and not key_terms(typed)
    ):
        return True
    if len(content_words(_CONTRACTED.sub("", lowered))) <= 1 and not key_terms(typed) and not another_language(typed):
        return True
    words = re.findall(r"[A-Za-z0-9_]+", typed)
    for at, word in enumerate(words):
        lower = word.lower()
        after = words[at + 1].lower() if at + 1 < len(words) else ""
        then = words[at + 2].lower() if at + 2 < len(words) else ""
        if lower in _PERSONAL and at < PRONOUN_REACH and word != "IT" and not (lower == "it" and after in _DUMMY_IT):
            return True
        if lower in _DEMONSTRATIVE and not _relative(words, at) and (
            at < DEMONSTRATIVE_REACH
            or (at < PRONOUN_REACH and (not after or (after in STOPWORDS and after not in _OPENS_CLAUSE)
                                         or (after in _EVERY and then in _TIMES)))
        ):
            return True
    return False


def _relative(words: Sequence[str], at: int) -> bool:
    """Whether the "that" at `at` relates a clause to the noun before it: a noun a
    determiner opens ("a library that", "any module that") or an indefinite pronoun
    ("something that"). A "that" after a verb is the verb's object ("does that work?",
    "use that instead?")."""
    if words[at].lower() != "that" or at == 0:
        return False
    before = words[at - 1].lower()
    opened = at >= 2 and words[at - 2].lower() in _DETERMINER and before not in STOPWORDS
    return opened or before in _INDEFINITE
