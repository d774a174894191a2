"""Words that carry meaning: the one list of stop words (BM25 adds bm25s' English list to it)
and the content-word tokenisation that the offline answerer, the citation checks and the UI's
evidence highlighting share. BM25 tokenises on its own (rag.bm25.Terms: words of two or more
characters, stemmed), as keyword matching across word forms wants. Also the one pattern of a
Markdown code fence, which ingest writes and splits at and the answerer never quotes; a
question's literal tokens ("429", "os.path.join") and the share of them a text holds, which
the second ranking stage and the offline answerer both score by; the one English stemmer,
which BM25 and the answerer's test of whether a sentence shares a word with the question
use; and the reading of a model's JSON reply, which the second ranking stage and the judge
share."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from functools import cache
from typing import Any

WORD = re.compile(r"[a-z0-9][a-z0-9\-']*")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")  # a code block's first or last line; its marker in group 1
# English function words, plus the words of a request that say nothing about its subject
# ("tell", "explain", "document"): a question is matched on what it asks about.
STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would
    you your yours tell explain describe please say says according document documents""".split()
)


def content_words(text: str) -> list[str]:
    """The lower-cased words of `text` that are not stop words, in order."""
    return [w for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


@cache
def _stemmer() -> Any:  # PyStemmer ships no type information
    import Stemmer

    return Stemmer.Stemmer("english")


_STEMMING = threading.Lock()  # a Snowball stemmer object is not thread-safe


def stem_words(words: Iterable[str]) -> list[str]:
    """Snowball (English) stems of lower-cased `words`, in order: "retries" and "retrying"
    both give "retri"."""
    listed = list(words)  # outside the lock: a generator's own work never runs holding it
    with _STEMMING:
        return list(_stemmer().stemWords(listed))


_ANCHOR = re.compile(
    r"[\w.:/=-]*\d[\w.:/=-]*"  # numbers and codes: 429, 2.5, 2025-09, v1beta
    r"|\w+(?:[._:/=]\w+)+"  # dotted, slashed or assigned names: os.path.join, alt=sse
    r"|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"  # constants: RESOURCE_EXHAUSTED
    r"|\b[a-z]+[A-Z]\w*"  # camelCase: embedContent
    r"|(?<![\w-])--?[a-z][\w-]+"  # command-line flags: --prune
)


def anchors(text: str) -> set[str]:
    """The tokens a question means literally: numbers and codes ("429", "2.5"), dotted or
    slashed names ("os.path", "alt=sse"), constants and camelCase identifiers, flags."""
    return {a.strip(".:/-").lower() for a in _ANCHOR.findall(text) if len(a.strip(".:/-")) > 1}


def share_present(terms: set[str], text: str) -> float:
    """The share of `terms` (lower case, as `anchors` gives them) found in `text`, 0 for none."""
    lowered = text.lower()
    return sum(t in lowered for t in terms) / len(terms) if terms else 0.0


_JSON_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def model_json(text: str) -> object:
    """A model's JSON reply, without the ```json fence models often wrap it in even when
    asked for JSON; raises ValueError (json.JSONDecodeError) when it is no JSON."""
    return json.loads(_JSON_FENCE.sub("", text.strip()))
