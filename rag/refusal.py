"""How an answer says the documents do not answer, in one place.

The answerers say it in fixed words (Gemini is told to reply `NOT_IN_DOCUMENTS`, the offline
answerer writes `NOT_FOUND`), and the evaluation and the A/B experiments count refusals by
recognising them. Both sides read this module, so a change of wording cannot leave the
evaluator counting a refusal as a wrong answer. A model may still paraphrase the instruction;
the usual paraphrases are recognised too.
"""

from __future__ import annotations

import re

NOT_IN_DOCUMENTS = "The documents do not say."  # what the answering prompt tells a model to reply
NOT_FOUND = "The documents do not seem to answer this question."  # what the offline answerer writes
PHRASES = (NOT_IN_DOCUMENTS, NOT_FOUND)

_PATTERN = re.compile(
    "|".join(
        [
            # the fixed phrases, also when a reason follows ("...this question: the passages found never mention X")
            *(re.escape(p.lower().rstrip(".")) for p in PHRASES),
            r"\b(documents?|sources?|context|passages?)\b[^.]{0,40}\b(do(es)?\s*not|do(es)?n't|did not|didn't)\s+"
            r"(say|mention|contain|cover|specify|state|include|answer|provide)",
            r"\b(do(es)?\s*not|do(es)?n't|did not|didn't|cannot|can't|could not|couldn't)\s+"
            r"(find|see|locate)\b[^.]{0,60}\b(documents?|sources?|context|passages?)",
            r"\bno (information|mention|details?)\b[^.]{0,40}\b(documents?|sources?|context|passages?)",
            r"\bnot (mentioned|stated|covered|specified|found|addressed)\b[^.]{0,30}"
            r"\b(documents?|sources?|context|passages?)",
            r"\b(i|we) (don't|do not) know\b",
        ]
    )
)


def says_not_in_documents(text: str) -> bool:
    """Whether `text` says the documents do not answer, in the fixed words or a usual
    paraphrase. Case and runs of white space do not matter."""
    return bool(_PATTERN.search(" ".join(text.lower().split())))
