"""Turning a follow-up ("and how long does it take?") into a question retrieval can use alone.

Retrieval sees one string, not the conversation, so a follow-up that leans on earlier turns
must carry their subject. The provider does the rewriting: Gemini reads the instruction,
the offline default applies a deterministic rule to the same structured prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.providers.base import Generator
from rag.types import THINKING_ALLOWANCE_TOKENS, Message, Prompt, RewriteTask, Usage, estimate_tokens

MAX_HISTORY_MESSAGES = 8  # the last four exchanges carry the subject; older turns only add tokens
SUBJECT_TOKENS = 64  # what a standalone question adds to the follow-up: the subject it leans on

INSTRUCTION = """Rewrite the follow-up question below into a single standalone question that can be \
understood without the conversation above: replace pronouns and references with what they refer to. \
Keep the meaning and the language. If it is already standalone, return it unchanged. Reply with the \
question only.

Follow-up question: {question}"""


@dataclass(frozen=True)
class Rewritten:
    question: str
    usage: Usage
    model: str = ""  # the model that rewrote it (none without history)
    abandoned: tuple[Usage, ...] = ()  # what unanswered attempts may have billed (Generation.abandoned)


def output_bound(question: str) -> int:
    """The most a rewrite may write, thinking included: sent as its max_output_tokens and
    held against the budget. Unbounded, a model that wrote on (or was talked into it by the
    conversation) billed 30,000 output tokens past a session's budget, and its text became a
    60,000-character "question"."""
    return estimate_tokens(question) + SUBJECT_TOKENS + THINKING_ALLOWANCE_TOKENS


def rewrite_prompt(question: str, history: Sequence[Message]) -> Prompt:
    recent = tuple(history)[-MAX_HISTORY_MESSAGES:]
    return Prompt(
        contents=(*recent, Message("user", INSTRUCTION.format(question=question))),
        task=RewriteTask(question, recent),
        temperature=0.0,
        max_output_tokens=output_bound(question),
    )


def standalone(generator: Generator, question: str, history: Sequence[Message], model: str) -> Rewritten:
    """The question unchanged (no call) when there is no history, else the provider's rewrite."""
    if not history:
        return Rewritten(question, Usage())
    generation = generator.generate(rewrite_prompt(question, history), model=model)
    return Rewritten(generation.text.strip().strip("\"'") or question, generation.usage, generation.model,
                     generation.abandoned)
