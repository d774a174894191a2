"""The MCP tools: `search` (passages, no model call besides the query embedding) and `ask`
(a cited answer). Both go through the app's chain, so caching, costs, budgets and rate
limits apply exactly as for the API; calls are charged to the session `mcp/<session_id>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from rag.answer import AskOptions
from rag.chain import Chain
from rag.errors import GemragError, remote_message
from rag.refusal import NOT_FOUND, NOT_IN_DOCUMENTS

# The agent is told the exact refusal words, from their owner, so it can tell "not in the
# documents" from an answer.
ASK = (
    "A grounded answer to the question from the collection, with numbered citations ([n] in the "
    f'text) and what it cost. When the documents do not answer, it says so: "{NOT_IN_DOCUMENTS}" '
    f'(offline, without a Gemini key: "{NOT_FOUND}").'
)


class Passage(BaseModel):
    source: str
    page: int | None
    heading: str
    text: str
    score: float


class Cited(BaseModel):
    n: int
    source: str
    page: int | None
    heading: str
    snippet: str


class Answer(BaseModel):
    answer: str
    citations: list[Cited]
    route: str = Field(description="which model answered and why")
    cost_usd: float
    cached: bool


@contextmanager
def as_tool_errors() -> Iterator[None]:
    """A refusal the user can act on (empty collection, budget, quota) reaches the agent as the
    tool's error text, not as a generic failure."""
    try:
        yield
    except GemragError as exc:
        raise ToolError(remote_message(exc)) from exc


def build_server(chain: Chain) -> MCPServer:
    server = MCPServer(
        "gemrag",
        instructions="Search and ask the user's own documents. Answers cite their sources as [n]; "
                     "a citation names the file, its page (PDF) and heading (Markdown).",
    )

    @server.tool()
    def search(query: str, collection: str | None = None, k: int = 6,
               mode: Literal["hybrid", "vector", "bm25"] | None = None, per_file: bool = False) -> list[Passage]:
        """The passages of the collection that best match the query, best first, with their file,
        page and heading. No answer is generated. With per_file, each file's best passage only:
        which files match, best first."""
        options = AskOptions(collection=collection, top_k=max(1, min(k, 50)), mode=mode, per_file=per_file)
        with as_tool_errors():
            retrieved = chain.search(query, "mcp/search", options)
        return [Passage(source=h.chunk.source, page=h.chunk.page, heading=h.chunk.heading, text=h.chunk.text,
                        score=h.score) for h in retrieved.hits]

    @server.tool(description=ASK)
    def ask(question: str, collection: str | None = None, session_id: str = "default") -> Answer:
        with as_tool_errors():
            record = chain.ask(question, session_id=f"mcp/{session_id}", options=AskOptions(collection=collection))
        cited = [Cited.model_validate(c, from_attributes=True) for c in record.citations]
        return Answer(answer=record.answer, citations=cited, route=f"{record.route.model}: {record.route.reason}",
                      cost_usd=record.cost_usd, cached=record.cached)

    return server
