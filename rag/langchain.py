"""gemrag as LangChain components: a collection as a retriever, the answer chain as a Runnable.

A LangChain or LangGraph application keeps its own composition and gets our retrieval
(hybrid vector + BM25, fused, second ranking stage, per-collection embedder) and our
answers (routing, cache, budgets, cited sources) without re-implementing them. Both go
through the app's `Chain`, so what they cost is charged to the session given, like any
other answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict

from rag.answer import AskOptions, Delta
from rag.chain import Chain
from rag.types import Hit


def as_document(hit: Hit) -> Document:
    """A retrieved chunk with what a citation needs (file, page, heading) as metadata."""
    chunk = hit.chunk
    metadata: dict[str, Any] = {"source": chunk.source, "chunk_id": chunk.id, "score": hit.score}
    if chunk.page is not None:
        metadata["page"] = chunk.page
    if chunk.heading:
        metadata["heading"] = chunk.heading
    return Document(page_content=chunk.text, metadata=metadata, id=chunk.id)


class GemragRetriever(BaseRetriever):
    """The passages of a collection for a query, best first (`options` as for `rag ask`:
    collection, mode, top_k, rerank, sources)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chain: Chain
    options: AskOptions = AskOptions()
    session_id: str = "langchain"

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [as_document(h) for h in self.chain.search(query, self.session_id, self.options).hits]


class GemragAnswerer(Runnable[str, str]):
    """A question in, the cited answer's text out; `stream` yields it as it is written.
    The full record (sources, route, cost) is in the ledger under `session_id`."""

    def __init__(self, chain: Chain, options: AskOptions = AskOptions(), session_id: str = "langchain") -> None:  # noqa: B008
        self.chain = chain
        self.options = options
        self.session_id = session_id

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return "".join(self.stream(input, config))

    def stream(self, input: str, config: RunnableConfig | None = None, **kwargs: Any | None) -> Iterator[str]:
        for event in self.chain.stream(input, session_id=self.session_id, options=self.options):
            if isinstance(event, Delta):
                yield event.text
