"""Choosing the model for one answer: Flash unless the context needs Pro, and saying why.

Pro costs several times Flash per token, so it is spent only when the assembled prompt is
larger than `pro_threshold_tokens` or the question asks about a whole document (then the
whole document is sent, not chunks, when it fits `whole_document_budget_tokens`). Every
answer records its Route; when Pro is out of quota, Flash answers and the route says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from rag.answer import Route
from rag.costs import price_usd
from rag.errors import ProviderError
from rag.filetypes import SUPPORTED
from rag.headroom import Headroom, Verdict
from rag.providers.base import Generator
from rag.settings import Settings
from rag.text import asks_for_whole_document
from rag.types import Message, Prompt, Usage

# A file name as a question writes it ("pricing.pdf"): a name with an extension ingest takes.
_EXTENSIONS = "|".join(ext.lstrip(".") for ext in SUPPORTED)
_FILE_NAME = re.compile(rf"[\w./-]*\w\.(?:{_EXTENSIONS})\b", re.IGNORECASE)


def _names(source: str) -> tuple[set[str], set[str]]:
    """How a question may name a source: exactly (its path, its file name), or loosely (its
    stem, with "_" and "-" read as spaces: "the pricing guide" names pricing.pdf)."""
    path = PurePosixPath(source.lower())
    loose = {path.stem, path.stem.replace("_", " ").replace("-", " ")}
    return {str(path), path.name}, {name for name in loose if len(name) > 2}


def _said(name: str, text: str) -> bool:
    """`name` in `text` as whole words: "api" is not named by "capital", nor "pricing" by
    "pricing.md" (another file than pricing.pdf)."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)", text) is not None


def named_documents(question: str, sources: Sequence[str]) -> list[str]:
    """The sources (in the order given) the question names: by path or file name if any is,
    else by stem."""
    text = question.lower()
    names = [(source, *_names(source)) for source in sources]
    exact = [s for s, whole, _ in names if any(_said(name, text) for name in whole)]
    return exact or [s for s, _, stems in names if any(_said(name, text) for name in stems)]


def unheld_files(question: str, held: Sequence[str]) -> list[str]:
    """The file names the question writes ("invoices.pdf") that no file of `held` has."""
    names = {part for source in held for part in _names(source)[0]}
    return [name for name in dict.fromkeys(_FILE_NAME.findall(question.lower())) if name not in names]


@dataclass(frozen=True)
class Wanted:
    """The document a whole-document question is about, or, when it named none the collection
    holds (or several), why none is sent whole: the route says so instead of sending another."""

    source: str | None = None
    unfound: str = ""


@dataclass(frozen=True)
class Size:
    """A prompt's size in tokens: exact, or an upper bound (its character count) when that
    alone settles the decision."""

    tokens: int
    exact: bool

    def __str__(self) -> str:
        return f"{self.tokens:,} tokens" if self.exact else f"at most {self.tokens:,} tokens"


@dataclass(frozen=True)
class WholeDocument:
    """The alternative to retrieved chunks: one document, all of it, in order. `follow_up`: not
    asked for by this question, but by an earlier one of the conversation (`document_discussed`)."""

    source: str
    prompt: Prompt
    follow_up: bool = False


@dataclass(frozen=True)
class Routed:
    prompt: Prompt  # what to send: the chunks' prompt or the whole document's
    route: Route
    size: Size | None = None  # the prompt's size as routing measured it (none when forced)
    document: str | None = None  # the document sent whole, if one was


class Router:
    def __init__(self, settings: Settings, generator: Generator, headroom: Headroom | None = None) -> None:
        """`headroom`: quota and budget left, consulted before Pro or Flash is chosen (none:
        the context-size rule alone decides)."""
        self.settings = settings
        self.generator = generator
        self.headroom = headroom

    def wanted(self, question: str, ranked_sources: Sequence[str], held: Sequence[str] = ()) -> Wanted:
        """What a "summarise this document" question asks for: the document it names, looked
        up among `held` (all the collection's files; else the retrieved ones), the best-ranked
        one if it names several, or else the best-ranked source; nothing for ordinary
        questions. A question naming a file the collection does not hold, or several files
        none of which was retrieved, gets none: sending another document whole would answer
        about the wrong one, at Pro's price."""
        if not asks_for_whole_document(question):
            return Wanted()
        candidates = held or ranked_sources
        named = named_documents(question, candidates)
        if len(named) == 1:
            return Wanted(named[0])
        if named:
            best = next((s for s in ranked_sources if s in named), None)
            return Wanted(best, "" if best else f"the question could name any of {', '.join(named)}")
        missing = unheld_files(question, candidates)
        if missing:
            return Wanted(unfound=f"the question names {', '.join(missing)}, which is not among the files searched")
        return Wanted(ranked_sources[0] if ranked_sources else None)

    def document_discussed(
        self, history: Sequence[Message], ranked_sources: Sequence[str], held: Sequence[str] = ()
    ) -> str | None:
        """The document a follow-up is about when the conversation is about a whole document:
        an earlier question asked for the whole of the follow-up's best-ranked document (by
        name, or naming none of the collection's files). Such a session stays on the whole
        document, so each follow-up sends the same long prefix (rag.contextcache caches it)."""
        if not ranked_sources:
            return None
        best = ranked_sources[0]
        for message in history:
            if message.role == "user" and self.wanted(message.text, ranked_sources, held).source == best:
                return best
        return None

    def route(
        self,
        prompt: Prompt,
        whole: WholeDocument | None = None,
        forced_model: str | None = None,
        session_id: str = "",
        held_usd: float = 0.0,
        unfound: str = "",
    ) -> Routed:
        """`held_usd`: what the answer already holds in the ledger for its answer call (its
        Flash-sized first hold), which Pro would take over: see `_pro_blocked`. `unfound`: why
        the whole document a question asked for was not found (`Wanted.unfound`), said in
        the route, which then goes on as for any question."""
        if forced_model:
            return Routed(prompt, self._chosen(forced_model))
        budget = self.settings.whole_document_budget_tokens
        threshold = self.settings.pro_threshold_tokens
        note = f"; {unfound}, so the passages found were sent instead of a whole document" if unfound else ""
        held_back = None
        if whole is not None:
            size = self.size(whole.prompt, budget)
            held_back = self._pro_blocked(size, session_id, held_usd) if size.tokens <= budget else None
            if size.tokens <= budget and held_back is None:
                asked = "a follow-up about" if whole.follow_up else "the question asks for"
                why = f"{asked} the whole of {whole.source} ({size}, sent whole)"
                route = self._decided(self.generator.pro_model, why, pro=True, size=size)
                return Routed(whole.prompt, route, size, whole.source)
            if held_back is not None:
                note = f"; the whole of {whole.source} ({size}) was not sent to Pro: {held_back.reason}"
            else:
                note = (
                    f"; the whole of {whole.source} ({size}) is over the {budget:,}-token budget, "
                    "so only its best passages were sent"
                )
        size = self.size(prompt, threshold)
        if size.tokens > threshold:
            route = self._escalated(f"context {size} > {threshold:,}{note}", size, session_id, held_usd)
        else:
            route = self._on_flash(f"context {size} <= {threshold:,}{note}", size)
        if held_back is not None and not route.decision:
            route = replace(route, decision=held_back.decision)
        return Routed(prompt, route, size)

    def _pro_blocked(self, size: Size, session_id: str, held_usd: float) -> Verdict | None:
        """Why Pro should not take a prompt of this size now (its quota, the budget left). The
        budget left counts the answer's own hold as spent; Pro's hold replaces that one rather
        than adding to it (Budget.hold_answer), so `held_usd` is Pro's to use."""
        if self.headroom is None or not self.generator.online:
            return None
        pro = self.generator.pro_model
        output = self.settings.budget_output_tokens
        estimate = price_usd(self.settings, pro, Usage(prompt_tokens=size.tokens, output_tokens=output))
        return self.headroom.quota_blocked(pro, "pro_quota") or self.headroom.budget_blocked(
            session_id, estimate, pro, held_usd
        )

    def _escalated(self, why: str, size: Size, session_id: str, held_usd: float) -> Route:
        """Pro, unless its quota or the budget left says not now: then Flash, with both reasons."""
        blocked = self._pro_blocked(size, session_id, held_usd)
        if blocked is None:
            return self._decided(self.generator.pro_model, why, pro=True, size=size)
        route = self._on_flash(f"{why}, but {blocked.reason}, so Pro was not used", size)
        return replace(route, decision=route.decision or blocked.decision)

    def _on_flash(self, why: str, size: Size) -> Route:
        """Flash, or Flash-Lite when Flash itself is near its quota."""
        flash, lite = self.generator.flash_model, self.settings.lite_model
        blocked = None
        if self.headroom is not None and self.generator.online and lite != flash:
            blocked = self.headroom.quota_blocked(flash, "flash_quota")
        if blocked is None:
            return self._decided(flash, why, pro=False, size=size)
        route = self._decided(lite, f"{why}; {blocked.reason}, so the answer moved to Flash-Lite", pro=False, size=size)
        return replace(route, decision=blocked.decision)

    def fallback(self, route: Route, error: ProviderError) -> Route:
        """Flash instead of Pro after Pro's quota ran out; the reason keeps why Pro was wanted."""
        flash = self.generator.flash_model
        return Route(
            kind="fallback",
            model=flash,
            reason=f"{route.model} is out of quota ({error.reason or error}), so {flash} answered "
            f"instead; Pro was chosen because: {route.reason}{self._retired_note(flash)}",
            prompt_tokens=route.prompt_tokens,
        )

    def served(self, route: Route, model: str) -> Route:
        """The route as served: when Google answered with another model than the one asked
        (the response's modelVersion, e.g. a retired model rerouted), that model is named and
        charged."""
        if model == route.model:
            return route
        reason = f"{route.reason}; {route.model} was asked, {self._named(model)} answered"
        return replace(route, model=model, reason=reason)

    def size(self, prompt: Prompt, limit: int) -> Size:
        """Counted by the provider only when it could exceed `limit`.

        A token spans at least one character, so a prompt with no more characters than the
        limit is within it without asking; for Gemini that saves a network round trip before
        the first token."""
        chars = len(prompt.text)
        if chars <= limit:
            return Size(chars, exact=False)
        return Size(self.generator.count_tokens(prompt), exact=True)

    def _chosen(self, model: str) -> Route:
        """A model the user forced (--model, the UI's model menu): named as chosen, never
        labelled Flash or Pro, whatever it is."""
        if not self.generator.online:
            return self._decided(model, "model chosen by the caller", pro=False)
        return Route("chosen", model, "model chosen by the caller")

    def _decided(self, model: str, why: str, *, pro: bool, size: Size | None = None) -> Route:
        tokens = size.tokens if size else 0
        if not self.generator.online:
            return Route("offline", model, f"offline mode (no Gemini key), extractive answer: {why}", tokens)
        named, note = self._named(model), self._retired_note(model)
        if pro:
            return Route("pro", model, f"{why}: escalated to {named}{note}", tokens)
        return Route("flash", model, f"{why}: {named}{note}", tokens)

    def _named(self, model: str) -> str:
        """A preview model is allowed (Pro exists only as one) and always labelled so."""
        row = self.settings.models.get(model)
        return f"{model} (preview)" if row is not None and row.status == "preview" else model

    def _retired_note(self, model: str) -> str:
        """Set when the startup check replaced a retired model by this one (rag.lifecycle)."""
        note = self.settings.replaced.get(model)
        return f"; {note}" if note else ""
