import re
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.cli import main
from rag.errors import QuotaExhausted
from rag.providers.minilm import DIM, MODEL_ID
from rag.settings import Settings
from rag.store import Store
from tests.fakes.corpus import write_bad_inputs
from tests.ingest.fake_embedder import FakeEmbedder

REPO = Path(__file__).resolve().parents[2]


def _run(capsys, argv, provider):
    code = main([str(a) for a in argv], embedder=provider)
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_prints_a_summary_and_lists_skipped_files(capsys, corpus, tmp_path, fake):
    code, out, _ = _run(capsys, [corpus.root, "--data-dir", tmp_path / "d", "-q"], fake)
    assert code == 0
    assert re.search(r"files added +│ +4 ", out) and re.search(r"files skipped +│ +1 ", out)
    assert "skipped diagram.svg: unknown type '.svg'" in out


def test_a_data_dir_that_cannot_be_made_is_bad_input_named_in_one_line(capsys, corpus, tmp_path, fake):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    for data in (taken, taken / "data"):
        code, out, err = _run(capsys, [corpus.root, "--data-dir", data, "-q"], fake)
        assert (code, out) == (2, "")  # refused, as a configuration error (README: exit codes), not a bug (3)
        assert err.startswith(f"error: data dir {data} ") and f"{taken} is a file, not a folder" in err
        assert len(err.strip().splitlines()) == 1


def test_an_empty_data_dir_option_is_refused_before_anything_is_written(capsys, corpus, tmp_path, fake,
                                                                        monkeypatch):
    """`--data-dir "$UNSET"` was the current folder: chroma/, the ledger and the manifest
    were written into it (CLI walkthrough)."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises(SystemExit) as refused:
        main([str(corpus.root), "--data-dir", "", "-q"], embedder=fake)
    assert refused.value.code == 2 and list(here.iterdir()) == []
    assert "argument --data-dir: an empty path: name a folder, or leave the option out" in capsys.readouterr().err


def test_a_path_that_does_not_exist_is_bad_input_unless_others_do_or_it_is_pruned(capsys, corpus, tmp_path, fake):
    data = tmp_path / "d"
    code, out, err = _run(capsys, [tmp_path / "dcos", "--data-dir", data, "-q"], fake)
    assert (code, out) == (2, "")
    assert err.strip() == f"error: no such file or folder: {tmp_path / 'dcos'}; nothing was ingested"
    assert not data.exists()  # refused before a collection or a manifest is opened
    code, out, _ = _run(capsys, [corpus.root, tmp_path / "dcos", "--data-dir", data, "-q"], fake)
    assert code == 1 and "no such file or folder" in out and re.search(r"files added +│ +4 ", out)
    corpus.path("notes.txt").unlink()
    code, out, _ = _run(capsys, [tmp_path / "dcos", corpus.root, "--data-dir", data, "--prune", "-q"], fake)
    assert code == 1 and re.search(r"files removed +│ +1 ", out)


def test_a_fifo_or_a_symlink_loop_named_as_path_is_named_with_what_it_is(capsys, corpus, tmp_path, fake):
    """Named as PATH, a FIFO was reported as "failed ./: cannot read folder: Not a directory"
    and a symlink loop as "no such file or folder"; inside a folder both were named right."""
    import os

    os.mkfifo(tmp_path / "pipe.md")
    code, out, _ = _run(capsys, [tmp_path / "pipe.md", "--data-dir", tmp_path / "d", "-q"], fake)
    assert code == 1 and "failed  pipe.md: not a regular file (FIFO)" in out, out
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    code, _, err = _run(capsys, [tmp_path / "a", "--data-dir", tmp_path / "d", "-q"], fake)
    assert code == 2 and err.startswith("error: a broken symlink or a symlink loop: "), err


def test_failures_are_listed_by_name_and_exit_1(capsys, corpus, tmp_path, fake):
    write_bad_inputs(corpus.root / "bad")
    code, out, _ = _run(capsys, [corpus.root, "--data-dir", tmp_path / "d", "-q"], fake)
    assert code == 1
    assert "failed  bad/encrypted.pdf: encrypted PDF: it needs a password" in out
    assert "failed  bad/binary.txt: binary content" in out
    assert "Traceback" not in out


def test_mixed_embedders_exit_2_with_the_stores_message(capsys, corpus, tmp_path, fake):
    data = tmp_path / "d"
    assert _run(capsys, [corpus.root, "--data-dir", data, "-q"], fake)[0] == 0
    code, _, err = _run(capsys, [corpus.root, "--data-dir", data, "-q"], FakeEmbedder("other:hash:8"))
    assert code == 2
    assert "was built with fake:hash:8" in err and "--rebuild" in err and "Traceback" not in err


def test_a_stopped_run_exits_2_and_says_what_to_do(capsys, corpus, tmp_path):
    stopping = FakeEmbedder(fail_after=0, error=QuotaExhausted("Embedding quota used up for today."))
    code, out, _ = _run(capsys, [corpus.root, "--data-dir", tmp_path / "d", "-q"], stopping)
    assert code == 2
    assert "Stopped: Embedding quota used up for today. Files ingested so far are kept" in out


def test_dry_run_and_collection_options(capsys, corpus, tmp_path, fake):
    data = tmp_path / "d"
    code, out, _ = _run(capsys, [corpus.root, "--data-dir", data, "--collection", "notes", "--dry-run",
                                 "--include", "*.md"], fake)
    assert code == 0 and "Dry run: would ingest into collection 'notes'" in out
    assert re.search(r"files added +│ +1 ", out)
    assert "nothing was written" in out and not data.exists()
    assert "would be added guide.md" in out  # the files are named, not only counted


@pytest.mark.parametrize("name", ["bad name", ""])
def test_a_bad_collection_name_is_refused_in_a_dry_run_too(capsys, corpus, tmp_path, fake, name):
    """A dry run listed what it "would add" to 'bad name' and exited 0, where the real run
    refuses the name; an empty name silently took the default collection."""
    data = tmp_path / "d"
    code, _, err = _run(capsys, [corpus.root, "--data-dir", data, "--collection", name, "--dry-run"], fake)
    assert code == 2 and err.startswith(f"error: Collection name {name!r} is not allowed") and not data.exists()


def test_a_dry_run_names_what_it_would_remove_and_the_collections_version(capsys, corpus, tmp_path, fake):
    """It said "corpus version 0" of a collection at version 1, and "files removed 1"
    without saying which; a real --prune did not name the file either."""
    data = tmp_path / "d"
    assert _run(capsys, [corpus.root, "--data-dir", data, "-q"], fake)[0] == 0
    corpus.path("notes.txt").unlink()
    code, out, _ = _run(capsys, [corpus.root, "--data-dir", data, "--prune", "--dry-run", "-q"], fake)
    assert code == 0 and "corpus version 1." in out and "would be removed notes.txt" in out
    code, out, _ = _run(capsys, [corpus.root, "--data-dir", data, "--prune", "-q"], fake)
    assert code == 0 and "corpus version 2." in out and "removed notes.txt" in out


@pytest.mark.parametrize(("argv", "said"), [
    (["--prnue", "docs"], "unrecognized arguments: --prnue"),
    (["-q"], "give at least one PATH (or --resume to collect pending batch jobs)"),
    (["docs", "--no-wait"], "--no-wait goes with --batch or --resume"),
    (["docs", "--backend", "pinecone"], "argument --backend: invalid choice: 'pinecone' (choose from "),
    # `python -m ingest "$DOCS"` with DOCS unset ingested the folder the shell stood in (a review's repro)
    ([""], "argument PATH: an empty PATH (an unset shell variable?); name a file or folder"),
    (["docs", " "], "argument PATH: an empty PATH (an unset shell variable?); name a file or folder"),
])
def test_a_usage_error_is_one_line_and_exit_2(capsys, argv, said):
    """The README's one line and exit 2: argparse printed its usage block first, a dozen lines.
    (How a choice list is quoted depends on the Python version.)"""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m ingest: error: {said}") and len(err.splitlines()) == 1


def test_help_documents_prune_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--prune: files that were ingested from the same PATH before and no longer exist" in text
    assert "Exit status: 0 all well; 1 some file failed" in text


@pytest.mark.slow
def test_python_m_ingest_on_the_sample_corpus_with_no_key(tmp_path):
    data = tmp_path / "d"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GEMRAG_CONFIG": "/dev/null"}
    args = [sys.executable, "-m", "ingest", "corpus/", "--data-dir", str(data)]
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    store = Store(Settings(data_dir=data, api_key=None), f"offline:{MODEL_ID}:{DIM}")
    chunks = list(store.chunks())
    sources = {c.source for c in chunks}
    assert any(s.endswith(".md") for s in sources) and any(s.endswith(".pdf") for s in sources)
    assert all(c.page for c in chunks if c.source.endswith(".pdf"))
    again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and re.search(r"files added +│ +0 ", again.stdout)


def test_a_run_written_to_a_log_says_it_is_at_work_and_quiet_says_nothing(tmp_path):
    """stderr a pipe, as under CI, `| tee` or a container's log: the bars are not drawn, and
    nothing else was printed before the summary."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.md").write_text("# Note\n\nThe canteen opens at nine.\n")
    args = [sys.executable, "-m", "ingest", str(tmp_path / "docs"), "--data-dir", str(tmp_path / "d")]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    # Its first line at once, naming the file being read.
    assert re.search(r"^progress \d+ s: 0 of 1 files, 0 of 0 chunks so far, reading note.md$", done.stderr,
                     re.M), done.stderr
    (tmp_path / "docs" / "note.md").write_text("# Note\n\nThe canteen opens at ten.\n")
    quiet = subprocess.run([*args, "-q"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0 and "progress" not in quiet.stderr


def test_an_unchanged_rerun_loads_neither_chromadb_nor_the_model(corpus, tmp_path):
    """The CLI in a fresh process, as a user re-runs it: nothing changed, so nothing heavy
    is imported (nor google-genai, offline, nor numpy, a sixth of what such a run imported;
    nor the rate limiter's library nor the offline answerer, 60 ms of its start); the
    manifest and the files' size and mtime are all it reads."""
    data = tmp_path / "d"
    probe = (
        "import sys; from ingest.cli import main; "
        f"code = main([{str(corpus.root)!r}, '--data-dir', {str(data)!r}, '-q']); "
        "heavy = ('chromadb', 'onnxruntime', 'pypdf', 'pypdfium2', 'tokenizers', 'google.genai', 'numpy', 'limits', "
        "'rag.providers.extractive'); "
        "print(code, [m for m in heavy if m in sys.modules])"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GEMRAG_CONFIG": "/dev/null", "PYTHONPATH": str(REPO)}

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[-1]

    assert run().startswith("0 [")  # the first run loads what it needs
    assert run() == "0 []"
    corpus.path("notes.txt").write_text("Changed.\n")
    assert "'chromadb'" in run()


def test_skipped_files_are_named_twenty_per_reason_and_counted_beyond(capsys, tmp_path, fake):
    """300 .py files in a folder printed 300 "unknown type" lines on every run, burying the
    summary and the failures."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "readme.md").write_text("# Readme\n\nThe one document.\n")
    for n in range(45):
        (docs / f"mod{n:02}.py").write_text("x = 1\n")
    assert main([str(docs), "--data-dir", str(tmp_path / "d"), "-q"], embedder=fake) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("skipped mod") for line in lines) == 20
    assert "... and 25 more files skipped: unknown type '.py'" in lines


def test_ctrl_c_names_batch_jobs_only_for_a_batch_run():
    from ingest.cli import _interrupted

    assert _interrupted(["docs"]) == "interrupted: files completed so far are kept; run the same command again."
    assert "submitted batch jobs keep running" in _interrupted(["docs", "--batch"])


def test_an_include_glob_that_matches_nothing_says_so(capsys, tmp_path, fake):
    """`--include 'docs/notes/*'` (the folder's own name in the glob) matched nothing and the
    run said "Ingested", 0 files, as for an empty folder."""
    docs = tmp_path / "docs"
    (docs / "notes").mkdir(parents=True)
    (docs / "notes" / "a.md").write_text("# A\n\nAlpha.\n")
    assert main([str(docs), "--data-dir", str(tmp_path / "d"), "--include", "docs/notes/*"], embedder=fake) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no file matched --include docs/notes/*: globs are matched against each file's name relative to PATH" in out


def test_wait_waits_for_another_ingest_into_the_collection_and_says_so(tmp_path):
    """Without --wait a second run is refused at once (exit 2); with it, it waits, printing
    a line, and ingests once the other is done."""
    from ingest.pipeline import run_lock

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.md").write_text("# Note\n\nThe canteen opens at nine.\n")
    data = tmp_path / "d"
    args = [sys.executable, "-m", "ingest", str(tmp_path / "docs"), "--data-dir", str(data)]
    settings = Settings(data_dir=data, api_key=None)
    with run_lock(settings, settings.collection):
        refused = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert refused.returncode == 2 and "Another ingest into collection 'corpus' is running" in refused.stderr
        waiting = subprocess.Popen([*args, "--wait"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        assert waiting.stderr is not None
        line = waiting.stderr.readline()  # said at once, while the other run holds the collection
        assert line.startswith("waiting: another ingest into collection 'corpus' is running (0 s so far)"), line
    out, err = waiting.communicate(timeout=600)
    assert waiting.returncode == 0, err
    assert re.search(r"files added +│ +1 ", out)
