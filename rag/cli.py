"""`python -m rag ask|chat|costs`: answers in the terminal, streamed as they are written.

Each answer is followed by the sources shown to the model (cited ones marked), the route
and its reason, tokens and timings, so a user sees what the answer rests on and cost.
Errors a user can act on print as one message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from logging.handlers import BufferingHandler
from typing import TextIO, TypeVar

from rag.answer import MAX_K, MAX_SESSION_ID_CHARS, SESSION_ID, AnswerRecord, AskOptions, Delta, Done, Event
from rag.chain import Chain
from rag.commands import Exit, Parser, add_debug_flag, folder_path, run_command
from rag.conversations import Conversations
from rag.errors import GemragError, InvalidRequest
from rag.kv import StoreUnavailable
from rag.server.choices import answer_model, noted
from rag.text import counted
from rag.types import Message

_T = TypeVar("_T")
EXIT_WORDS = frozenset({"exit", "quit", ":q", "/exit", "/quit", "/q", "/bye"})  # "/quit": as other chat tools


def _top_k(text: str) -> int:
    """The API's bound (MAX_K): a larger k sent a prompt of 127 passages, dearer and no better.
    One message for a word and a number out of range alike: for a word argparse otherwise said
    "invalid _top_k value", naming this function."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_K:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_K}")
    return value


def _session_id(text: str) -> str:
    """A `--session` id as the API takes one: it is printed in a command to copy, so "a b"
    printed a command that failed, a line break split it, and "" started a new session."""
    if not SESSION_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"a session id is 1-{MAX_SESSION_ID_CHARS} letters, digits, '.', '_' or '-'"
                                         f", not {text[:40]!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m rag", description="Ask questions about your documents.")
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="answer one question")
    ask.add_argument("question")
    chat = commands.add_parser("chat", help="a multi-turn conversation; follow-ups are understood")
    for sub in (ask, chat):
        sub.add_argument("--collection", help="collection to search (default: settings.collection)")
        sub.add_argument("--data-dir", type=folder_path,
                         help="where the collections live (default: GEMRAG_DATA_DIR or ./.gemrag)")
        sub.add_argument("--k", type=_top_k,
                         help=f"passages to send to the model, 1 to {MAX_K} (default: settings.top_k)")
        sub.add_argument("--mode", choices=["hybrid", "vector", "bm25"], help="retrieval mode")
        sub.add_argument("--mmr", action=argparse.BooleanOptionalAction, default=None,
                         help="diversify the passages with maximal marginal relevance")
        sub.add_argument("--rerank", choices=["none", "local", "gemini"],
                         help="second ranking stage over the fused candidates (default: settings.rerank)")
        sub.add_argument("--source", action="append", default=[], metavar="PATH",
                         help="only search this source path (repeatable)")
        sub.add_argument("--model", help="force a model instead of the router's choice")
        sub.add_argument("--backend", choices=["gemrag", "file-search"],
                         help="file-search: Gemini's File Search tool retrieves, over the collection uploaded "
                              "with python -m ingest --backend file-search (default: settings.backend)")
        add_debug_flag(sub)
        sub.add_argument("--session", metavar="ID", type=_session_id,
                         help="continue this session: its conversation (a question may follow up its last "
                              "answer) and its budget; each run is a new session otherwise, the id is printed at "
                              "the end")
    commands.add_parser("costs", help="spending and cache reports (python -m rag costs --help)", add_help=False)
    commands.add_parser("models", help="the model catalogue and what the key can use (python -m rag models --help)",
                        add_help=False)
    commands.add_parser("experiments", help="A/B experiments of answer models (python -m rag experiments report)",
                        add_help=False)
    return parser


def options_from(args: argparse.Namespace) -> AskOptions:
    return AskOptions(
        collection=args.collection,
        mode=args.mode,
        top_k=args.k,
        mmr=args.mmr,
        rerank=args.rerank,
        sources=tuple(args.source),
        model=args.model,
    )


# A terminal obeys control characters: a document's "\x1b]0;title\x07" or "\x1b[31m", quoted
# into an answer, would retitle or recolour it (or, with OSC 52, set the clipboard). Only line
# breaks and tabs are written as they are; others show as \xNN, as file names do.
_TERMINAL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(c) not in "\n\t"}


def for_terminal(text: str) -> str:
    """The text with every control character but line breaks and tabs written out (`\\x1b`)."""
    return text.translate(_TERMINAL)


def print_answer(events: Iterable[Event], out: TextIO) -> AnswerRecord:
    """Writes deltas as they arrive, then the sources and the numbers, control characters
    written out (`for_terminal`); returns the record."""
    record, line_ended, holding = None, True, False
    with ExitStack() as answering:
        try:
            for event in events:
                if isinstance(event, Delta):
                    if not holding:  # from the first words: retry notes before them show as they come
                        answering.enter_context(logs_after_answer())
                        holding = True
                    out.write(for_terminal(event.text))
                    out.flush()
                    line_ended = event.text.endswith("\n") if event.text else line_ended
                elif isinstance(event, Done):
                    record = event.record
        except BaseException:  # cut off: the error (and any alert) must not join its last words
            if isinstance(events, Generator):
                events.close()  # now, not when collected: the chain settles what the answer spent before it is told
            if not line_ended:
                out.write("\n")
                out.flush()
            raise
        assert record is not None, "a chain stream always ends with Done"
        out.write("\n\n" + for_terminal(describe(record)) + "\n")
        out.flush()
    return record


@contextmanager
def logs_after_answer() -> Iterator[None]:
    """What is logged while an answer is written (the budget alert raised when its cost is
    settled) is held back and logged once the answer ends, on its own line: on a terminal it
    landed mid-answer ("## Tracing [1]budget alert: …")."""
    root = logging.getLogger()
    held = BufferingHandler(capacity=sys.maxsize)  # emptied by hand below, never by size
    kept, root.handlers = root.handlers, [held]
    try:
        yield
    finally:
        root.handlers = kept
        for record in held.buffer:  # through the usual handlers (Python's last resort: stderr)
            logging.getLogger(record.name).handle(record)


def describe(record: AnswerRecord) -> str:
    cited = {c.n for c in record.citations}
    lines = ["Sources (* cited):"]
    for s in record.sources:
        page = f" {s.place}" if s.place else ""
        heading = f" — {s.heading}" if s.heading else ""
        lines.append(f" {'*' if s.n in cited else ' '}[{s.n}] {s.source}{page}{heading}")
    usage = record.usage
    cached = f" ({usage.cached_tokens:,} cached)" if usage.cached_tokens else ""
    thinking = f" + {usage.thinking_tokens:,} thinking" if usage.thinking_tokens else ""
    saved = f" · implicit cache saved ${record.cache_saved_usd:.6f}" if record.cache_saved_usd else ""
    if record.cached:  # its cost is the turn's other calls (a follow-up's rewrite), not the answer's
        saved += f" · the answer came from the cache, saving ${record.saved_usd:.6f}"
    lines += [
        f"Route: {record.route.kind} · {record.route.model} · {record.route.reason}",
        f"Usage: {usage.prompt_tokens:,} prompt{cached} + {usage.output_tokens:,} output{thinking} tokens · "
        f"first token {record.ttft_s:.2f} s · total {record.latency_s:.2f} s",
        f"Cost: ${record.cost_usd:.6f}{saved}",
    ]
    if record.standalone_question != record.question:
        lines.append(f"Searched for: {record.standalone_question}")
    flagged = [c for c in record.checks if c.flagged]
    if flagged:
        lines.append("Check these sentences (their citation does not support them, or they cite nothing):")
        lines += [f"  ! {c.sentence} ({c.verdict}: {c.reason})" for c in flagged]
    return "\n".join(lines)


def ask(chain: Chain, args: argparse.Namespace, note: str = "") -> int:
    """One question, a follow-up of the session's earlier ones (`--session`, `Kept`): no
    further question is expected, so no context is cached for one. `note`: what the route
    adds when a retired --model was replaced."""
    options = replace(options_from(args), follow_ups=0)
    kept = Kept(chain, args.session)
    record = print_answer(noted(chain.stream(args.question, kept.history(), args.session, options), note), sys.stdout)
    kept.add(args.question, record.answer)
    return Exit.OK


def chat(chain: Chain, args: argparse.Namespace, note: str = "") -> int:
    """A refused question (a budget, a quota, bad input) leaves the chat open for others, a
    cheaper one may fit; the chat then ends with the code `rag ask` gives a refusal (README,
    Exit codes), not 0, so a script feeding it questions can tell."""
    options = options_from(args)
    chain.stores.get(options.collection)  # a missing or misspelt collection: one line, before the prompt opens
    chain.check_sources(options)  # and a misspelt --source
    kept = Kept(chain, args.session)
    history = kept.history()
    ending = Exit.OK
    print("Ask about your documents; 'exit' or Ctrl-D ends the session.")
    while True:
        try:
            question = input("\nyou> ").strip()
        except EOFError:
            print()
            question = "exit"
        if question.lower() in EXIT_WORDS:
            return ending
        if not question:
            continue
        print()
        try:
            record = print_answer(noted(chain.stream(question, history, args.session, options), note), sys.stdout)
        except GemragError as error:
            print(f"error: {error}", file=sys.stderr)
            ending = Exit.REFUSED
            continue
        history += [Message("user", question), Message("model", record.answer)]
        kept.add(question, record.answer)


class Kept:
    """A terminal session's conversation, kept where the API keeps its own (`Conversations`):
    `python -m rag ask --session ID "and when does it open?"` is read as a follow-up of the
    session's last answer, as in `rag chat`. Before, `--session` carried only the spending
    and budget, and the follow-up was searched as asked. A store that cannot be reached
    (Redis down) costs the history, said once, not the answer."""

    def __init__(self, chain: Chain, session: str) -> None:
        self.session = session
        self.conversations: Conversations | None = Conversations(chain.settings)

    def history(self) -> list[Message]:
        return self._kept(lambda c: c.history(self.session)) or []

    def add(self, question: str, answer: str) -> None:
        self._kept(lambda c: c.append(self.session, question, answer))

    def _kept(self, step: Callable[[Conversations], _T]) -> _T | None:
        if self.conversations is None:
            return None
        try:
            return step(self.conversations)
        except StoreUnavailable as error:
            print(f"note: the session's conversation is not kept ({error})", file=sys.stderr)
            self.conversations = None
            return None


def run(args: argparse.Namespace) -> int:
    from rag.backend import Backend
    from rag.settings import get_settings
    from rag.stores import Stores

    settings = get_settings()
    chosen = {"backend": args.backend, "data_dir": args.data_dir}
    settings = settings.model_copy(update={k: v for k, v in chosen.items() if v is not None})
    if settings.backend == "gemrag" and not settings.chroma_url and not settings.data_dir.exists():
        # A mistyped --data-dir: refused before the ledger and the cache would create it
        # (File Search's own checks, a key first, come with its backend).
        Stores(settings).get(args.collection)
    backend = Backend.build(settings)
    try:  # the API's check: an unknown model was sent to Gemini as asked, and charged at $0
        forced = answer_model(args.model, backend.generator, settings)
    except InvalidRequest as error:
        raise InvalidRequest(f"--model: {error}", field=error.field) from None
    args.model = forced.model
    chain = backend.chain
    args.session = args.session or new_session_id()
    try:
        ending = ask(chain, args, forced.note) if args.command == "ask" else chat(chain, args, forced.note)
    except KeyboardInterrupt:  # Ctrl-C, even before anything was spent: the id continues the session
        print_session(chain, args.session)
        raise
    except BaseException:  # failed: what was spent on the way can be looked up too
        print_session(chain, args.session, if_spent=True)
        raise
    else:
        print_session(chain, args.session)
    finally:  # the session ends with the command (exit, Ctrl-D, Ctrl-C): what Gemini holds for it goes
        chain.end_session(args.session)
    return ending


def print_session(chain: Chain, session_id: str, *, if_spent: bool = False) -> None:
    """`if_spent`: nothing for a session with no calls (a question refused as bad input before
    any call), whose error then stays the one line it is."""
    try:
        totals = chain.ledger.session(session_id)
    except StoreUnavailable:  # the error being reported may be this one: the id is still worth printing
        print(f"Session {session_id}: python -m rag costs --session {session_id} shows its spending once the "
              "ledger's store is back", file=sys.stderr)
        return
    if if_spent and totals.empty:
        return
    saved = f", implicit cache saved ${totals.cache_saved_usd:.6f}" if totals.cache_saved_usd else ""
    print(f"Session {session_id}: {counted(totals.answers, 'answer')}, ${totals.cost_usd:.6f}{saved}; "
          f"python -m rag costs --session {session_id}{_data_dir(chain)} shows its spending; "
          f"continue it with --session {session_id}", file=sys.stderr)


def _data_dir(chain: Chain) -> str:
    """` --data-dir D` when the session's ledger is not where `rag costs` looks by default: its
    hint showed all zeros for a session asked with --data-dir."""
    from rag.settings import get_settings

    if chain.settings.data_dir == get_settings().data_dir:
        return ""
    return f" --data-dir {shlex.quote(str(chain.settings.data_dir))}"


def new_session_id() -> str:
    """One budget session per process: the session budget is per conversation, not a lifetime
    budget shared by every run (which an empty id made it)."""
    return f"cli-{uuid.uuid4().hex[:12]}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["costs"]:
        from rag.reports import main as reports_main

        return reports_main(argv[1:])
    if argv[:1] == ["models"]:
        from rag.lineup import main as lineup_main

        return lineup_main(argv[1:])
    if argv[:1] == ["experiments"]:
        from rag.experiments import main as experiments_main

        return experiments_main(argv[1:])
    return run_command(lambda: run(build_parser().parse_args(argv)), argv, interrupted="\ninterrupted")
