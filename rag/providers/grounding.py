"""A File Search answer's grounding metadata as our citations: numbered passages, and `[n]`
in the text where the model's words rest on them.

The model answers in plain text; what backs which words comes beside it as
`groundingMetadata`: `groundingChunks` (each a `retrievedContext`: the document's display
name as title, which we set to the file's source path, the chunk's text, and its page when the
document has pages) and `groundingSupports` (a byte span of the answer and the indices of the
chunks behind it). The chunks become passages 1..N in the order the metadata lists them, and
each support's chunk numbers are written as `[n]` at the end of its span, before the span's
closing punctuation. The chain, the citation check, the UI and the evaluation then treat a
File Search answer as any other.
"""

from __future__ import annotations

import hashlib

from google.genai import types

from rag.types import Passage

CLOSING = b".!?;:,"
CHUNK_ID_PREFIX = "file-search:"  # a passage File Search found: its chunk is Google's, not in the collection


def grounded(text: str, metadata: types.GroundingMetadata | None) -> tuple[str, tuple[Passage, ...]]:
    """The answer with `[n]` markers, and the passages they number."""
    numbers: dict[int, int] = {}  # grounding chunk index -> passage number
    passages: list[Passage] = []
    for index, chunk in enumerate((metadata.grounding_chunks if metadata else None) or []):
        context = chunk.retrieved_context
        if context is None:
            continue
        numbers[index] = len(passages) + 1
        passages.append(_passage(numbers[index], context))
    marks: dict[int, list[int]] = {}  # byte offset in the answer -> passage numbers cited there
    raw = text.encode("utf-8")
    for support in (metadata.grounding_supports if metadata else None) or []:
        cited = [numbers[i] for i in support.grounding_chunk_indices or [] if i in numbers]
        end = support.segment.end_index if support.segment else None
        if not cited or end is None:
            continue
        end = min(end, len(raw))
        while end > 0 and raw[end - 1 : end] in (b" ", b"\n"):
            end -= 1
        if end > 0 and raw[end - 1 : end] in [bytes([c]) for c in CLOSING]:
            end -= 1
        at = marks.setdefault(end, [])
        at.extend(n for n in cited if n not in at)
    for end in sorted(marks, reverse=True):
        label = "".join(f"[{n}]" for n in sorted(marks[end]))
        raw = raw[:end] + f" {label}".encode() + raw[end:]
    return raw.decode("utf-8", errors="replace"), tuple(passages)


def _passage(n: int, context: types.GroundingChunkRetrievedContext) -> Passage:
    """The chunk's source path from our custom metadata, else its document's display name."""
    meta = {m.key: m.string_value for m in context.custom_metadata or [] if m.string_value}
    source = meta.get("source") or context.title or context.document_name or "File Search"
    body = context.text or ""
    digest = hashlib.sha256(f"{context.document_name}\n{context.page_number}\n{body}".encode()).hexdigest()[:16]
    return Passage(n=n, text=body, source=source, page=context.page_number, chunk_id=f"{CHUNK_ID_PREFIX}{digest}")
