"""`python -m rag costs` and the typed report behind it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from rag.costs import Ledger
from rag.reports import cost_report, main
from rag.settings import Settings
from rag.types import Usage


def _spend(ledger: Ledger) -> None:
    flash = Usage(prompt_tokens=10_000, output_tokens=500)  # $0.009375 on Flash
    ledger.charge("alice", "gemini-3.8-flash", flash, "answer")
    ledger.record("alice", "gemini-3.8-flash", Usage(), "answer", 0.0, saved_usd=0.009_375, cached=True)
    ledger.charge("alice", "gemini-embedding-001", Usage(prompt_tokens=1_000), "embed")  # $0.000150
    ledger.charge("bob", "gemini-3.1-pro-preview", Usage(prompt_tokens=8_000, output_tokens=1_000), "answer")  # $0.028


def test_the_report_holds_per_session_and_per_model_totals(store_settings: Settings) -> None:
    ledger = Ledger(store_settings)
    _spend(ledger)
    report = cost_report(store_settings, ledger=ledger)

    assert report.total.cost_usd == pytest.approx(0.009_375 + 0.000_15 + 0.028)
    assert report.sessions["alice"].hit_rate == 0.5
    assert report.sessions["alice"].saved_usd == pytest.approx(0.009_375)
    assert report.models["gemini-3.1-pro-preview"].usage == Usage(prompt_tokens=8_000, output_tokens=1_000)

    only_bob = cost_report(store_settings, "bob", ledger=ledger)
    assert list(only_bob.sessions) == ["bob"] and list(only_bob.models) == ["gemini-3.1-pro-preview"]
    assert only_bob.total.cost_usd == pytest.approx(0.028)


def test_json_output_carries_the_same_numbers(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _spend(Ledger(settings))
    assert main(["--json"], settings) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["cost_usd"] == pytest.approx(0.009_375 + 0.000_15 + 0.028)
    assert data["sessions"]["alice"]["hit_rate"] == 0.5
    assert data["sessions"]["alice"]["usage"]["prompt_tokens"] == 11_000
    assert data["models"]["gemini-3.8-flash"]["saved_usd"] == pytest.approx(0.009_375)


def test_tables_show_sessions_models_hit_rate_and_savings(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _spend(Ledger(settings))
    assert main(["--session", "alice"], settings) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "bob" not in out
    assert "gemini-3.8-flash" in out and "gemini-embedding-001" in out
    assert "50%" in out  # hit rate
    assert "0.009375" in out  # money saved by the cache hit


def test_thinking_tokens_have_their_own_column_as_in_the_json_and_the_api(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The "output tok" column held output and thinking together; the API's output_tokens does not."""
    Ledger(settings).charge("dora", "gemini-3.8-flash", Usage(prompt_tokens=476, output_tokens=13, thinking_tokens=24),
                            "answer")
    assert main(["--session", "dora"], settings) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "output tok" in line)
    row = next(line for line in lines if line.startswith("│ gemini-3.8-flash"))
    cells = dict(zip((c.strip() for c in header.split("┃")), (c.strip() for c in row.split("│")), strict=True))
    assert (cells["prompt tok"], cells["output tok"], cells["thinking tok"]) == ("476", "13", "24")


def test_a_model_missing_from_the_catalogue_is_charged_as_the_dearest_of_its_role_and_flagged(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    Ledger(settings).charge("carol", "gemini-4-flash-preview", Usage(prompt_tokens=1_000, output_tokens=100), "answer")
    report = cost_report(settings)
    assert report.unlisted == {"gemini-4-flash-preview": "gemini-3.5-flash"}
    # gemini-3.5-flash (1.50 in / 9.00 out) is the dearest Flash: 1,000 × 1.50 + 100 × 9.00 = 2,400 per 1M
    assert report.models["gemini-4-flash-preview"].cost_usd == pytest.approx(0.002_4)
    assert main([], settings) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "gemini-4-flash-preview answered but is not in the model catalogue: charged at gemini-3.5-flash's" in out
    assert 'Add its row as [models."gemini-4-flash-preview"] in gemrag.toml' in out


def test_square_brackets_in_names_are_printed_as_written_not_read_as_rich_markup(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A session id is whatever --session was given; Rich read "[eu]" in it as a style and
    dropped it, so the report named a session that does not exist."""
    Ledger(settings).charge("ops[eu]", "gemini-3.8-flash", Usage(prompt_tokens=1_000), "answer")
    assert main([], settings) == 0
    assert "ops[eu]" in capsys.readouterr().out
    assert main(["--session", "ops[eu]"], settings) == 0
    out = capsys.readouterr().out
    assert "Per session (session ops[eu])" in out and out.count("ops[eu]") == 4


def test_an_unknown_session_and_an_empty_ledger_are_told_plainly(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([], settings) == 0
    assert "No calls recorded yet" in capsys.readouterr().out
    assert main(["--session", "nobody"], settings) == 1  # README, Exit codes: "a session with no calls"
    out, err = capsys.readouterr()
    note = "no calls recorded for session 'nobody': not used yet, or not this id"
    assert err == note + "\n"  # once, on stderr: it was printed above the table too
    # README: "reported all zeros"; the table printed nothing at all, only --json did
    assert note not in out and out.startswith("Per session (session nobody)")
    assert re.search(r"│ nobody +│ +0 │ +0 │ +0% │ +0 │", out) and "Budgets: $" in out


def test_an_unreachable_redis_is_one_clear_line_without_the_password(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://:hunter2-secret@127.0.0.1:1/0"})
    assert main([], broken) == 2  # refused: the store cannot be used (README: exit codes)
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot use Redis at 127.0.0.1:1/0 (REDIS_URL)")
    assert "hunter2" not in err and "Traceback" not in err


@pytest.mark.slow
def test_python_m_rag_costs_runs_from_the_command_line(settings: Settings) -> None:
    _spend(Ledger(settings))
    env = os.environ | {"GEMRAG_DATA_DIR": str(settings.data_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "rag", "costs", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["sessions"]["bob"]["cost_usd"] == pytest.approx(0.028)


def test_costs_reads_the_ledger_of_the_data_dir_it_is_given(settings: Settings, tmp_path, capsys) -> None:
    """`rag ask --data-dir D` told the user to run `rag costs --session ID`, which had no
    --data-dir, read the default data dir's ledger and showed all zeros."""
    _spend(Ledger(settings))
    elsewhere = settings.model_copy(update={"data_dir": tmp_path / "empty"})
    assert main(["--json", "--data-dir", str(settings.data_dir), "--session", "bob"], elsewhere) == 0
    assert json.loads(capsys.readouterr().out)["total"]["cost_usd"] == pytest.approx(0.028)
    mistyped = tmp_path / "no-such-dir"
    assert main(["--data-dir", str(mistyped)], settings) == 2  # not made, and no "No calls recorded yet"
    assert f"error: no data dir at {mistyped}" in capsys.readouterr().err and not mistyped.exists()
