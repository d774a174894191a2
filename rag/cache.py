"""The answer cache: a repeated question is answered at once, for free, and never stale.

The key covers everything an answer depends on: the normalised standalone question, the
collection and its corpus version (ingest bumps it on every change, so a re-ingest makes
older answers unreachable), the models, the prompt version, every field of the resolved
retrieval `Query` and the settings that shape retrieval and routing (`answer_key`).
Records are stored as JSON, never pickle, so a shared store cannot run code in the app.
Only the same question is served: an answer to a merely similar question can be the answer
to a different one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import unicodedata
from dataclasses import dataclass

from pydantic import BaseModel, TypeAdapter, ValidationError

from rag.answer import AnswerRecord, Route
from rag.kv import KV, Clock, Table, collection_table, open_kv
from rag.prompts import ANSWERER_VERSION, PROMPT_VERSION
from rag.retrieval import Query
from rag.settings import ANSWER_SHAPING_SETTINGS, Settings

_RECORD = TypeAdapter(AnswerRecord)
_TRAILING = re.compile(r"[\s?!.。？！,;:]+$")


@dataclass(frozen=True)
class CacheKey:
    """`scope` is a digest of everything but the question: answers in different scopes are
    never mixed. `collection` names the partition the answer is kept in (`AnswerCache`)."""

    scope: str
    question: str
    corpus_version: int
    collection: str = ""

    @property
    def digest(self) -> str:
        return _sha256(f"{self.scope}\n{self.question}")


def normalise_question(question: str) -> str:
    """Case, spacing, Unicode width and trailing punctuation do not change what is asked."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return _TRAILING.sub("", " ".join(text.split()))


def cache_key(
    standalone_question: str,
    corpus_version: int,
    model: str,
    prompt_version: str,
    retrieval_settings: object,
    collection: str = "",
) -> CacheKey:
    """`retrieval_settings` is any dataclass, pydantic model or mapping of the settings that
    shape retrieval (mode, top_k, MMR, source filter...); it is hashed as canonical JSON.
    `collection`: the answer's partition (`AnswerCache.table`)."""
    scope = json.dumps(
        [corpus_version, model, prompt_version, _plain(retrieval_settings)],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return CacheKey(_sha256(scope), normalise_question(standalone_question), corpus_version, collection)


def answer_key(settings: Settings, collection: str, corpus_version: int, query: Query, models: str) -> CacheKey:
    """The key of the answer to `query` (its text is the standalone question). Built from
    what retrieval actually used: every field of the resolved query, so a field added to it
    is covered without touching this function, plus the settings retrieval and routing read.
    `models`: the forced model, or the router's choices."""
    shaping = {
        "collection": collection,
        "query": {f.name: getattr(query, f.name) for f in dataclasses.fields(query) if f.name != "text"},
        "settings": {name: getattr(settings, name) for name in ANSWER_SHAPING_SETTINGS},
    }
    return cache_key(query.text, corpus_version, models, f"{PROMPT_VERSION} {ANSWERER_VERSION}", shaping,
                     collection)


class AnswerCache:
    def __init__(self, settings: Settings, kv: KV | None = None, clock: Clock = time.time) -> None:
        self.settings = settings
        self.kv = kv or open_kv(settings, "cache", clock)

    def table(self, key: CacheKey) -> Table:
        return collection_table("answers", key.collection, self.settings)

    def get(self, key: CacheKey) -> AnswerRecord | None:
        """The stored answer marked as a cache hit: no cost, `saved_usd` = what it first cost,
        its citations and original usage unchanged. The caller sets question and session."""
        record = self._load(key)
        return _as_hit(record, "same question") if record else None

    def put(self, key: CacheKey, record: AnswerRecord) -> None:
        """Stores the answer without its session or conversation history: the cache is
        shared by every session, and one user's conversation is not another's business."""
        if record.cached:
            return
        shared = dataclasses.replace(record, session_id="", history=[], corpus_version=key.corpus_version)
        self.kv.put(self.table(key), key.digest, _RECORD.dump_json(shared))

    def _load(self, key: CacheKey) -> AnswerRecord | None:
        """An entry written by an older version of the record format is a miss, not an error:
        the next answer overwrites it."""
        raw = self.kv.get(self.table(key), key.digest)
        if raw is None:
            return None
        try:
            return _RECORD.validate_json(raw)
        except ValidationError:
            return None


def _as_hit(record: AnswerRecord, why: str) -> AnswerRecord:
    first = record.route
    return dataclasses.replace(
        record,
        cached=True,
        cost_usd=0.0,
        saved_usd=record.cost_usd,
        latency_s=0.0,
        ttft_s=0.0,
        route=Route(
            kind="cached",
            model=first.model,
            reason=f"served from the answer cache ({why}); first answered by {first.model}: {first.reason}",
            prompt_tokens=first.prompt_tokens,
        ),
    )


def _plain(settings: object) -> object:
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    if isinstance(settings, BaseModel):
        return settings.model_dump(mode="json")
    return settings


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
