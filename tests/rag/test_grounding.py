"""Grounding metadata as citations: chunks become numbered passages (file, page), and each
support's chunk numbers land as [n] at the end of its byte span, before its full stop."""

from __future__ import annotations

from google.genai import types

from rag.providers.grounding import CHUNK_ID_PREFIX, grounded


def chunk(title: str, text: str, page: int | None = None) -> types.GroundingChunk:
    return types.GroundingChunk(retrieved_context=types.GroundingChunkRetrievedContext(
        title=title, text=text, page_number=page, document_name=f"fileSearchStores/s/documents/{title}"))


def support(text: str, sentence: str, *indices: int) -> types.GroundingSupport:
    start = text.encode().index(sentence.encode())
    end = start + len(sentence.encode())
    return types.GroundingSupport(segment=types.Segment(start_index=start, end_index=end, text=sentence),
                                  grounding_chunk_indices=list(indices))


def test_supports_become_markers_and_chunks_passages() -> None:
    text = "Die Gebühr beträgt 5 €. Rückerstattung binnen 30 Tagen! Sonst nichts."
    metadata = types.GroundingMetadata(
        grounding_chunks=[chunk("prices.pdf", "Gebühr 5 €", 2), chunk("refunds.md", "30 Tage"),
                          types.GroundingChunk()],  # a chunk of another kind: not a passage
        grounding_supports=[support(text, "Die Gebühr beträgt 5 €.", 0),
                            support(text, "Rückerstattung binnen 30 Tagen!", 1, 0, 2)],
    )
    marked, passages = grounded(text, metadata)
    assert marked == "Die Gebühr beträgt 5 € [1]. Rückerstattung binnen 30 Tagen [1][2]! Sonst nichts."
    assert [(p.n, p.source, p.page, p.text) for p in passages] == [
        (1, "prices.pdf", 2, "Gebühr 5 €"), (2, "refunds.md", None, "30 Tage")]
    assert all(p.chunk_id.startswith(CHUNK_ID_PREFIX) for p in passages)
    assert passages[0].chunk_id != passages[1].chunk_id


def test_custom_metadata_source_wins_over_the_title() -> None:
    meta = [types.GroundingChunkCustomMetadata(key="source", string_value="a/b.md")]
    context = types.GroundingChunkRetrievedContext(title="display", text="t", custom_metadata=meta)
    metadata = types.GroundingMetadata(grounding_chunks=[types.GroundingChunk(retrieved_context=context)])
    _, passages = grounded("x", metadata)
    assert passages[0].source == "a/b.md"


def test_no_grounding_leaves_the_text_and_no_passages() -> None:
    assert grounded("The documents do not say.", None) == ("The documents do not say.", ())
