"""How every `python -m ...` command ends: one table of exit codes, one way to report errors.

| code | meaning |
|---|---|
| 0 | done |
| 1 | done, but some items failed (files not ingested, a quality regression, a benchmark's problem) |
| 2 | bad input or refused (usage, configuration, budget, quota, key, mixed embedders): nothing to retry blindly |
| 3 | unexpected error: a bug |
| 130 | interrupted (Ctrl-C); work already finished is kept |

A user error is one line on stderr. An unexpected error is one line too, plus the traceback
when `--debug` is given or `GEMRAG_DEBUG=1` is set: real bugs must leave something to
diagnose, but a user should not meet a traceback by default. No message shows a key.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import NoReturn

from rag.errors import GemragError

KEY_VARIABLES = ("GEMRAG_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GEMRAG_EXTRA_API_KEYS", "GEMINI_API_KEYS")


class Exit(IntEnum):
    OK = 0
    SOME_FAILED = 1
    REFUSED = 2
    UNEXPECTED = 3
    INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose refusals end as every other user error does: one line on
    stderr (argparse's own, `prog: error: ...`) and exit 2. Argparse printed its whole usage
    block above that line, up to twenty lines burying the one that says what was wrong;
    --help still shows it. Its subcommands' parsers are of this class too (argparse makes
    them with the parent's class)."""

    def error(self, message: str) -> NoReturn:
        _say(f"{self.prog}: error: {message}")
        raise SystemExit(int(Exit.REFUSED))


def folder_path(text: str) -> Path:
    """A `--data-dir` (or other folder) as given: `Path("")` is the current folder, so
    `--data-dir "$UNSET_VARIABLE"` wrote the stores, ledger and manifest into whatever folder
    the command ran in (CLI walkthrough)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: name a folder, or leave the option out for the default")
    return Path(text)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="on an unexpected error, print its traceback (or set GEMRAG_DEBUG=1)")


def debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("GEMRAG_DEBUG", "").lower() in ("1", "true", "yes")


def run_command(
    body: Callable[[], int],
    argv: Sequence[str] | None = None,
    *,
    interrupted: str = "interrupted",
    refused: tuple[type[Exception], ...] = (),
) -> int:
    """Runs `body` (which returns 0 or 1) and turns whatever escapes it into the table's code.
    `refused`: more exception types that mean bad input (besides GemragError); `interrupted`
    says what Ctrl-C keeps."""
    args = list(sys.argv[1:] if argv is None else argv)
    user_errors: tuple[type[Exception], ...] = (GemragError, *refused)
    try:
        code = body()
        sys.stdout.flush()  # a reader gone already (`| head`) shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        # The reader stopped reading (`python -m rag costs --json | head`): what it read is
        # what it wanted, so this is no error; nothing more is written to the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except user_errors as error:
        _say(f"error: {error}")
        return Exit.REFUSED
    except KeyboardInterrupt:
        _say(interrupted)
        return Exit.INTERRUPTED
    except Exception as error:
        if debug_requested(args):
            _say(traceback.format_exc().rstrip())
        hint = "" if debug_requested(args) else " (run again with --debug or GEMRAG_DEBUG=1 for the traceback)"
        _say(f"error: unexpected {type(error).__name__}: {error}{hint}")
        return Exit.UNEXPECTED


def _say(text: str) -> None:
    print(redact_keys(text), file=sys.stderr, flush=True)


def redact_keys(text: str) -> str:
    """Every configured key is replaced, wherever it was set (environment or gemrag.toml), and
    the Chroma server's password or token."""
    for secret in _secrets():
        text = text.replace(secret, "[redacted]")
    return text


def _secrets() -> list[str]:
    found = [part.strip() for var in KEY_VARIABLES for part in os.environ.get(var, "").split(",")]
    try:
        from rag.settings import load_settings
        from rag.store import chroma_auth

        settings = load_settings()
        found += [k.get_secret_value() for k in [settings.api_key, *settings.extra_api_keys] if k]
        found += chroma_auth(settings)[1]  # the Chroma server's password or token
    except GemragError:
        pass  # a broken configuration is what is being reported; the environment's keys are covered
    return sorted({s for s in found if len(s) >= 8}, key=len, reverse=True)
