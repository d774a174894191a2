import json
import os
import re
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag import cli
from tests.fakes.tiny_corpus import build_store

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def _run(settings, *args: str, stdin: str = "", module: str = "rag",
         collection: str = "tiny-corpus") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEMRAG_DATA_DIR": str(settings.data_dir), "GEMRAG_COLLECTION": collection}
    return subprocess.run(
        [sys.executable, "-m", module, *args], input=stdin, capture_output=True, text=True, env=env, timeout=600
    )


def cited_line(out: str, needle: str) -> str:
    """The sources line for the [n] cited right after `needle` in the answer."""
    n = re.search(re.escape(needle) + r"[^\[]*\[(\d+)\]", out).group(1)
    return next(line for line in out.splitlines() if line.startswith(f" *[{n}] "))


@pytest.mark.slow
def test_ask_streams_an_answer_with_correct_citations(settings, offline_provider):
    build_store(settings, offline_provider)
    done = _run(settings, "ask", "How many days of paid vacation do employees get?")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "25 days of paid vacation per year. [1]" in out
    assert " *[1] handbook.pdf p. 2\n" in out
    assert "Route: offline · offline-extractive" in out
    assert "prompt +" in out and "first token" in out
    assert re.search(r"Session cli-\w+: 1 answer, \$0\.000000;", done.stderr)
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_chat_keeps_history_and_rewrites_follow_ups(settings, offline_provider):
    build_store(settings, offline_provider)
    done = _run(settings, "chat", "--mode", "hybrid", stdin="What does error E4711 mean?\nwhere is it?\nexit\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("*[1] security.md — Building access") == 2
    assert "Searched for: where is it (error e4711 mean)?" in done.stdout


@pytest.mark.slow
def test_ask_with_a_session_follows_up_its_last_answer_as_chat_does(settings, offline_provider):
    """`--session` carried the spending and budget only: "where is it?" asked after "What does
    error E4711 mean?" was searched as asked, though the first run printed "continue it with
    --session ID". A chat continued by its session reads the same conversation."""
    build_store(settings, offline_provider)
    first = _run(settings, "ask", "What does error E4711 mean?", "--mode", "hybrid")
    session = re.search(r"continue it with --session (\S+)", first.stderr).group(1)
    alone = _run(settings, "ask", "where is it?", "--mode", "hybrid")
    assert "Searched for:" not in alone.stdout  # a new session has no earlier question
    follow_up = _run(settings, "ask", "where is it?", "--mode", "hybrid", "--session", session)
    assert follow_up.returncode == 0, follow_up.stderr
    assert "Searched for: where is it (error e4711 mean)?" in follow_up.stdout
    assert "*[1] security.md — Building access" in follow_up.stdout
    again = _run(settings, "ask", "What does error E4711 mean?", "--mode", "hybrid")
    other = re.search(r"continue it with --session (\S+)", again.stderr).group(1)
    chat = _run(settings, "chat", "--mode", "hybrid", "--session", other, stdin="where is it?\nexit\n")
    assert chat.returncode == 0, chat.stderr
    assert "Searched for: where is it (error e4711 mean)?" in chat.stdout


@pytest.mark.slow
def test_chat_searches_a_short_question_on_something_else_as_asked(settings, offline_provider):
    """It was searched with the previous question's words ("paid vacation days (error
    e4711 mean)?"): short was enough to count as a follow-up."""
    build_store(settings, offline_provider)
    done = _run(settings, "chat", "--mode", "hybrid", stdin="What does error E4711 mean?\npaid vacation days?\nexit\n")
    assert done.returncode == 0, done.stderr
    assert "Searched for:" not in done.stdout
    second = done.stdout.split("you> ")[2]
    assert "25 days of paid vacation per year. [1]" in second and " *[1] handbook.pdf p. 2\n" in second


@pytest.mark.slow
def test_a_blank_question_or_a_file_the_collection_lacks_is_bad_input_not_an_answer(settings, offline_provider):
    """Both came back as "the documents do not seem to answer", exit 0: the asker of a
    mistyped file name went looking in the documents instead of at the name."""
    build_store(settings, offline_provider)
    blank = _run(settings, "ask", "   ")
    assert blank.returncode == 2
    assert blank.stderr.strip() == "error: The question is empty: ask something about your documents."
    typo = _run(settings, "ask", "How many vacation days?", "--source", "handbok.pdf", "--source", "handbook.pdf")
    assert typo.returncode == 2 and "Collection 'tiny-corpus' holds no file 'handbok.pdf'" in typo.stderr
    assert "handbook.pdf'" not in typo.stderr.split("holds no file", 1)[1].split(":")[0]  # only the missing one
    named = _run(settings, "ask", "How many days of paid vacation do employees get?", "--source", "handbook.pdf")
    assert named.returncode == 0 and " *[1] handbook.pdf p. 2\n" in named.stdout


@pytest.mark.slow
def test_a_question_resting_on_a_word_no_document_holds_is_refused(settings, offline_provider):
    """"How much does the gym membership cost?" was answered with the expense rules: no
    document names a gym. "canteen" and "holiday" are not in the documents either, but
    "cafeteria" and "vacation" are, and those questions are answered."""
    build_store(settings, offline_provider)
    gym = _run(settings, "ask", "How much does the gym membership cost per month?", "--mode", "hybrid")
    assert gym.returncode == 0, gym.stderr
    assert "The documents do not seem to answer this question: none of the documents mentions gym." in gym.stdout
    canteen = _run(settings, "ask", "When does the canteen open?", "--mode", "hybrid")
    assert "The cafeteria opens at 8:00 and closes at 15:00 on weekdays. [1]" in canteen.stdout
    holiday = _run(settings, "ask", "How many days of holiday do employees get per year?", "--mode", "hybrid")
    assert "Employees receive 25 days of paid vacation per year. [1]" in holiday.stdout


@pytest.mark.slow
def test_an_ordinary_word_no_document_holds_is_not_a_reason_to_refuse(settings, offline_provider, tmp_path):
    """A small handbook never says "happen": "What happens to hotel stays...?" was refused
    as if it asked about something the documents lack. A word among the commonest English
    words is how a question is phrased, not what it is about."""
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "handbook.md").write_text(
        "# Team handbook\n\n## Expenses\n\nTravel expenses are reimbursed within 14 days of submitting the "
        "receipt in the expense tool.\nHotel stays above 180 euros per night need written approval from the "
        "finance team.\n")
    ingest_paths([folder], settings, offline_provider, collection="handbook")
    done = _run(settings, "ask", "What happens to hotel stays and travel expenses?", collection="handbook")
    assert done.returncode == 0, done.stderr
    assert "Hotel stays above 180 euros per night need written approval from the finance team." in done.stdout
    gym = _run(settings, "ask", "How much does the gym membership cost per month?", collection="handbook")
    assert "none of the documents mentions gym." in gym.stdout  # a rarer word still is


@pytest.mark.slow
def test_a_yes_no_question_on_what_no_passage_says_is_refused_before_the_closest_quotes(
        settings, offline_provider, tmp_path):
    """"Does the garage have chargers for electric cars?" of a handbook whose garage section
    never speaks of chargers was answered with the garage's spaces and opening hours, as if
    they said yes. The reply now says the passages never mention chargers, then quotes them;
    "Can I park a bicycle in the garage?" is answered as before. (Another document speaks of
    laptop chargers: a word no document holds is refused outright, without quotes.)"""
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "handbook.md").write_text(
        "# Team handbook\n\n## Parking\n\nThe garage under building B has 120 spaces for staff cars and 40 "
        "for bicycles.\nParking costs 3 euros per day, deducted from salary monthly.\n")
    (folder / "it.md").write_text("# IT desk\n\nLost laptop chargers are replaced by the IT desk on floor 2.\n")
    ingest_paths([folder], settings, offline_provider, collection="handbook")
    chargers = _run(settings, "ask", "Does the garage have chargers for electric cars?", "--source", "handbook.md",
                    collection="handbook")
    assert chargers.returncode == 0, chargers.stderr
    assert ("The documents do not seem to answer this question: the passages found never mention chargers. "
            "The closest they come:") in chargers.stdout
    assert "The garage under building B has 120 spaces for staff cars and 40 for bicycles. [1]" in chargers.stdout
    bicycle = _run(settings, "ask", "Can I park a bicycle in the garage?", collection="handbook")
    assert "Based on your documents:" in bicycle.stdout and "40 for bicycles. [1]" in bicycle.stdout


@pytest.mark.slow
def test_a_documents_control_characters_reach_the_terminal_written_out(settings, offline_provider, tmp_path):
    """A review's repro: a document's escape sequences, quoted into the answer, were written
    to the terminal as they were, so a file could recolour it, retitle it ("\x1b]0;...\x07")
    or, where OSC 52 is allowed, set the clipboard."""
    folder = tmp_path / "colony"
    folder.mkdir()
    (folder / "esc.md").write_text("# Penguins\n\nThe penguin colony size is \x1b[31mRED\x1b[0m 500 birds."
                                   "\x1b]0;TITLEPWNED\x07 More\x08\x08 here.\n")
    ingest_paths([folder], settings, offline_provider, collection="colony")
    done = _run(settings, "ask", "how big is the penguin colony?", collection="colony")
    assert done.returncode == 0, done.stderr
    assert "colony size is \\x1b[31mRED\\x1b[0m 500 birds.\\x1b]0;TITLEPWNED\\x07 More\\x08" in done.stdout
    assert not any(c in done.stdout for c in "\x1b\x07\x08")


@pytest.mark.slow
def test_an_offline_answer_quotes_a_run_of_commands_with_its_lines_and_checks_it(
        settings, offline_provider, tmp_path):
    """A reply quoted "git add . git commit -m ..." as one command on one line; it now shows
    the block's lines (and its language, for highlighting), the citation after them, and the
    check finds the quote in its source."""
    folder = tmp_path / "guide"
    folder.mkdir()
    (folder / "committing.md").write_text(
        "# Committing\n\nTo record your changes in the repository, run these commands:\n\n```sh\ngit add .\n"
        "git commit -m \"first commit\"\n```\n\nA commit is a snapshot of the files you added.\n")
    ingest_paths([folder], settings, offline_provider, collection="guide")
    done = _run(settings, "ask", "How do I record my changes in the repository?", collection="guide")
    assert done.returncode == 0, done.stderr
    assert ("- To record your changes in the repository, run these commands:\n  ```sh\n  git add .\n"
            "  git commit -m \"first commit\"\n  ```\n  [1]\n") in done.stdout
    assert "Check these sentences" not in done.stdout  # nothing flagged: no code line read as a claim


@pytest.mark.slow
def test_empty_collection_is_a_message_not_a_traceback(settings):
    """The message says where it looked, so a mistyped name or another data directory shows."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    done = _run(settings, "ask", "anything", "--collection", "nothing-here")
    assert done.returncode == 2  # refused: bad input (README: exit codes)
    assert done.stderr.strip() == (
        f"error: No collection 'nothing-here' in {settings.data_dir.resolve()} (nothing has been ingested there): "
        "run python -m ingest PATH --collection nothing-here, or point GEMRAG_DATA_DIR (--data-dir) at the folder "
        "you ingested into."
    )
    elsewhere = settings.data_dir / "elsewhere"
    moved = _run(settings, "ask", "anything", "--data-dir", str(elsewhere))
    assert moved.returncode == 2 and f"in {elsewhere.resolve()} (no such folder)" in moved.stderr
    assert not elsewhere.exists()  # a mistyped --data-dir: nothing created just to say so (no ledger, no cache)


def test_a_chroma_server_that_cannot_be_reached_is_a_refusal_naming_chroma_url(settings, tmp_path):
    """It was "error: unexpected ValueError: Could not connect to a Chroma server" and exit 3
    (a bug), from `rag ask` and `python -m ingest` alike, with nothing saying which setting
    points there; a store that cannot be reached is exit 2 (README: exit codes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    (tmp_path / "note.md").write_text("# Note\n\nThe canteen opens at nine.\n")
    env = {**os.environ, "GEMRAG_DATA_DIR": str(settings.data_dir), "CHROMA_URL": f"http://admin:pw1234@127.0.0.1:{dead}"}
    for argv in (["rag", "ask", "When does the canteen open?"], ["ingest", str(tmp_path)]):
        done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 2, done.stderr
        assert f"Cannot reach the Chroma server at 127.0.0.1:{dead} (CHROMA_URL)" in done.stderr
        assert "pw1234" not in done.stderr and "unexpected" not in done.stderr and "Traceback" not in done.stderr


def test_a_question_that_is_not_utf8_is_bad_input_and_chat_goes_on(settings, offline_provider):
    """Typed in a Latin-1 terminal, "café" reached the answer cache's hash as an undecodable
    byte: "error: unexpected UnicodeEncodeError ... surrogates not allowed", exit 3, and
    `rag chat` ended on it."""
    build_store(settings, offline_provider)
    env = {**os.environ, "GEMRAG_DATA_DIR": str(settings.data_dir), "GEMRAG_COLLECTION": "tiny-corpus"}
    said = "error: The question is not UTF-8 text: byte 0xe9 after 'caf' is no character;"
    asked = subprocess.run([sys.executable, "-m", "rag", "ask", b"caf\xe9 vacation days?"], capture_output=True,
                           env=env, timeout=600)
    assert asked.returncode == 2 and said in asked.stderr.decode(), asked.stderr
    chat = subprocess.run([sys.executable, "-m", "rag", "chat"], capture_output=True, env=env, timeout=600,
                          input=b"caf\xe9 vacation days?\nHow many days of paid vacation do employees get?\nexit\n")
    assert chat.returncode == 2 and said in chat.stderr.decode(), chat.stderr
    assert "25 days of paid vacation per year" in chat.stdout.decode()  # the next question is answered
    assert b"Traceback" not in asked.stderr + chat.stderr


def test_a_source_named_in_bytes_that_are_not_utf8_is_bad_input_with_its_stored_name(
        settings, offline_provider, capsys):
    """`--source "$(printf 'caf\\xe9.txt')"` reached Chroma's filter: "unexpected
    InvalidArgumentError: Invalid where clause", exit 3. Ingest stores such a name with the
    byte written out, and the refusal says so."""
    build_store(settings, offline_provider)
    argv = ["ask", "What is the soup of the day?", "--source", "caf\udce9.txt", "--data-dir", str(settings.data_dir),
            "--collection", "tiny-corpus"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: A source's name is not UTF-8 text:") and err.rstrip().endswith("'caf\\xe9.txt'.")


def test_a_data_dir_that_is_a_file_is_bad_input_named_in_one_line(capsys, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert cli.main(["ask", "anything", "--data-dir", str(taken)]) == 2  # not 3: the user's to fix
    err = capsys.readouterr().err
    assert err.startswith(f"error: data dir {taken} is a file, not a folder;") and len(err.splitlines()) == 1


@pytest.mark.parametrize("k", ["0", "1000", "abc", "2.5"])
def test_bad_arguments_are_refused_by_the_parser(capsys, k):
    """--k is bounded as the API bounds k: --k 1000 sent a prompt of 127 passages. A word was
    "invalid _top_k value: 'abc'", the function's name, under the whole usage block."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["ask", "q", "--k", k])
    assert exit_.value.code == 2
    said = f"python -m rag ask: error: argument --k: {k!r} is not a whole number from 1 to 50\n"
    assert capsys.readouterr().err == said
    assert cli.build_parser().parse_args(["ask", "q", "--k", "50"]).k == 50


@pytest.mark.parametrize(("argv", "said"), [
    (["ask"], "python -m rag ask: error: the following arguments are required: question"),
    (["chat", "--mode", "fuzzy"], "python -m rag chat: error: argument --mode: invalid choice: 'fuzzy' (choose from "),
    (["frobnicate"], "python -m rag: error: argument command: invalid choice: 'frobnicate' (choose from "),
    (["costs", "--sesion", "x"], "python -m rag costs: error: unrecognized arguments: --sesion x"),
    (["models", "--yaml"], "python -m rag models: error: unrecognized arguments: --yaml"),
    # A session id is the API's: "a b" printed a command to copy that failed, "" began a new one.
    (["ask", "q", "--session", "a b"], "python -m rag ask: error: argument --session: a session id is 1-128 "
                                       "letters, digits, '.', '_' or '-', not 'a b'"),
    (["chat", "--session", ""], "python -m rag chat: error: argument --session: a session id is 1-128 letters"),
    (["ask", "q", "--session", "x\ny"], "python -m rag ask: error: argument --session: a session id is 1-128"),
    (["ask", "q", "--session", "s" * 129], "python -m rag ask: error: argument --session: a session id is 1-128"),
    (["experiments"], "python -m rag experiments: error: the following arguments are required: command"),
])
def test_a_usage_error_is_one_line_and_exit_2_in_every_subcommand(capsys, argv, said):
    """README: "anything else is one line and exit 2"; argparse printed its usage block first.
    (How a choice list is quoted depends on the Python version.)"""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(said) and len(err.splitlines()) == 1


def test_options_map_to_ask_options():
    args = cli.build_parser().parse_args(
        ["ask", "q", "--collection", "c1", "--k", "3", "--mode", "bm25", "--mmr", "--source", "a.md",
         "--source", "b.md", "--rerank", "none"]
    )
    options = cli.options_from(args)
    assert (options.collection, options.top_k, options.mode, options.mmr) == ("c1", 3, "bm25", True)
    assert options.rerank == "none" and cli.options_from(cli.build_parser().parse_args(["ask", "q"])).rerank is None
    assert options.sources == ("a.md", "b.md") and options.model is None


def test_costs_is_dispatched_to_the_reports_module(monkeypatch):
    seen = []
    fake = types.ModuleType("rag.reports")
    fake.main = lambda argv: seen.append(argv) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rag.reports", fake)
    assert cli.main(["costs", "--session", "s1"]) == 3
    assert seen == [["--session", "s1"]]


@pytest.mark.slow
def test_costs_of_an_unknown_session_print_the_zeros_and_say_so_once_on_stderr(settings):
    """The note was printed twice, above the table on stdout and again on stderr: a script
    reading stdout got it in the table, a person saw it twice."""
    done = _run(settings, "costs", "--session", "nobody")
    note = "no calls recorded for session 'nobody': not used yet, or not this id"
    assert done.returncode == 1  # README, Exit codes: "a session with no calls"
    assert done.stderr == note + "\n"
    assert note not in done.stdout and done.stdout.startswith("Per session (session nobody)")
    assert re.search(r"│ nobody +│ +0 │ +0 │ +0% │", done.stdout)


@pytest.mark.slow
def test_ask_over_the_sample_corpus_cites_the_right_file_and_page(settings):
    """The issue's offline acceptance check: `python -m ingest corpus/` then `python -m rag ask`."""
    ingested = _run(settings, str(CORPUS), "--quiet", module="ingest", collection="corpus")
    assert ingested.returncode == 0, ingested.stderr

    pdf = _run(settings, "ask", "How long did a batch job of 2,000 Flash requests take in our runs?",
               collection="corpus")
    assert pdf.returncode == 0, pdf.stderr
    assert re.fullmatch(r" \*\[\d\] pdf/batching\.pdf p\. 1", cited_line(pdf.stdout, "14 minutes"))

    markdown = _run(settings, "ask", "When rotating an API key, how long should you watch traffic before "
                    "deleting the old key?", collection="corpus")
    assert markdown.returncode == 0, markdown.stderr
    assert re.search(r"watch for 24\s+hours", markdown.stdout)
    assert cited_line(markdown.stdout, "delete the old key").endswith("security.md — Security: keys, data and "
                                                                      "prompt injection > API keys > Rotation")

    # A question as a new user types it: the advice is in retries.md and quotas.md, not in the
    # chunks that merely share "application", "Gemini API" and "HTTP" with it.
    rate_limited = _run(settings, "ask", "What should an application do when the Gemini API returns HTTP 429?",
                        collection="corpus")
    assert rate_limited.returncode == 0, rate_limited.stderr
    assert "Retry on 408, 429, 500" in rate_limited.stdout
    assert re.fullmatch(r" \*\[\d\] (retries|quotas)\.md — .*", cited_line(rate_limited.stdout, "Retry on 408, 429"))
    # The same with the product's name mistyped: read as "Gemini", not refused as a name the
    # documents never mention.
    mistyped = _run(settings, "ask", "What should an application do when the Gemni API returns HTTP 429?",
                    collection="corpus")
    assert mistyped.returncode == 0, mistyped.stderr
    assert "never mention" not in mistyped.stdout
    assert "Retry on 408, 429, 500" in mistyped.stdout

    # The fact is in the passage ranked first: the reply quotes it (the rank prior), where the
    # answerer before it quoted better-scored sentences of other passages instead.
    leaked = _run(settings, "ask", "what should I do first if our API key shows up on GitHub?", collection="corpus")
    assert leaked.returncode == 0, leaked.stderr
    assert "delete the key" in leaked.stdout

    # The README's chat example: the table of limits names "RPM" only, which quotas.md defines
    # as "requests per minute" (rag.acronyms); keyword search never found the table.
    limits = _run(settings, "ask", "How many requests per minute does the free tier allow for Flash?",
                  collection="corpus")
    assert limits.returncode == 0, limits.stderr
    assert cited_line(limits.stdout, "gemini-2.5-flash; RPM: 10").endswith("Free tier limits (as of 2025-09)")

    # The price sentence wraps across two PDF lines and its chunk starts at the second one
    # ("2.5 Flash and Flash-Lite, ..."): the quote starts where the sentence does (rag.sentences).
    stored = _run(settings, "ask", "what does cached input cost on Flash?", collection="corpus")
    assert stored.returncode == 0, stored.stderr
    price = (r"Explicit caches are billed per million tokens per hour of storage \(as of 2025-09\): "
             r"\$1\.00 for Gemini\s+2\.5 Flash and Flash-Lite, and \$4\.50 for Gemini 2\.5 Pro\.")
    assert re.search(price, stored.stdout), stored.stdout
    assert "- 2.5 Flash and Flash-Lite" not in stored.stdout


@pytest.mark.slow
def test_chat_ends_on_a_slash_command_as_other_chat_tools_do(settings, offline_provider):
    """"/quit" was asked as a question ("Searched for: /quit ...")."""
    build_store(settings, offline_provider)
    done = _run(settings, "chat", stdin="/quit\nHow many days of paid vacation do employees get?\n")
    assert done.returncode == 0, done.stderr
    assert "Searched for" not in done.stdout and "25 days" not in done.stdout


@pytest.mark.slow
def test_the_session_line_names_the_data_dir_rag_costs_must_read(settings, offline_provider, tmp_path):
    """Asked with --data-dir, the session line sent the user to `rag costs --session ID`,
    which read another data dir's ledger and showed all zeros."""
    build_store(settings, offline_provider)
    env = {**os.environ, "GEMRAG_DATA_DIR": str(tmp_path / "default"), "GEMRAG_COLLECTION": "tiny-corpus"}
    asked = subprocess.run([sys.executable, "-m", "rag", "ask", "How many days of paid vacation do employees get?",
                            "--data-dir", str(settings.data_dir)], capture_output=True, text=True, env=env, timeout=600)
    assert asked.returncode == 0, asked.stderr
    hint = re.search(r"(python -m rag costs --session cli-\w+ --data-dir \S+) shows its spending", asked.stderr)
    assert hint, asked.stderr
    costs = subprocess.run([sys.executable, *hint.group(1).split()[1:], "--json"], capture_output=True, text=True,
                           env=env, timeout=600)
    assert costs.returncode == 0 and json.loads(costs.stdout)["total"]["answers"] == 1, costs.stderr


def test_ctrl_c_during_the_first_offline_answer_still_prints_the_session(settings, offline_provider, monkeypatch,
                                                                         capsys):
    """Interrupted before its first answer was recorded (offline nothing is spent), `rag ask`
    printed only "interrupted", though the README says the session is printed however it ends."""
    build_store(settings, offline_provider)

    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "ask", interrupted)
    argv = ["ask", "How many days of paid vacation do employees get?", "--data-dir", str(settings.data_dir),
            "--collection", "tiny-corpus"]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert re.search(r"Session cli-\w+: 0 answers, \$0\.000000;", err) and err.rstrip().endswith("interrupted")


@pytest.mark.parametrize("collection", ["nope", "bad name"])
def test_chat_refuses_a_collection_it_cannot_search_before_its_prompt(settings, offline_provider, capsys, collection):
    """`rag chat --collection nope` opened its prompt, then refused every question with the
    same error and ended with 2."""
    build_store(settings, offline_provider)
    assert cli.main(["chat", "--collection", collection, "--data-dir", str(settings.data_dir)]) == 2
    out, err = capsys.readouterr()
    assert "Ask about your documents" not in out
    assert err.startswith(f"error: No collection {collection!r}") or "is not allowed" in err.splitlines()[0]


@pytest.mark.slow
def test_chat_refuses_a_misspelt_source_before_the_prompt_opens(settings, offline_provider):
    """`rag chat --source nosuch.md` opened the prompt, then refused every question asked."""
    build_store(settings, offline_provider)
    done = _run(settings, "chat", "--source", "nosuch.md", stdin="How many days of paid vacation?\nexit\n")
    assert done.returncode == 2 and "you>" not in done.stdout, done.stdout
    assert done.stderr.startswith("error: Collection 'tiny-corpus' holds no file 'nosuch.md'"), done.stderr
