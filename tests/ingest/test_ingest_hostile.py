"""Inputs a hostile or unlucky user feeds `python -m ingest` (issue #14, items 2, 5, 6, 8),
each run as the user runs it: the CLI in its own process, with the offline embedder."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.providers.minilm import DIM, MODEL_ID, shared_minilm
from rag.settings import Settings
from rag.store import Store

REPO = Path(__file__).resolve().parents[2]
OFFLINE_ID = f"offline:{MODEL_ID}:{DIM}"


def ingest_cli(*args: object, cwd: Path | None = None, user: int | None = None) -> subprocess.CompletedProcess:
    """`python -m ingest ARGS` as a user types it; `user` runs it under that uid (root reads
    every folder, so an unreadable one needs another user)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "GEMRAG_CONFIG": os.devnull, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "ingest", *map(str, args)]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=300)


def stored(data: Path, collection: str = "corpus") -> dict[str, list[str]]:
    """Source -> its chunk texts, in order, as the store holds them (read in a child, so
    this process keeps no embedded Chroma client open across the CLI's writes)."""
    code = (
        "import json, sys; from rag.settings import Settings; from rag.store import Store\n"
        f"s = Store(Settings(data_dir={str(data)!r}, api_key=None), {OFFLINE_ID!r}, {collection!r})\n"
        "out = {}\n"
        "for c in sorted(s.chunks(), key=lambda c: (c.source, c.index)): out.setdefault(c.source, []).append(c.text)\n"
        "print(json.dumps(out))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "GEMRAG_CONFIG": os.devnull}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def manifest_sources(data: Path) -> dict[str, str]:
    with sqlite3.connect(data / "manifest.sqlite3") as db:
        return dict(db.execute("SELECT source, root FROM files"))


def corpus_version(data: Path) -> int:
    with sqlite3.connect(data / "manifest.sqlite3") as db:
        return int(db.execute("SELECT version FROM collections").fetchone()[0])


# --- #14 item 2: a file name that is not valid UTF-8 ---


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_ingested_under_a_stable_name_and_the_rest_goes_on(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "plain.md").write_text("# Plain\n\nAn ordinary file next to a badly named one.\n")
    os.mkdir(os.fsencode(root) + b"/caf\xe9 notes")  # Latin-1 names, as an old archive has them
    with open(os.fsencode(root) + b"/caf\xe9 notes/men\xfc.md", "wb") as handle:
        handle.write(b"# Menu\n\nThe cafe serves espresso until noon.\n")
    data = tmp_path / "d"

    first = ingest_cli(root, "--data-dir", data)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    name = "caf\\xe9 notes/men\\xfc.md"  # the undecodable bytes written out, stable across runs
    assert stored(data) == {
        "plain.md": ["# Plain\n\nAn ordinary file next to a badly named one."],
        name: ["# Menu\n\nThe cafe serves espresso until noon."],
    }
    again = ingest_cli(root, "--data-dir", data, "--prune")
    assert again.returncode == 0 and re.search(r"files unchanged +│ +2 ", again.stdout), again.stdout + again.stderr


@pytest.mark.slow
def test_a_folder_whose_own_name_is_not_utf8_is_ingested(tmp_path):
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9sum\xe9s"))
    root.mkdir()
    (root / "cv.md").write_text("# CV\n\nTen years of building search systems.\n")
    data = tmp_path / "d"
    done = ingest_cli(root, "--data-dir", data)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(stored(data)) == ["cv.md"]


# --- #14 item 5: chunks bounded for text without spaces ---


@pytest.mark.slow
def test_text_without_spaces_is_cut_into_chunks_the_embedder_reads_whole(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    rng = random.Random(3)
    dna = "".join(rng.choice("ACGT") for _ in range(3_000))
    thai = "ภาษาไทยไม่เว้นวรรคระหว่างคำ" * 40
    (root / "genome.txt").write_text(f"Sample 17, chromosome 2.\n\n{dna}\n")
    (root / "thai.txt").write_text(thai + "\n")
    data = tmp_path / "d"
    done = ingest_cli(root, "--data-dir", data)
    assert done.returncode == 0, done.stdout + done.stderr

    chunks = stored(data)
    profile = Settings(api_key=None).chunk_profiles["offline"]
    model = shared_minilm()
    for source in ("genome.txt", "thai.txt"):
        texts = chunks[source]
        assert len(texts) > 3, f"{source}: unspaced text was not cut"
        for text in texts:
            assert len(text) <= profile.max_chars
            assert model.count_tokens(text) <= profile.size_tokens
        assert "".join(t for t in texts if "Sample" not in t).replace("\n", "") in (dna + thai)
    # Every cut is a run the model reads as word pieces, not one unknown token: the vectors differ.
    store = Store(Settings(data_dir=data, api_key=None), OFFLINE_ID)
    genome = [c.id for c in store.chunks() if c.source == "genome.txt" and "Sample" not in c.text]
    vectors = list(store.vectors(genome).values())
    assert len({tuple(round(x, 4) for x in v) for v in vectors}) == len(vectors)


@pytest.mark.slow
def test_a_file_that_yields_an_absurd_number_of_chunks_is_reported_and_the_rest_goes_on(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "run.txt").write_text("A" * 5_000_000)
    (root / "fine.md").write_text("# Fine\n\nA normal document.\n")
    old = time.time_ns() - 10**11  # not written a moment ago: its size and mtime can be trusted
    os.utime(root / "run.txt", ns=(old, old))
    data = tmp_path / "d"
    done = ingest_cli(root, "--data-dir", data)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed  run.txt: yields more than 10,000 chunks (max_chunks_per_file)" in done.stdout
    assert list(stored(data)) == ["fine.md"]
    again = ingest_cli(root, "--data-dir", data)  # refused again without reading it
    assert again.returncode == 1, again.stdout + again.stderr
    assert "not read again: the file is unchanged since" in " ".join(again.stdout.split())


# --- #14 item 6: a second folder with the same relative names ---


@pytest.mark.slow
def test_a_second_folder_never_silently_replaces_files_of_the_same_name(tmp_path):
    a, b = tmp_path / "projA", tmp_path / "projB"
    for folder, words in ((a, "Project A ships the parser."), (b, "Project B ships the renderer.")):
        folder.mkdir()
        (folder / "README.md").write_text(f"# Readme\n\n{words}\n")
    (b / "only-b.md").write_text("# B\n\nOnly in B.\n")
    data = tmp_path / "d"
    assert ingest_cli(a, "--data-dir", data).returncode == 0

    second = ingest_cli(b, "--data-dir", data)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"failed  README.md: already ingested from {a}" in second.stdout
    assert stored(data) == {
        "README.md": ["# Readme\n\nProject A ships the parser."],
        "only-b.md": ["# B\n\nOnly in B."],
    }

    moved = tmp_path / "projA-moved"
    a.rename(moved)  # the same folder, moved: its files are the same documents
    third = ingest_cli(moved, "--data-dir", data)
    assert third.returncode == 0, third.stdout + third.stderr
    assert f"README.md: now read from {moved} ({a} no longer has it)" in third.stdout
    assert manifest_sources(data)["README.md"] == str(moved)


# --- #14 item 8: progress committed early; the version moves only with the corpus ---


def test_an_unchanged_rerun_keeps_the_corpus_version_and_a_change_bumps_it(corpus, tmp_path):
    from tests.fakes.corpus import write_bad_inputs

    write_bad_inputs(corpus.root / "bad")
    data = tmp_path / "d"
    args = [sys.executable, str(REPO / "tests/ingest/crash_run.py"), "none", "0", "before", "--",
            corpus.root, "--data-dir", data, "--prune", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run() -> int:
        done = subprocess.run(list(map(str, args)), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr  # the bad files fail every time
        return corpus_version(data)

    first = run()
    assert run() == first and run() == first
    corpus.path("notes.txt").write_text("Changed notes.\n")
    assert run() > first


def test_an_interrupted_first_run_has_committed_its_first_files(tmp_path):
    """The first commit covers the first few files (one embedding step of chunks), not the
    first `ingest_batch_chunks` (512): a run killed right after it keeps those files."""
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(60):
        body = "\n\n".join(f"Paragraph {j} of file {i} is about topic {i * 100 + j}." for j in range(40))
        (root / f"f{i:02}.md").write_text(f"# File {i}\n\n{body}\n")
    data = tmp_path / "d"
    args = [sys.executable, str(REPO / "tests/ingest/crash_run.py"), "commit", "1", "after", "--",
            root, "--data-dir", data, "-q"]
    done = subprocess.run(list(map(str, args)), env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stdout + done.stderr
    assert 2 <= len(manifest_sources(data)) <= 30  # of 60 files, about 240 chunks


# --- #14 item 8: entries that are not ingested are listed, each with its reason ---


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path sits under a private one)."""
    base = Path(tempfile.mkdtemp(prefix="gemrag-skip-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_a_file_made_unreadable_since_is_failed_and_pruned_though_its_size_and_mtime_are_the_same(shared_tmp):
    """`chmod 000` changes no mtime: the file counted as unchanged, was never read, and
    `--prune` kept it answerable, though the README says an unreadable file is removed."""
    root, data = shared_tmp / "docs", shared_tmp / "d"
    root.mkdir()
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    (root / "kept.md").write_text("# Kept\n\nThe one ordinary file.\n")
    secret = root / "secret.md"
    secret.write_text("# Secret\n\nZebras graze at noon.\n")
    hour_ago = time.time() - 3600
    for written in (root / "kept.md", secret):
        os.utime(written, (hour_ago, hour_ago))  # an mtime of this very second is not trusted: it would be read
    nobody = 65534 if os.getuid() == 0 else None  # root reads any file: the runs are another user's
    assert ingest_cli(root, "--data-dir", data, user=nobody, cwd=Path("/")).returncode == 0
    secret.chmod(0o000)
    try:
        done = ingest_cli(root, "--data-dir", data, "--prune", user=nobody, cwd=Path("/"))
    finally:
        secret.chmod(0o644)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("failed  secret.md: cannot read: Permission denied") for line in lines), done.stdout
    assert set(stored(data)) == {"kept.md"}


@pytest.mark.slow
def test_a_folder_made_unreadable_since_is_a_failure_of_the_run_not_a_crash_and_prune_keeps_its_files(shared_tmp):
    """Path.exists raises inside a folder that cannot be listed: the re-run stopped at exit 3
    ("unexpected PermissionError") before reading any other file; a PATH inside such a folder too."""
    root, data = shared_tmp / "docs", shared_tmp / "d"
    locked = root / "locked"
    locked.mkdir(parents=True)
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    (root / "kept.md").write_text("# Kept\n\nThe one ordinary file.\n")
    (locked / "inside.md").write_text("# Locked\n\nZebras graze at noon.\n")
    nobody = 65534 if os.getuid() == 0 else None
    assert ingest_cli(root, "--data-dir", data, user=nobody, cwd=Path("/")).returncode == 0
    (root / "new.md").write_text("# New\n\nAdded while the other folder was locked.\n")
    locked.chmod(0o000)
    try:
        done = ingest_cli(root, "--data-dir", data, "--prune", user=nobody, cwd=Path("/"))
        inside = ingest_cli(locked / "deeper", "--data-dir", data, "--collection", "other", user=nobody, cwd=Path("/"))
    finally:
        locked.chmod(0o755)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed  locked/: cannot read folder: Permission denied" in done.stdout.splitlines()
    assert set(stored(data)) == {"kept.md", "new.md", "locked/inside.md"}  # not known gone: kept
    assert inside.returncode == 1, inside.stdout + inside.stderr
    assert f"failed  {locked / 'deeper'}: cannot read: Permission denied" in inside.stdout.splitlines(), inside.stdout


@pytest.mark.slow
def test_a_data_dir_another_user_owns_is_named_as_not_writable_exit_2(shared_tmp):
    """Its folder writable but its files not: ingest and ask ended at exit 3 ("unexpected
    PermissionError" on the lock, "attempt to write a readonly database" from Chroma). The
    folder read-only too: the manifest was called damaged, with advice to rebuild it."""
    root, data = shared_tmp / "docs", shared_tmp / "d"
    root.mkdir()
    (root / "a.md").write_text("# Gateway\n\nThe gateway timeout is 30 seconds.\n")
    assert ingest_cli(root, "--data-dir", data).returncode == 0  # as root: its files are root's, 0644
    nobody = 65534 if os.getuid() == 0 else None
    if nobody is None:  # not root: make them read-only for this user instead
        for entry in data.rglob("*"):
            entry.chmod(entry.stat().st_mode & ~0o222)
    data.chmod(0o755)
    refused = ingest_cli(root, "--data-dir", data, user=nobody, cwd=Path("/"))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"the ingest manifest {data / 'manifest.sqlite3'} is not writable" in refused.stderr
    assert "--rebuild" not in refused.stderr
    data.chmod(0o777)
    ask = [sys.executable, "-m", "rag", "ask", "gateway timeout?"]
    for command in ([sys.executable, "-m", "ingest", str(root)], ask):
        done = subprocess.run(
            (["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups"] if nobody else []) + command
            + ["--data-dir", str(data)],
            cwd="/", capture_output=True, text=True, timeout=300,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "GEMRAG_CONFIG": os.devnull, "PYTHONPATH": str(REPO)})
        assert done.returncode == 2, done.stdout + done.stderr
        assert re.search(rf"error: {re.escape(str(data))}/\S+ in data dir {re.escape(str(data))} is not writable",
                         done.stderr), done.stderr


@pytest.mark.slow
def test_every_entry_left_out_is_listed_with_its_reason(shared_tmp):
    root, outside = shared_tmp / "docs", shared_tmp / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nNot under the folder.\n")
    (root / "kept.md").write_text("# Kept\n\nThe one ordinary file.\n")
    os.mkfifo(root / "pipe.md")
    (root / "escape.md").symlink_to(outside / "secret.md")
    (root / "dangling.md").symlink_to(root / "gone.md")
    (root / ".draft.md").write_text("# Draft\n\nHidden by its name.\n")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.md").write_text("# Cached\n")
    locked = root / "locked"
    locked.mkdir()
    (locked / "inside.md").write_text("# Locked\n")
    locked.chmod(0o000)
    data = shared_tmp / "d"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    try:
        done = ingest_cli(root, "--data-dir", data, user=65534 if os.getuid() == 0 else None, cwd=Path("/"))
    finally:
        locked.chmod(0o755)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr  # the unreadable folder is a failure
    expected = [
        "skipped pipe.md: not a regular file (FIFO)",
        f"skipped escape.md: symlink to {outside / 'secret.md'}, outside the folder",
        f"skipped dangling.md: broken symlink (to {root / 'gone.md'})",
        "skipped .draft.md: hidden (add --include-hidden to take it)",
        "skipped .cache/: hidden folder (add --include-hidden to take it)",
        "failed  locked/: cannot read folder: Permission denied",
    ]
    for line in expected:
        assert line in lines, f"{line!r} not in:\n{done.stdout}"
    assert list(stored(data)) == ["kept.md"]

    hidden = ingest_cli(root, "--data-dir", shared_tmp / "d2", "--include-hidden", "--include", "*draft*",
                        "--include", ".cache/*")
    assert set(stored(shared_tmp / "d2")) == {".draft.md", ".cache/x.md"}, hidden.stdout


@pytest.mark.slow
def test_utf16_without_a_bom_is_read_as_text_not_called_binary(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    text = "Notes exported from Windows. The backup runs nightly at two.\n"
    (root / "le.txt").write_bytes(text.encode("utf-16-le"))
    (root / "be.txt").write_bytes(text.encode("utf-16-be"))
    data = tmp_path / "d"
    done = ingest_cli(root, "--data-dir", data)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stored(data) == {"be.txt": [text.strip()], "le.txt": [text.strip()]}
