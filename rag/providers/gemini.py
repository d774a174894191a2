"""The Gemini provider: the Embedder and Generator interfaces over google-genai, with our own rate limiting
and retries around every call (the SDK's retries stay off; see rag/retry.py for why).

Embeddings are sent in batches of at most 100 texts (batchEmbedContents' limit; the SDK
itself sends everything in one request) with several batches in flight, and normalised:
gemini-embedding-001 is unit length only at its full 3072 dimensions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import httpx2
import numpy as np
from google import genai
from google.genai import types

from rag.catalogue import ThinkingLevel
from rag.errors import ConfigError, ProviderError
from rag.keypool import KeyPool
from rag.kv import open_kv
from rag.logs import TaggedPool
from rag.providers.base import EmbeddingJobs
from rag.providers.grounding import grounded
from rag.ratelimit import Limiter, shared_limiter
from rag.retry import Retrier, Unanswered
from rag.settings import Settings
from rag.types import CachedContext, Embedded, Generation, Prompt, StreamDelta, TaskKind, Usage, estimate_tokens

API_MAX_BATCH = 100  # texts per batchEmbedContents request
# Gemini 2.5 models take a token budget instead of a level: the same intent in tokens
# (0 turns thinking off, -1 lets the model decide), capped by the row's max_budget.
BUDGET_FOR_LEVEL: dict[ThinkingLevel, int] = {"minimal": 0, "low": 1_024, "medium": 8_192, "high": -1}
_VERSION_SUFFIX = re.compile(r"-\d{3}$")


def thinking_config(settings: Settings, model: str, task: TaskKind) -> types.ThinkingConfig | None:
    """Exactly one thinking control for `model`, as its catalogue row says it takes: answers
    think at `thinking_flash` (Pro escalation at `thinking_pro`), cheap steps (rewrite, judge)
    at `thinking_lite`, each rounded up to a level the model accepts. Never level and budget
    together: the API refuses that with 400."""
    row = settings.models.get(model)
    if row is None or row.thinking.control == "none":
        return None
    if model == settings.pro_model:
        wanted = settings.thinking_pro
    else:
        wanted = settings.thinking_flash if task == "answer" else settings.thinking_lite
    if row.thinking.control == "level":
        return types.ThinkingConfig(thinking_level=types.ThinkingLevel(row.thinking.nearest(wanted).upper()))
    budget = BUDGET_FOR_LEVEL[wanted]
    if row.thinking.max_budget is not None and budget > row.thinking.max_budget:
        budget = row.thinking.max_budget
    return types.ThinkingConfig(thinking_budget=budget)


def served_model(settings: Settings, requested: str, response: types.GenerateContentResponse) -> str:
    """The model that actually answered (the response's modelVersion), which the ledger
    charges. A pinned version of the requested model ("gemini-x-001") counts as the model."""
    version = (response.model_version or "").removeprefix("models/")
    if not version or version in settings.models:
        return version or requested
    return requested if _VERSION_SUFFIX.sub("", version) == requested else version


def _contents(prompt: Prompt) -> list[types.Content]:
    """The conversation, with the prompt's images after the text of the last (user) turn; with
    a cached context, only the turns after the prefix it holds."""
    contents = [types.Content(role=m.role, parts=[types.Part(text=m.text)]) for m in prompt.contents]
    images = [types.Part.from_bytes(data=a.data, mime_type=a.mime) for a in prompt.images]
    if images:
        last = contents[-1]
        contents[-1] = types.Content(role=last.role, parts=[*(last.parts or []), *images])
    return contents[prompt.prefix_turns :] if prompt.cached_context else contents


def _usage(meta: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    if meta is None:
        return Usage()
    # What a tool put into the context (File Search's chunks) is billed as input.
    return Usage(
        prompt_tokens=(meta.prompt_token_count or 0) + (meta.tool_use_prompt_token_count or 0),
        output_tokens=meta.candidates_token_count or 0,
        cached_tokens=meta.cached_content_token_count or 0,
        thinking_tokens=meta.thoughts_token_count or 0,
    )


def _text(response: types.GenerateContentResponse) -> str:
    """Answer text only: thought summaries are not part of the answer."""
    if not response.candidates or response.candidates[0].content is None:
        return ""
    parts = response.candidates[0].content.parts or []
    return "".join(p.text for p in parts if p.text and not p.thought)


def _finish_reason(response: types.GenerateContentResponse) -> str | None:
    if response.candidates and response.candidates[0].finish_reason:
        return str(response.candidates[0].finish_reason.value)
    return None


@contextmanager
def _charging(unanswered: Unanswered, prompt: Prompt) -> Iterator[None]:
    """A call that fails in the end still owes what its unanswered attempts may have billed:
    the error carries it to the caller's ledger."""
    try:
        yield
    except ProviderError as error:
        error.abandoned = unanswered.charges(prompt.estimated_tokens)
        raise


def _abandoned(batches: Sequence[Sequence[str]], unanswered: Sequence[Unanswered]) -> tuple[Usage, ...]:
    """Each embedding attempt with no reply, on its batch's texts counted locally."""
    return tuple(usage for batch, u in zip(batches, unanswered, strict=True)
                 for usage in u.charges(sum(estimate_tokens(t) for t in batch)))


def normalised(vectors: list[list[float]]) -> list[list[float]]:
    """Unit length, as the store's cosine space and the online and batch paths alike expect."""
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: list[list[float]] = (matrix / np.where(norms == 0, 1.0, norms)).tolist()
    return unit


class GeminiProvider:
    name = "gemini"
    online = True

    def __init__(
        self, settings: Settings, *, limiter: Limiter | None = None, retrier: Retrier | None = None
    ) -> None:
        if settings.api_key is None:
            raise ConfigError("The Gemini provider needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY).")
        self.settings = settings
        self.flash_model = settings.flash_model
        self.pro_model = settings.pro_model
        self.embedding_model = settings.embedding_model
        self.embedding_dim = settings.embedding_dim
        self.embedding_id = f"gemini:{settings.embedding_model}:{settings.embedding_dim}"
        self.limiter = limiter or shared_limiter(settings)
        self.retrier = retrier or Retrier(settings)
        secrets = [key.get_secret_value() for key in settings.gemini_keys]
        pool = httpx2.Limits(max_connections=settings.gemini_connections,
                             max_keepalive_connections=settings.gemini_connections)
        options = types.HttpOptions(base_url=settings.base_url, timeout=int(settings.request_timeout_s * 1000),
                                    client_args={"limits": pool}, async_client_args={"limits": pool})
        clients = [genai.Client(api_key=secret, http_options=options) for secret in secrets]
        self.keys = KeyPool(
            clients,
            secrets,
            open_kv(settings, "keys") if len(secrets) > 1 else None,
            cooldown_s=settings.key_cooldown_s,
            endpoint=settings.base_url or "",
        )
        # File Search stores belong to the main key's project: a call searching them uses it alone.
        self.main = self.keys if len(clients) == 1 else KeyPool(
            clients[:1], secrets[:1], None, cooldown_s=settings.key_cooldown_s
        )

    def __repr__(self) -> str:
        return f"GeminiProvider(base_url={self.settings.base_url!r}, tier={self.settings.tier!r})"

    # --- generation ---
    def generate(self, prompt: Prompt, model: str | None = None) -> Generation:
        model = model or self.flash_model

        def attempt(left: float) -> types.GenerateContentResponse:
            config = self._generation_config(prompt, model, self._reserve(model, prompt, left))
            return self._pool(prompt).call(
                lambda client: client.models.generate_content(model=model, contents=_contents(prompt), config=config)
            )

        unanswered = Unanswered()
        with _charging(unanswered, prompt):
            response = self.retrier.call(model, attempt, prompt.deadline_s, unanswered, prompt.retry_wait_s)
        served = served_model(self.settings, model, response)
        return Generation(_text(response), _usage(response.usage_metadata), served, _finish_reason(response) or "STOP",
                          unanswered.charges(prompt.estimated_tokens))

    def _pool(self, prompt: Prompt) -> KeyPool[genai.Client]:
        return self.main if prompt.file_search else self.keys

    def stream(self, prompt: Prompt, model: str | None = None) -> Iterator[StreamDelta]:
        model = model or self.flash_model

        def attempt(left: float) -> Iterator[types.GenerateContentResponse]:
            config = self._generation_config(prompt, model, self._reserve(model, prompt, left))
            return self._pool(prompt).stream(
                lambda client: client.models.generate_content_stream(
                    model=model, contents=_contents(prompt), config=config
                )
            )

        usage = Usage()
        served = model
        # A File Search answer is held back until its grounding (with the last piece) says
        # where its [n] citations go: it arrives whole.
        held: list[str] | None = [] if prompt.file_search else None
        grounding = None
        unanswered = Unanswered()
        with _charging(unanswered, prompt):
            for chunk in self.retrier.stream(model, attempt, lambda c: bool(_text(c)), unanswered,
                                             prompt.retry_wait_s):
                usage = _usage(chunk.usage_metadata) if chunk.usage_metadata else usage  # cumulative
                served = served_model(self.settings, model, chunk)
                text = _text(chunk)
                if held is not None:
                    held.append(text)
                    grounding = (chunk.candidates[0].grounding_metadata if chunk.candidates else None) or grounding
                elif text:
                    yield StreamDelta(text, served, usage)  # what the API has billed so far
        abandoned = unanswered.charges(prompt.estimated_tokens)
        if held is None:
            yield StreamDelta("", served, usage, final=True, abandoned=abandoned)
            return
        text, passages = grounded("".join(held), grounding)
        yield StreamDelta(text, served, usage)
        yield StreamDelta("", served, usage, final=True, passages=passages, abandoned=abandoned)

    def count_tokens(self, prompt: Prompt | str, model: str | None = None) -> int:
        """countTokens is free and has its own quota, so it bypasses the generation limiter. A
        Prompt's `deadline_s` bounds it, retries included (a health check must answer in time)."""
        model = model or self.flash_model
        if isinstance(prompt, str):
            contents = [types.Content(role="user", parts=[types.Part(text=prompt)])]
        else:
            system = [types.Content(role="user", parts=[types.Part(text=prompt.system)])] if prompt.system else []
            contents = system + _contents(prompt)

        def attempt(left: float) -> types.CountTokensResponse:
            config = types.CountTokensConfig(http_options=self._http_options(left))
            return self.keys.call(
                lambda client: client.models.count_tokens(model=model, contents=contents, config=config)
            )

        deadline_s = None if isinstance(prompt, str) else prompt.deadline_s
        return self.retrier.call(model, attempt, deadline_s).total_tokens or 0

    # --- explicit context caching ---
    def cache_prefix(self, prompt: Prompt, model: str, ttl_s: int) -> CachedContext | None:
        """caches.create with the system instruction and the prefix turns. Only with a single
        key: a cached content belongs to its key's project, and with several keys the answer
        could be sent through another one, which cannot see it."""
        if not prompt.prefix_turns or len(self.keys) > 1:
            return None
        head = _contents(replace(prompt, contents=prompt.contents[: prompt.prefix_turns], images=()))

        def attempt(left: float) -> types.CachedContent:
            config = types.CreateCachedContentConfig(
                contents=head,
                system_instruction=prompt.system or None,
                ttl=f"{ttl_s}s",
                display_name="gemrag context",
                http_options=self._http_options(left),
            )
            return self.keys.call(lambda client: client.caches.create(model=model, config=config))

        cached = self.retrier.call(model, attempt)
        tokens = cached.usage_metadata.total_token_count if cached.usage_metadata else None
        expires = cached.expire_time.timestamp() if cached.expire_time else time.time() + ttl_s
        return CachedContext(cached.name or "", model, tokens or 0, expires)

    def drop_cache(self, name: str) -> None:
        def attempt(left: float) -> None:
            config = types.DeleteCachedContentConfig(http_options=self._http_options(left))
            self.keys.call(lambda client: client.caches.delete(name=name, config=config))

        try:
            self.retrier.call("cachedContents", attempt)
        except ProviderError as error:
            if error.status not in (403, 404):  # expired or deleted already: what was wanted
                raise

    # --- the models this key can use ---
    def list_models(self) -> dict[str, list[str]]:
        """models.list, every page: model name -> its supported generation methods."""

        def attempt(left: float) -> dict[str, list[str]]:
            config = types.ListModelsConfig(page_size=50, http_options=self._http_options(left))
            return {
                (m.name or "").removeprefix("models/"): list(m.supported_actions or [])
                for m in self.keys.call(lambda client: list(client.models.list(config=config)))
            }

        return self.retrier.call("models.list", attempt)

    # --- embeddings ---
    def embed_documents(self, texts: Sequence[str]) -> Embedded:
        return self._embed(list(texts), "RETRIEVAL_DOCUMENT")

    def embed_query(self, text: str) -> Embedded:
        return self._embed([text], "RETRIEVAL_QUERY")

    def _embed(self, texts: list[str], task_type: str) -> Embedded:
        """Batches run `embed_concurrency` at a time; the first failure cancels the rest, and
        carries what every batch's attempts with no reply may have billed."""
        size = max(1, min(self.settings.embed_batch_size, API_MAX_BATCH))
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        unanswered = [Unanswered() for _ in batches]
        vectors: list[list[float]] = []
        if batches:
            pool = TaggedPool(max_workers=max(1, min(self.settings.embed_concurrency, len(batches))))
            try:
                futures = [pool.submit(self._embed_batch, batch, task_type, tally)
                           for batch, tally in zip(batches, unanswered, strict=True)]
                for future in futures:
                    vectors.extend(future.result())
            except ProviderError as error:
                pool.shutdown(wait=True, cancel_futures=True)  # every batch's attempts are counted
                error.abandoned = _abandoned(batches, unanswered)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        # The API reports no token counts for embeddings; cost is charged on this estimate.
        usage = Usage(prompt_tokens=sum(estimate_tokens(t) for t in texts))
        return Embedded(vectors, usage, self.embedding_model, _abandoned(batches, unanswered))

    def _embed_batch(self, texts: list[str], task_type: str, unanswered: Unanswered) -> list[list[float]]:
        model = self.embedding_model
        tokens = sum(estimate_tokens(t) for t in texts)

        def attempt(left: float) -> types.EmbedContentResponse:
            waited = self.limiter.acquire(model, tokens, max_wait_s=left)
            config = types.EmbedContentConfig(
                task_type=task_type,
                output_dimensionality=self.embedding_dim,
                http_options=self._http_options(left - waited),
            )
            contents: list[types.PartUnion] = list(texts)
            return self.keys.call(
                lambda client: client.models.embed_content(model=model, contents=contents, config=config)
            )

        response = self.retrier.call(model, attempt, unanswered=unanswered)
        values = [e.values or [] for e in response.embeddings or []]
        if len(values) != len(texts) or any(len(v) != self.embedding_dim for v in values):
            raise ProviderError(
                f"{model} returned {len(values)} embeddings for {len(texts)} texts "
                f"(expected {self.embedding_dim} dimensions each).",
                model=model,
            )
        return normalised(values)

    def embedding_jobs(self) -> EmbeddingJobs:
        """Documents embedded as Batch API jobs, at the batch price (rag.providers.gemini_batch)."""
        from rag.providers.gemini_batch import GeminiEmbeddingJobs

        return GeminiEmbeddingJobs(self)

    # --- per attempt ---
    def _reserve(self, model: str, prompt: Prompt, left: float) -> float:
        """Wait for a rate-limit slot; returns the seconds still left for the request itself."""
        return left - self.limiter.acquire(model, prompt.estimated_tokens, max_wait_s=left)

    def _http_options(self, left: float) -> types.HttpOptions:
        """The request's timeout: the configured one, cut short by the call's deadline."""
        return types.HttpOptions(timeout=max(1, int(min(self.settings.request_timeout_s, left) * 1000)))

    def _generation_config(self, prompt: Prompt, model: str, left: float) -> types.GenerateContentConfig:
        thinking = thinking_config(self.settings, model, prompt.kind)
        # Gemini 3 (level-controlled) models are tuned for their default temperature; Google
        # advises against setting it, and Flash-Lite 3.5 ignores it.
        leveled = thinking is not None and thinking.thinking_level is not None
        search = prompt.file_search
        tools: list[types.ToolUnion] | None = [types.Tool(file_search=types.FileSearch(
            file_search_store_names=list(search.stores), top_k=search.top_k, metadata_filter=search.metadata_filter,
        ))] if search else None
        # A cached context holds the system instruction: the API refuses a request setting both.
        return types.GenerateContentConfig(
            tools=tools,
            system_instruction=None if prompt.cached_context else prompt.system or None,
            cached_content=prompt.cached_context or None,
            temperature=None if leveled else prompt.temperature,
            thinking_config=thinking,
            max_output_tokens=prompt.max_output_tokens,
            response_mime_type="application/json" if prompt.json_output else None,
            http_options=self._http_options(left),
        )
