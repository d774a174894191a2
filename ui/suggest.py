"""Questions to suggest on the first screen, drawn from what the collection holds.

Offline they are built from document titles and headings, so each one names a part of the
corpus the user may not know is there, and each one can be answered from it. A heading that
is already a question ("Why not always Pro?") is asked as it is; any other is quoted rather
than bent into a sentence, since headings are as often verbs as nouns.

With a key, the cheap model (settings.lite_model) writes them from the same titles and
headings, once per collection and corpus version: the result is kept in the key-value store
(shared by replicas), and its cost is reserved against the budget before the call and settled
in the ledger after, under its own session id, with each attempt that got no reply (it may have
been billed), whether the call then answered or failed. If that call fails the offline questions are shown instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from ingest.loaders import SECTION_NUMBER
from rag.budget import Budget
from rag.chain import settling
from rag.costs import Ledger, price_usd
from rag.kv import Table, bucket, open_kv
from rag.providers.base import Generator
from rag.settings import Settings
from rag.stores import StoredFile
from rag.types import THINKING_ALLOWANCE_TOKENS, Prompt, Usage
from ui.corpus import CollectionInfo

log = logging.getLogger(__name__)
SESSION = "ui-suggestions"  # the ledger session their calls are charged to
TABLE = Table("suggestions", ttl_s=None, max_entries=10_000)
OUTLINE_DOCUMENTS = 12  # the largest documents' titles and headings go into the prompt
OUTLINE_HEADINGS = 8  # per document
INSTRUCTION = """Below is the outline of a document collection: file names with their section headings.
Write {count} short questions a newcomer could ask about it, each answerable from one of the documents,
covering different documents. One question per line, no numbering, nothing else.

{outline}"""

MAX_SUGGESTIONS = 4
GENERIC = frozenset(
    "overview introduction summary contents conclusion background notes references checklist appendix "
    "glossary about faq see also table of contents".split()
)
_NUMBERED = re.compile(rf"^{SECTION_NUMBER}\s+(?=\S)")  # "2.8.1 ", "C.7 ": left out of a question
QUESTION_WORDS = ("what", "why", "how", "when", "which", "who", "where", "should", "can", "do", "does", "is")


class Suggester:
    """The first screen's questions for a collection: the model's (cached) with a key, else ours."""

    def __init__(self, settings: Settings, generator: Generator, ledger: Ledger, budget: Budget) -> None:
        self.settings, self.generator, self.ledger, self.budget = settings, generator, ledger, budget
        self.kv = open_kv(settings, "suggestions") if generator.online else None

    def for_collection(self, info: CollectionInfo) -> list[str]:
        if self.kv is None or not info.files:
            return suggestions(info.files)
        key = bucket(info.name, str(info.version), self.settings.lite_model)
        try:
            cached = self.kv.get(TABLE, key)
            if cached is not None:
                return list(json.loads(cached))
            written = self._write(info.files)
            self.kv.put(TABLE, key, json.dumps(written).encode())
            return written
        except Exception as exc:  # the offline questions are still useful: say why in the log only
            log.warning("suggested questions from %s failed, using headings instead: %s", self.settings.lite_model, exc)
            return suggestions(info.files)

    def _write(self, documents: Sequence[StoredFile]) -> list[str]:
        bound = 60 * MAX_SUGGESTIONS + THINKING_ALLOWANCE_TOKENS  # sent as the cap it is held against
        prompt = Prompt.of(INSTRUCTION.format(count=MAX_SUGGESTIONS, outline=outline(documents)), temperature=0.2,
                           max_output_tokens=bound)
        model = self.settings.lite_model
        worst = Usage(prompt_tokens=prompt.estimated_tokens, output_tokens=bound)
        hold = self.budget.reserve(SESSION, price_usd(self.settings, model, worst))  # on record before it is sent
        with settling(self.ledger, hold) as spending:
            generation = self.generator.generate(prompt, model=model)
            spending.called(generation, "suggest")
        lines = [line.strip(" -*•\t0123456789.)") for line in generation.text.splitlines()]
        questions = [line for line in lines if line.endswith("?") and len(line) > 8]
        if not questions:
            raise ValueError(f"no question in the reply: {generation.text[:80]!r}")
        return questions[:MAX_SUGGESTIONS]


def outline(documents: Sequence[StoredFile]) -> str:
    largest = sorted(documents, key=lambda d: (-d.chunks, d.source))[:OUTLINE_DOCUMENTS]
    return "\n".join(
        f"- {d.source}: " + "; ".join(h.split(" > ")[-1] for h in d.headings[:OUTLINE_HEADINGS]) for d in largest
    )


def suggestions(documents: Sequence[StoredFile], limit: int = MAX_SUGGESTIONS) -> list[str]:
    """One question each from the largest documents; documents with headings first, since a
    heading names a topic the answer can be found under (a title alone rarely does)."""
    ranked = sorted(documents, key=lambda d: (not d.headings, -d.chunks, d.source))
    questions = [q for q in (_question(d) for d in ranked) if q]
    return list(dict.fromkeys(questions))[:limit]


def _question(document: StoredFile) -> str | None:
    if not document.headings:
        return f"What are the main points of {document.source}?"
    for path in document.headings:
        parts = _titles(path)
        topic = parts[-1]
        if len(parts) < 2 or topic.lower().strip("?!. ") in GENERIC:
            continue
        if topic.lower().startswith(QUESTION_WORDS) and topic.endswith("?"):
            return topic
        if len(topic.split()) >= 2:
            return f"What does {_part(parts[0], document)} say about “{topic}”?"
    return f"What does {_part(_titles(document.headings[0])[0], document)} cover?"


def _titles(path: str) -> list[str]:
    """A heading path's titles, top first, without their section numbers."""
    return [_NUMBERED.sub("", title.strip()) for title in path.split(" > ")]


def _part(title: str, document: StoredFile) -> str:
    """How a question names the part a topic is under: its own top title (a Markdown file's
    title, a manual's chapter), or the file when that title says nothing ("Introduction")."""
    return document.source if title.lower() in GENERIC else f"“{title}”"
