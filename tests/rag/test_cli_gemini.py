"""`python -m rag` on the Gemini path, in its own process against the fake Gemini server, as a
user runs it (issue #14, item 8): a forced model is named as forced, each process is its own
budget session unless `--session` continues one, and a 429 on answering advises about
answering, not embedding."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest

from rag.providers.gemini import GeminiProvider
from rag.settings import Settings
from rag.testing.fake_gemini import FakeGemini, Fault, rewrites_as_asked
from tests.fakes.gemini_cli import gemini_env, run
from tests.fakes.tiny_corpus import build_store

pytestmark = pytest.mark.slow
QUESTION = "How many days of paid vacation do employees get?"


@pytest.fixture
def env(gemini_settings: Settings, fake_gemini: FakeGemini) -> dict[str, str]:
    build_store(gemini_settings, GeminiProvider(gemini_settings))
    return gemini_env(fake_gemini, gemini_settings.data_dir, collection="tiny-corpus")


def session_of(stderr: str) -> str:
    match = re.search(r"--session (\S+)", stderr)
    assert match, stderr
    return match.group(1)


def test_a_forced_model_is_labelled_by_its_name_as_chosen_not_as_flash(
    env: dict[str, str], gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    pro = gemini_settings.pro_model
    done = run("rag", "ask", QUESTION, "--model", pro, env=env)
    assert done.returncode == 0, done.stderr
    assert f"Route: chosen · {pro} · model chosen by the caller" in done.stdout
    assert [r.model for r in fake_gemini.calls("streamGenerateContent")] == [pro]


def test_each_process_is_its_own_session_and_session_continues_one(
    env: dict[str, str], gemini_settings: Settings
) -> None:
    first = run("rag", "ask", QUESTION, env=env)
    second = run("rag", "ask", QUESTION, env=env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    one, two = session_of(first.stderr), session_of(second.stderr)
    assert one != two and one.startswith("cli-")
    again = run("rag", "ask", "And how many sick days?", "--session", one, env=env)
    assert again.returncode == 0 and session_of(again.stderr) == one
    report = json.loads(run("rag", "costs", "--json", env=env).stdout)
    assert {name: s["answers"] for name, s in report["sessions"].items()} == {one: 2, two: 1}


def test_a_budget_holds_across_answers_of_one_continued_session(env: dict[str, str]) -> None:
    refused = run("rag", "ask", QUESTION, env={**env, "GEMRAG_SESSION_BUDGET_USD": "0"})
    estimate = float(re.search(r"would cost about \$(\d+\.\d+)", refused.stderr).group(1))  # type: ignore[union-attr]
    first = run("rag", "ask", QUESTION, env=env)
    session = session_of(first.stderr)
    spent = json.loads(run("rag", "costs", "--json", "--session", session, env=env).stdout)["total"]["cost_usd"]
    assert spent > 0
    # One answer fits, not two; uncached, since a cached answer is served whatever the budget.
    tight = {**env, "GEMRAG_SESSION_BUDGET_USD": repr(estimate + spent / 2), "GEMRAG_ANSWER_CACHE": "false"}
    fresh = run("rag", "ask", QUESTION, env=tight)
    assert fresh.returncode == 0, fresh.stderr  # a new process: a new session, a fresh budget
    continued = run("rag", "ask", QUESTION, "--session", session, env=tight)
    assert continued.returncode != 0 and "session budget would be exceeded" in continued.stderr


def test_a_429_on_answering_advises_about_answering_not_embedding(
    env: dict[str, str], fake_gemini: FakeGemini
) -> None:
    fake_gemini.inject(Fault.rate_limited("0s"), times=None, method="streamGenerateContent")
    done = run("rag", "ask", QUESTION, env={**env, "GEMRAG_MAX_ATTEMPTS": "2"})
    assert done.returncode != 0 and "quota exhausted" in done.stderr
    assert "embed_concurrency" not in done.stderr
    assert "ui_concurrency" in done.stderr and "Traceback" not in done.stderr


def test_thinking_cached_tokens_and_the_implicit_cache_saving_per_answer_and_session(
    env: dict[str, str], fake_gemini: FakeGemini
) -> None:
    fake_gemini.implicit_cache(min_tokens=50)
    uncached = {**env, "GEMRAG_ANSWER_CACHE": "false"}  # so the second answer reaches the model
    first = run("rag", "ask", QUESTION, env=uncached)
    second = run("rag", "ask", QUESTION, "--session", session_of(first.stderr), env=uncached)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "thinking tokens" in first.stdout and "cached)" not in first.stdout
    assert re.search(r"Usage: [\d,]+ prompt \([\d,]+ cached\)", second.stdout)
    assert re.search(r"Cost: \$[\d.]+ · implicit cache saved \$0\.\d+", second.stdout)
    assert re.search(r"2 answers, \$[\d.]+, implicit cache saved \$0\.\d+", second.stderr)


def test_a_timed_out_gemini_rerank_is_in_the_route_line_and_in_the_sessions_costs(
    env: dict[str, str], gemini_settings: Settings, fake_gemini: FakeGemini
) -> None:
    """The walkthrough: with `GEMRAG_RERANK=gemini` and Flash-Lite too slow, the answer said
    nothing of the local order it fell back to, and `rag costs` missed the call Google billed."""
    lite = gemini_settings.lite_model
    fake_gemini.inject(Fault.slow(3), times=None, method="generateContent")
    done = run("rag", "ask", QUESTION, env={**env, "GEMRAG_RERANK": "gemini", "GEMRAG_RERANK_TIMEOUT_S": "1"})
    assert done.returncode == 0, done.stderr
    route = next(line for line in done.stdout.splitlines() if line.startswith("Route: "))
    assert "the Gemini reranking failed (no answer before the request timeout), so the local order was used" in route
    report = json.loads(run("rag", "costs", "--json", "--session", session_of(done.stderr), env=env).stdout)
    assert report["models"][lite]["calls"] == 1 and report["models"][lite]["cost_usd"] > 0


def test_a_model_the_api_refuses_is_refused_with_one_line_naming_the_answer_models(
    env: dict[str, str], fake_gemini: FakeGemini
) -> None:
    """`--model foo` answered, routed as chosen and charged $0; an embedding model answered at
    the embedding price; a retired one met a raw 404. The API refused all three (422)."""
    models = "the answer models (gemini-3.8-flash, gemini-3.1-pro-preview)"
    for model, why in [("foo", f"'foo' is not one of {models}."),
                       ("gemini-embedding-001", f"'gemini-embedding-001' is not one of {models}.")]:
        done = run("rag", "ask", QUESTION, "--model", model, env=env)
        assert (done.returncode, done.stderr, done.stdout) == (2, f"error: --model: {why}\n", "")
    assert fake_gemini.calls("streamGenerateContent") == []
    assert json.loads(run("rag", "costs", "--json", env=env).stdout)["models"] == {}


def test_a_retired_model_is_replaced_with_a_note_on_its_route_or_refused_as_on_retired_says(
    env: dict[str, str], fake_gemini: FakeGemini
) -> None:
    """By today's answer model of its role, as a configured retired model is: --model
    gemini-2.5-flash was refused while flash_model = "gemini-2.5-flash" was replaced."""
    for retired, today in (("gemini-2.5-pro", "gemini-3.1-pro-preview"), ("gemini-2.5-flash", "gemini-3.8-flash")):
        done = run("rag", "ask", QUESTION, "--model", retired, "--k", "3", env=env)
        assert done.returncode == 0, done.stderr
        assert (f"Route: chosen · {today} · model chosen by the caller; "
                f"{retired} is retired since 2026-12-01; {today} answered") in done.stdout
        assert fake_gemini.calls("streamGenerateContent")[-1].model == today
    refused = run("rag", "ask", QUESTION, "--model", "gemini-2.5-pro", env={**env, "GEMRAG_ON_RETIRED": "fail"})
    assert refused.returncode == 2 and refused.stderr == (
        'error: --model: gemini-2.5-pro is retired since 2026-12-01; its replacement is gemini-3.1-pro-preview '
        '(on_retired = "fail").\n')


def test_a_cached_follow_up_in_chat_shows_what_its_rewrite_cost_so_the_turns_add_up(
    env: dict[str, str], fake_gemini: FakeGemini
) -> None:
    """A follow-up served from the answer cache said "Cost: $0.000000" while its rewrite by
    Flash-Lite was paid and in the ledger: the turns did not add up to the session. The third
    turn is rewritten as asked, so it is served the first turn's answer (asked alone)."""
    fake_gemini.responder = rewrites_as_asked
    done = run("rag", "chat", env=env, stdin=f"{QUESTION}\nand for part-time staff?\n{QUESTION}\nexit\n")
    assert done.returncode == 0, done.stderr
    costs = [float(c) for c in re.findall(r"^Cost: \$([\d.]+)", done.stdout, re.MULTILINE)]
    cached = re.findall(r"^Cost: .*the answer came from the cache, saving \$[\d.]+$", done.stdout, re.MULTILINE)
    assert len(costs) == 3 and len(cached) == 1 and costs[2] > 0  # the third turn: rewritten, then a cache hit
    total = float(re.search(r"3 answers, \$([\d.]+)", done.stderr).group(1))  # type: ignore[union-attr]
    assert sum(costs) == pytest.approx(total, abs=3e-6)  # each printed to the micro-dollar


def test_a_budget_alert_waits_for_the_streamed_answer_to_end_and_has_its_own_line(
    env: dict[str, str], fake_gemini: FakeGemini
) -> None:
    """The alert, raised when the answer's cost is settled, was printed right after its last
    word on a terminal: "... per year. [1]budget alert: the deployment has spent ..."."""
    fake_gemini.reply("Employees receive 25 days of paid vacation per year. [1]")
    alerting = {**env, "GEMRAG_DAILY_BUDGET_USD": "0.02", "GEMRAG_BUDGET_ALERT_AT": "[0.01]"}
    done = subprocess.run([sys.executable, "-m", "rag", "ask", QUESTION], env=alerting, text=True, timeout=300,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # one stream, as a terminal shows them
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert "Employees receive 25 days of paid vacation per year. [1]" in lines
    alert = next(n for n, line in enumerate(lines) if "budget alert" in line)
    assert lines[alert].startswith("budget alert: the deployment has spent")
    assert alert > next(n for n, line in enumerate(lines) if line.startswith("Cost: "))  # after the answer's numbers


def test_a_budget_refusal_in_chat_keeps_the_chat_open_and_ends_it_with_the_refusal_code(env: dict[str, str]) -> None:
    """The chat went on after a refused question, as it should, but then ended with 0: a
    script feeding it questions could not tell (README, Exit codes: 2 for a budget refusal)."""
    refused = run("rag", "ask", QUESTION, env={**env, "GEMRAG_SESSION_BUDGET_USD": "0"})
    estimate = float(re.search(r"would cost about \$(\d+\.\d+)", refused.stderr).group(1))  # type: ignore[union-attr]
    one_answer = {**env, "GEMRAG_SESSION_BUDGET_USD": repr(estimate * 1.02)}  # not the first and a second hold
    done = run("rag", "chat", env=one_answer, stdin=f"{QUESTION}\nWhat does error code E4711 mean?\nexit\n")
    assert done.returncode == 2, done.stderr
    assert "25 days of paid vacation" in done.stdout and done.stdout.count("you> ") == 3  # asked on after it
    assert "error: Refused before calling the model: the session budget would be exceeded" in done.stderr
    assert re.search(r"Session cli-\w+: 1 answer, \$0\.\d+", done.stderr)


def test_a_failed_ask_prints_its_session_so_what_it_spent_can_be_looked_up(
    env: dict[str, str], fake_gemini: FakeGemini
) -> None:
    fake_gemini.inject(Fault.rate_limited("0s"), times=None, method="streamGenerateContent")
    done = run("rag", "ask", QUESTION, env={**env, "GEMRAG_MAX_ATTEMPTS": "2"})
    assert done.returncode == 2 and "quota exhausted" in done.stderr
    spent = run("rag", "costs", "--json", "--session", session_of(done.stderr), env=env)
    assert spent.returncode == 0 and json.loads(spent.stdout)["total"]["calls"] >= 1  # the question's embedding


def test_an_interrupted_ask_prints_its_session(env: dict[str, str], fake_gemini: FakeGemini) -> None:
    fake_gemini.tokens_per_s = 2  # a slow answer, interrupted after its first words
    # Started as from a terminal, where Ctrl-C is heard: a test run started in the background
    # ignores SIGINT, the child inherits that, and Python then installs no handler for it
    # (CI run that way: the answer finished, exit 0, or timed out first, exit 2).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asking = subprocess.Popen([sys.executable, "-m", "rag", "ask", QUESTION], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, before)
    with asking:
        assert asking.stdout is not None and asking.stdout.read(1)
        asking.send_signal(signal.SIGINT)
        _, stderr = asking.communicate(timeout=60)
    assert asking.returncode == 130, stderr
    assert "interrupted" in stderr and session_of(stderr).startswith("cli-")
