"""The MCP tools: `search` (passages, no model call besides the query embedding) and `ask`
(a cited answer). Both go through the app's chain, so caching, costs, budgets and rate
limits apply exactly as for the API; calls are charged to the session `mcp/<session_id>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import BaseModel, Field, ValidationError

from rag.answer import MAX_K, MAX_SOURCES, AskOptions
from rag.chain import Chain
from rag.conversations import Conversations
from rag.errors import GemragError, NoCollection, field_path, remote_message
from rag.refusal import NOT_FOUND, NOT_IN_DOCUMENTS

# The agent is told the exact refusal words, from their owner, so it can tell "not in the
# documents" from an answer.
ASK = (
    "A grounded answer to the question from the collection, with numbered citations ([n] in the "
    f'text) and what it cost. When the documents do not answer, it says so: "{NOT_IN_DOCUMENTS}" '
    f'(offline, without a Gemini key: "{NOT_FOUND}").'
)


# Out of range was quietly clamped (k = 0 gave one passage, 1,000 gave 50): refused, as the API does.
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"passages to return, 1 to {MAX_K}")]
SessionId = Annotated[str, Field(
    min_length=1, max_length=128,
    description="Continue a conversation: a follow-up ('and how is it measured?') is read with the session's "
                "earlier questions, as in the HTTP API; its calls are charged to it.")]
Sources = Annotated[tuple[str, ...], Field(
    max_length=MAX_SOURCES,
    description="only these files, named as results name them (e.g. 'guide.pdf'); an unknown one is refused")]


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
    except NoCollection as exc:  # the local user's own collections, all of them
        raise ToolError(exc.told(lambda _: True)) from exc
    except GemragError as exc:
        raise ToolError(remote_message(exc)) from exc


class Tools(MCPServer):
    """The SDK's server, refusing a tool's arguments in one line that names each argument and
    the reason ("search refused its arguments: k: Input should be less than or equal to
    50."), as the HTTP API's 422 does, rather than in pydantic's report, a line per
    problem with its error type and a link to pydantic's site."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            refused = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(refused, ValidationError):
                raise
            problems = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in refused.errors())
            raise ToolError(f"{name} refused its arguments: {problems}.") from refused


def build_server(chain: Chain) -> MCPServer:
    conversations = Conversations(chain.settings)  # where the API keeps its sessions' turns
    server = Tools(
        "gemrag",
        instructions="Search and ask the user's own documents. Answers cite their sources as [n]; "
                     "a citation names the file, its page (PDF) and heading (Markdown).",
    )

    @server.tool()
    def search(query: str, collection: str | None = None, k: K = 6,
               mode: Literal["hybrid", "vector", "bm25"] | None = None, per_file: bool = False,
               sources: Sources = ()) -> list[Passage]:
        """The passages of the collection that best match the query, best first, with their file,
        page and heading. No answer is generated. With per_file, each file's best passage only:
        which files match, best first. With sources, only those files' passages."""
        options = AskOptions(collection=collection, top_k=k, mode=mode, per_file=per_file, sources=tuple(sources))
        with as_tool_errors():
            retrieved = chain.search(query, "mcp/search", options)
        return [Passage(source=h.chunk.source, page=h.chunk.page, heading=h.chunk.heading, text=h.chunk.text,
                        score=h.score) for h in retrieved.hits]

    @server.tool(description=ASK)
    def ask(question: str, collection: str | None = None, session_id: SessionId = "default") -> Answer:
        session = f"mcp/{session_id}"
        with as_tool_errors():
            # The session's turns, as the API keeps them: a follow-up was searched as asked
            # ("how is it measured?" refused) though the same session had just named its subject.
            record = chain.ask(question, conversations.history(session), session_id=session,
                               options=AskOptions(collection=collection))
            conversations.append(session, question, record.answer)
        cited = [Cited.model_validate(c, from_attributes=True) for c in record.citations]
        return Answer(answer=record.answer, citations=cited, route=f"{record.route.model}: {record.route.reason}",
                      cost_usd=record.cost_usd, cached=record.cached)

    return server
