"""Small typed objects that pass between the layers: providers, store, chain, cache, UI."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

Role = Literal["user", "model"]

CHARS_PER_TOKEN = 4  # Google's rule of thumb for Gemini tokenizers on English text
# What one image in a prompt may cost, counted locally: Gemini 3 reads an image at its default
# media resolution for at most "high" (1,120 tokens; "ultra high", 2,240, only where a part
# asks for it, which gemrag never does), https://ai.google.dev/gemini-api/docs/media-resolution
# (read 2026-12-05), whatever its size in pixels; the catalogue's models are Gemini 3 (Gemini
# 2.5 counted 258 tokens a 768-pixel tile, 3,096 for a page rendered at 200 dpi). A dry run's
# estimate of vision counts the same (`ingest.vision`).
IMAGE_TOKENS = 1_120
# What a small call's output bound allows for thinking on top of its reply: the Flash-Lite
# models that rewrite, rerank and suggest think at "minimal" by default (the catalogue), and
# max_output_tokens counts thinking. Each such call sends the bound it is held against.
THINKING_ALLOWANCE_TOKENS = 256


def estimate_tokens(text: str) -> int:
    """A local token estimate, for what no provider reports (Gemini's embedding usage, an
    answer stopped before its usage metadata arrived) and for limits and budgets checked
    before a call, where asking countTokens would cost a request."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Usage:
    """Token counts of one model call, as the provider reported them."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    thinking_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens + self.thinking_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
            self.thinking_tokens + other.thinking_tokens,
        )


@dataclass(frozen=True)
class Embedded:
    """Vectors for a list of texts, in order, with what embedding them cost."""

    vectors: list[list[float]]
    usage: Usage
    model: str
    abandoned: tuple[Usage, ...] = ()  # what attempts with no reply may have billed (rag.retry.Unanswered)


@dataclass(frozen=True)
class Message:
    role: Role
    text: str


ChunkKind = Literal["text", "figure"]
PageUnit = Literal["page", "slide"]


def place(page: int | None, unit: PageUnit = "page", kind: ChunkKind = "text", *, spelled: bool = False) -> str:
    """Where a passage is, as a citation says it: "p. 3", "slide 3", "p. 3, figure", "figure";
    `spelled` writes "page 3" for screen readers and labels."""
    page_word = "page " if spelled else "p. "
    parts = [] if page is None else [f"{page_word}{page}" if unit == "page" else f"slide {page}"]
    if kind == "figure":
        parts.append("figure")
    return ", ".join(parts)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as shown to a model: numbered `[n]` in the prompt."""

    n: int
    text: str
    source: str
    page: int | None = None
    heading: str = ""
    chunk_id: str = ""
    score: float = 0.0
    kind: ChunkKind = "text"
    unit: PageUnit = "page"

    @property
    def place(self) -> str:
        return place(self.page, self.unit, self.kind)


@dataclass(frozen=True)
class Attachment:
    """An image sent with a prompt (asked about with a question, or a figure or scanned page
    read at ingest): its bytes and MIME type. Only Gemini reads it."""

    mime: str
    data: bytes


TaskKind = Literal["answer", "rewrite", "judge", "rerank", "plain"]


# What a prompt asks for, in structured form: a provider that cannot read free text (the
# offline default) does the same task from these fields, so the chain, the rewrite and the
# judge need not know which provider they hold. Each task carries its own fields; none
# borrows another's.
@dataclass(frozen=True)
class AnswerTask:
    """Answer `question` from the prompt's passages, citing them by number.
    `mentioned_elsewhere`: the question's key terms (rag.keyterms) that the passages miss
    but their documents (for a file format, any document) hold elsewhere: not a reason to
    refuse. `unheard_of`: the question's words that no document of the collection holds in
    any form ("gym" asked of a staff handbook), which may be one."""

    question: str
    mentioned_elsewhere: frozenset[str] = frozenset()
    unheard_of: frozenset[str] = frozenset()
    kind: ClassVar[TaskKind] = "answer"


@dataclass(frozen=True)
class RewriteTask:
    """Make the follow-up `question` standalone, using the conversation before it."""

    question: str
    history: tuple[Message, ...]
    kind: ClassVar[TaskKind] = "rewrite"


@dataclass(frozen=True)
class JudgeTask:
    """Grade `answer` (what an answerer said) against the prompt's passages."""

    answer: str
    kind: ClassVar[TaskKind] = "judge"


@dataclass(frozen=True)
class RerankTask:
    """Score candidate passages for a question; only a model does it, from the prompt's text."""

    kind: ClassVar[TaskKind] = "rerank"


Task = AnswerTask | RewriteTask | JudgeTask | RerankTask


@dataclass(frozen=True)
class FileSearchTool:
    """Gemini's File Search tool on an answer call (backend "file-search"): the model searches
    these stores itself, and the passages it grounds its answer on come back with the answer
    instead of being sent in the prompt."""

    stores: tuple[str, ...]
    top_k: int | None = None
    metadata_filter: str | None = None  # `source = "a.pdf" OR ...`: a question restricted to sources


@dataclass(frozen=True)
class Prompt:
    """What a provider is asked.

    `contents` is the conversation exactly as a chat model sees it (the last message is the
    user turn, with the sources rendered into it as delimited data); `passages` are those
    sources, numbered as rendered, which the answer's `[n]` citations refer to. `task` says
    what is asked, in structured form; None for a plain prompt (the reply is free text).
    """

    contents: tuple[Message, ...]
    system: str = ""
    passages: tuple[Passage, ...] = ()
    task: Task | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    json_output: bool = False
    images: tuple[Attachment, ...] = ()  # sent after the text of the last user turn
    deadline_s: float | None = None  # a shorter deadline than settings.deadline_s, retries included
    # The longest wait for a retry this call takes (rag.retry): a step with a fallback (Pro,
    # which Flash stands in for) fails at once rather than wait out a minute's rate limit.
    retry_wait_s: float | None = None
    # The first `prefix_turns` messages (with the system instruction) stay the same for every
    # question about this context, so a provider may hold them in a cache (rag.contextcache).
    prefix_turns: int = 0
    # The provider's name for a cache already holding that prefix: only the turns after it are sent.
    cached_context: str = ""
    file_search: FileSearchTool | None = None  # the model retrieves for itself; `passages` is empty

    @classmethod
    def of(cls, text: str, **kw: object) -> Prompt:
        return cls(contents=(Message("user", text),), **kw)  # type: ignore[arg-type]  # Prompt fields by name

    def with_contents(self, contents: tuple[Message, ...]) -> Prompt:
        return replace(self, contents=contents)

    @property
    def text(self) -> str:
        """Everything the model reads, system instruction included, as one string."""
        return self.system + "".join(m.text for m in self.contents)

    @property
    def estimated_tokens(self) -> int:
        """The prompt's size counted locally (`estimate_tokens`), each image at `IMAGE_TOKENS`:
        what a budget holds before the call and what an attempt abandoned without a reply
        is charged. Counted on the text alone, a question with images was held for less
        than it could cost, and a page sent to vision and timed out was charged as if it had
        no page."""
        return estimate_tokens(self.text) + IMAGE_TOKENS * len(self.images)

    @property
    def kind(self) -> TaskKind:
        """The task's name, for what depends only on the kind of call (how much a model thinks)."""
        return self.task.kind if self.task else "plain"


@dataclass(frozen=True)
class CachedContext:
    """A prompt prefix a provider holds for a while (Gemini's cached content): its name, the
    model it belongs to, its size in tokens and when (epoch seconds) the provider drops it."""

    name: str
    model: str
    tokens: int
    expires_at: float


@dataclass(frozen=True)
class Generation:
    text: str
    usage: Usage
    model: str
    finish_reason: str = "STOP"
    # What each attempt before this reply may have billed, though it got none: a timeout, a
    # dropped connection (rag.retry.Unanswered). Charged as "stopped", apart from `usage`.
    abandoned: tuple[Usage, ...] = ()


@dataclass(frozen=True)
class StreamDelta:
    """One piece of a streamed answer. The last delta of a stream has `final=True` and the
    cumulative usage of the whole call; earlier ones carry the usage reported so far, when
    the provider reports it as it goes (Gemini does), so a stream cut short is charged."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    final: bool = False
    # On the final delta of a model that retrieved for itself (File Search): the passages its
    # grounding metadata names, numbered as the text cites them. None: the prompt's passages.
    passages: tuple[Passage, ...] | None = None
    # On the final delta: what the attempts before this stream may have billed (`Generation.abandoned`).
    abandoned: tuple[Usage, ...] = ()


def contextual_text(context: str, text: str) -> str:
    """What the embedder reads for a chunk: its context on a line (already fitted to the
    chunk profile's `context_tokens` by the chunker), then its text."""
    return f"{context}\n{text}" if context else text


@dataclass(frozen=True)
class Chunk:
    """A stored piece of a document. `id` is derived from the source path and the content
    (context included: it is embedded), so the same content at the same place always gets
    the same id."""

    id: str
    text: str
    source: str  # path relative to the ingest root, forward slashes
    index: int  # position of the chunk within its document
    start: int  # character span in the document's extracted text (per page for PDFs)
    end: int
    content_hash: str
    page: int | None = None  # 1-based PDF page, or slide number when `unit` is "slide"
    heading: str = ""  # heading path, "A > B > C": Markdown, HTML and Word headings, a PDF's outline
    kind: ChunkKind = "text"  # "figure": a model's description of an image, not the document's words
    unit: PageUnit = "page"
    context: str = ""  # embedded before the text, which lacks it (ingest.loaders.Section.context)
    # the start of the sentence `text` begins in the middle of, or the opening fence line of the code block it
    # begins inside, shown before it (rag.sentences)
    lead: str = ""

    @property
    def place(self) -> str:
        return place(self.page, self.unit, self.kind)

    @property
    def embedded_text(self) -> str:
        return contextual_text(self.context, self.text)

    def metadata(self) -> dict[str, str | int]:
        meta: dict[str, str | int] = {
            "source": self.source,
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "content_hash": self.content_hash,
            "heading": self.heading,
        }
        if self.page is not None:
            meta["page"] = self.page
        # Written only when not the default, so collections stored before these fields read the same.
        if self.kind != "text":
            meta["kind"] = self.kind
        if self.unit != "page":
            meta["unit"] = self.unit
        if self.context:
            meta["context"] = self.context
        if self.lead:
            meta["lead"] = self.lead
        return meta

    @property
    def title(self) -> str:
        """The words a chunk's place gives it, file name (without extension) and heading
        path: a chunk deep in a section never repeats the section's name, yet the name says
        what the chunk is about. Retrieval indexes and ranks with it."""
        stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", self.source)
        return f"{re.sub(r'[/_.-]+', ' ', stem)} {self.heading}".strip()

    @classmethod
    def from_metadata(cls, id: str, text: str, meta: dict[str, Any]) -> Chunk:
        return cls(
            id=id,
            text=text,
            source=str(meta["source"]),
            index=int(meta.get("index", 0)),
            start=int(meta.get("start", 0)),
            end=int(meta.get("end", 0)),
            content_hash=str(meta.get("content_hash", "")),
            page=int(meta["page"]) if meta.get("page") is not None else None,
            heading=str(meta.get("heading", "")),
            kind="figure" if meta.get("kind") == "figure" else "text",
            unit="slide" if meta.get("unit") == "slide" else "page",
            context=str(meta.get("context", "")),
            lead=str(meta.get("lead", "")),
        )


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search, with the score of the mode that found it."""

    chunk: Chunk
    score: float
