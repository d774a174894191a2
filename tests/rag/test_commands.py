"""One exit-code table and one way to report errors for every command (rag/commands.py)."""

from __future__ import annotations

import pytest

from rag.commands import Exit, run_command
from rag.errors import BudgetExceeded

KEY = "AIza-test-key-PLANTED-commands-5e1"


def _bug() -> int:
    raise RuntimeError(f"index out of range while reading {KEY}")


def test_the_exit_codes() -> None:
    assert [int(e) for e in Exit] == [0, 1, 2, 3, 130]
    assert run_command(lambda: 1, []) == Exit.SOME_FAILED


def test_a_user_error_is_one_line_and_refused(capsys: pytest.CaptureFixture[str]) -> None:
    def refused() -> int:
        raise BudgetExceeded("the session budget would be exceeded")

    assert run_command(refused, []) == Exit.REFUSED
    assert capsys.readouterr().err == "error: the session budget would be exceeded\n"


def test_a_bug_is_one_line_by_default_and_never_shows_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.delenv("GEMRAG_DEBUG", raising=False)
    assert run_command(_bug, ["ask", "x"]) == Exit.UNEXPECTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and KEY not in err
    assert err.startswith("error: unexpected RuntimeError: index out of range while reading [redacted]")
    assert "--debug or GEMRAG_DEBUG=1" in err


def test_an_unexpected_error_never_shows_the_chroma_servers_password_or_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMRAG_DEBUG", raising=False)
    for env, secret in (({"CHROMA_URL": "http://admin:pw-4u-only@chroma:8000"}, "pw-4u-only"),
                        ({"CHROMA_URL": "http://chroma:8000", "GEMRAG_CHROMA_TOKEN": "tok-4u-only"}, "tok-4u-only")):
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        def leaks(secret: str = secret) -> int:
            raise RuntimeError(f"the server said: bad credentials {secret}")

        assert run_command(leaks, ["ask", "x"]) == Exit.UNEXPECTED
        err = capsys.readouterr().err
        assert secret not in err and "bad credentials [redacted]" in err
        monkeypatch.delenv("GEMRAG_CHROMA_TOKEN", raising=False)


@pytest.mark.parametrize(("argv", "env"), [(["ask", "x", "--debug"], ""), (["ask", "x"], "1")])
def test_debug_adds_the_traceback(
    argv: list[str], env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GEMRAG_DEBUG", env)
    assert run_command(_bug, argv) == Exit.UNEXPECTED
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in _bug" in err and KEY not in err
    assert err.rstrip().endswith("error: unexpected RuntimeError: index out of range while reading [redacted]")


def test_ctrl_c_is_130_with_what_was_kept(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_command(interrupted, [], interrupted="interrupted: finished work is kept") == Exit.INTERRUPTED
    assert capsys.readouterr().err == "interrupted: finished work is kept\n"


@pytest.mark.parametrize(
    "main_module", ["ingest.cli", "rag.cli", "rag.eval.cli", "ui.__main__", "bench.__main__", "rag.reports"]
)
def test_every_command_takes_debug_and_reports_bad_input_as_2(
    main_module: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad setting reaches every command the same way: one line, exit 2, and --debug parses."""
    import importlib

    from rag.settings import get_settings

    monkeypatch.setenv("GEMRAG_TOP_K", "many")
    get_settings.cache_clear()
    argv = {"ingest.cli": ["nowhere"], "rag.cli": ["ask", "x"], "rag.eval.cli": ["t.jsonl"],
            "bench.__main__": ["nonesuch"]}.get(main_module, [])
    try:
        code = importlib.import_module(main_module).main([*argv, "--debug"])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == Exit.REFUSED and err.count("\n") == 1 and err.startswith("error: ")


@pytest.mark.parametrize(("argv", "prog"), [
    (["rag.eval", "--no-such-option"], "rag.eval"),
    (["rag.eval", "feedback", "--no-such-option"], "rag.eval feedback"),
    (["rag.mcp", "--no-such-option"], "rag.mcp"),
    (["ingest.worker", "--threads", "many"], "ingest.worker"),
    (["bench", "--no-such-option"], "bench"),
])
def test_every_entry_point_says_a_usage_error_in_one_line(argv: list[str], prog: str, tmp_path) -> None:
    """Argparse printed its usage block above the line saying what was wrong; `rag`, `ingest`,
    the server and the UI said it in one line, these did not."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GEMRAG_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    [said] = done.stderr.splitlines()
    assert said.startswith(f"python -m {prog}: error: ")


@pytest.mark.parametrize("argv", [["rag", "models", "--json"], ["rag", "costs", "--json", "--session", "cli-0"]])
def test_a_reader_that_stops_reading_is_no_error(argv: list[str], tmp_path) -> None:
    """`python -m rag costs --json | head -2` ended "unexpected BrokenPipeError" (exit 3), and
    `rag models --json | head` with a traceback: the reader closing the pipe is no error."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GEMRAG_DATA_DIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child, still importing, writes a byte
    said = child.stderr.read().decode()
    assert child.wait(timeout=120) in (Exit.OK, Exit.SOME_FAILED), said  # costs: a session with no calls is 1
    assert "unexpected" not in said and "Traceback" not in said and "BrokenPipe" not in said
