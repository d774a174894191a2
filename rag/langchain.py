"""gemrag as LangChain components: a collection as a retriever, the answer chain as a Runnable.

A LangChain or LangGraph application keeps its own composition and gets our retrieval
(hybrid vector + BM25, fused, second ranking stage, per-collection embedder) and our
answers (routing, cache, budgets, cited sources) without re-implementing them. Both go
through the app's `Chain`, so what they cost is charged to the session given, like any
other answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.prompt_values import PromptValue
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
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
        return [as_document(h) for h in self.chain.search(question(query), self.session_id, self.options).hits]


class GemragAnswerer(Runnable[str | PromptValue, str]):
    """A question (or a prompt template's value) in, the cited answer's text out; `stream`
    and `astream` yield it as it is written. Runs under LangChain's callbacks, so tracing
    sees it. The full record (sources, route, cost) is in the ledger under `session_id`."""

    def __init__(self, chain: Chain, options: AskOptions = AskOptions(), session_id: str = "langchain") -> None:  # noqa: B008
        self.chain = chain
        self.options = options
        self.session_id = session_id

    def invoke(self, input: str | PromptValue, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return self._call_with_config(lambda item: "".join(self._pieces(item)), input, config)

    def stream(
        self, input: str | PromptValue, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[str]:
        yield from self._transform_stream_with_config(iter([input]), self._transform, config)

    async def astream(
        self, input: str | PromptValue, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[str]:
        """Piece by piece, the chain's stream read on a worker thread: the default astream
        gave the whole answer as one piece once it was done."""

        async def inputs() -> AsyncIterator[str | PromptValue]:
            yield input

        async for piece in self._atransform_stream_with_config(inputs(), self._atransform, config):
            yield piece

    def _transform(self, inputs: Iterator[str | PromptValue]) -> Iterator[str]:
        for item in inputs:
            yield from self._pieces(item)

    async def _atransform(self, inputs: AsyncIterator[str | PromptValue]) -> AsyncIterator[str]:
        async for item in inputs:
            pieces = self._pieces(item)
            while (piece := await run_in_executor(None, next, pieces, None)) is not None:
                yield piece

    def _pieces(self, item: str | PromptValue) -> Iterator[str]:
        for event in self.chain.stream(question(item), session_id=self.session_id, options=self.options):
            if isinstance(event, Delta):
                yield event.text


def question(item: object) -> str:
    """The text asked: a string, or a prompt template's value as text (a ChatPromptTemplate
    piped into the answerer failed with "'ChatPromptValue' object has no attribute 'strip'",
    and 42 given to the retriever with an AttributeError from deep in the chain)."""
    if isinstance(item, PromptValue):
        return item.to_string()
    if isinstance(item, str):
        return item
    raise TypeError(f"gemrag takes a question as text or a prompt's value, not {type(item).__name__}")
