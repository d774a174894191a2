"""The embedded default used when no Gemini key is set: MiniLM embeddings and the
extractive answerer, behind the same interface as Gemini."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from rag.providers.followup import rewrite_follow_up
from rag.providers.minilm import DIM, MODEL_ID, MiniLM, shared_minilm
from rag.types import (
    AnswerTask,
    CachedContext,
    Embedded,
    Generation,
    JudgeTask,
    Prompt,
    RewriteTask,
    StreamDelta,
    Usage,
)

if TYPE_CHECKING:
    from rag.providers.extractive import ExtractiveAnswerer

OFFLINE_MODEL = "offline-extractive"


class OfflineProvider:
    """Both an Embedder (MiniLM) and a Generator (the extractive answerer): they share one model."""

    name = "offline"
    online = False
    embedding_id = f"offline:{MODEL_ID}:{DIM}"
    embedding_model = MODEL_ID
    embedding_dim = DIM
    flash_model = OFFLINE_MODEL
    pro_model = OFFLINE_MODEL

    def __init__(self, model: MiniLM | None = None, *, stream_delay_s: float = 0.0) -> None:
        self.model = model or shared_minilm()
        self.stream_delay_s = stream_delay_s

    @cached_property
    def answerer(self) -> ExtractiveAnswerer:
        """Built at the first answer: an ingest only embeds, and importing the answerer's
        modules was a tenth of an unchanged re-run's start."""
        from rag.providers.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(self.model)

    def embed_documents(self, texts: Sequence[str]) -> Embedded:
        vecs, tokens = self.model.embed_counted(list(texts))
        return Embedded(vecs.tolist(), Usage(prompt_tokens=tokens), MODEL_ID)

    def embed_query(self, text: str) -> Embedded:
        return self.embed_documents([text])

    def warm_up(self) -> None:
        """Loads MiniLM now (`rag.providers.base.Warms`): ingest overlaps it with reading."""
        self.model.warm_up()

    def generate(self, prompt: Prompt, model: str | None = None) -> Generation:
        text = self._respond(prompt)
        usage = Usage(prompt_tokens=self.count_tokens(prompt), output_tokens=self.model.count_tokens(text))
        return Generation(text, usage, OFFLINE_MODEL)

    def stream(self, prompt: Prompt, model: str | None = None) -> Iterator[StreamDelta]:
        gen = self.generate(prompt, model)
        for piece in re.findall(r"\S+\s*|\s+", gen.text):
            if self.stream_delay_s:
                time.sleep(self.stream_delay_s)
            yield StreamDelta(piece, OFFLINE_MODEL)
        yield StreamDelta("", OFFLINE_MODEL, gen.usage, final=True)

    def count_tokens(self, prompt: Prompt | str, model: str | None = None) -> int:
        if isinstance(prompt, str):
            return self.model.count_tokens(prompt)
        return self.model.count_tokens(prompt.text)

    def cache_prefix(self, prompt: Prompt, model: str, ttl_s: int) -> CachedContext | None:
        """The extractive answerer reads each prompt whole, locally and free: nothing to hold."""
        return None

    def drop_cache(self, name: str) -> None:
        """Nothing is ever held (see `cache_prefix`)."""

    def _respond(self, prompt: Prompt) -> str:
        match prompt.task:
            case AnswerTask(question, elsewhere, unheard):
                return self.answerer.answer(question, prompt.passages, elsewhere, unheard)
            case RewriteTask(question, history):
                return rewrite_follow_up(question, history)
            case JudgeTask(answer):
                from rag.providers.extractive import lexical_support

                # Labelled lexical proxy: the offline mode has no model to judge with.
                score = lexical_support(answer, prompt.passages)
                return json.dumps({"method": "lexical", "faithfulness": round(score, 3)})
        return prompt.contents[-1].text if prompt.contents else ""
