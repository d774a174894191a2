"""Questions to suggest on the first screen, drawn from what the collection holds.

Offline they are built from document titles and headings, so each one names a part of the
corpus the user may not know is there, and each one can be answered from it. A heading that
is already a question ("Why not always Pro?") is asked as it is; any other is quoted rather
than bent into a sentence, since headings are as often verbs as nouns.
"""

from __future__ import annotations

from collections.abc import Sequence

from ui.corpus import DocumentInfo

MAX_SUGGESTIONS = 4
GENERIC = frozenset(
    "overview introduction summary contents conclusion background notes references checklist appendix "
    "glossary about faq see also table of contents".split()
)
QUESTION_WORDS = ("what", "why", "how", "when", "which", "who", "where", "should", "can", "do", "does", "is")


def suggestions(documents: Sequence[DocumentInfo], limit: int = MAX_SUGGESTIONS) -> list[str]:
    """One question each from the largest documents, Markdown and PDFs alike."""
    ranked = sorted(documents, key=lambda d: (-d.chunks, d.source))
    questions = [q for q in (_question(d) for d in ranked) if q]
    return list(dict.fromkeys(questions))[:limit]


def _question(document: DocumentInfo) -> str | None:
    if not document.headings:
        return f"What are the main points of {document.source}?"
    title = document.headings[0].split(" > ")[0].strip()
    for path in document.headings:
        parts = [p.strip() for p in path.split(" > ")]
        topic = parts[-1]
        if len(parts) < 2 or topic.lower().strip("?!. ") in GENERIC:
            continue
        if topic.lower().startswith(QUESTION_WORDS) and topic.endswith("?"):
            return topic
        if len(topic.split()) >= 2:
            return f"What does “{title}” say about “{topic}”?"
    return f"What does “{title}” cover?"
