"""Staged uploads (rag.uploads) moved onto their stored names by the locked run that ingests
them (ingest.uploads): each run reads its own upload's bytes, the later upload of a name is
what stays, and nothing is left waiting in `.incoming` once a run is over."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ingest.discover import Filters, Skipped, SourceFile, discover
from ingest.pipeline import run_lock
from ingest.report import Status
from ingest.uploads import ingest_staged
from rag.errors import GemragError
from rag.settings import Settings
from rag.store import Store
from rag.uploads import INCOMING, STALE_S, StagedFile, incoming_dir, staged_file, upload_dir
from tests.ingest.fake_embedder import FakeEmbedder

FIRST = "# Leave\n\nEvery employee gets 27 days of paid vacation per calendar year.\n"
SECOND = "# Leave\n\nEvery employee gets 30 days of paid vacation per calendar year.\n"


def upload(settings: Settings, name: str, text: str, collection: str = "corpus") -> StagedFile:
    """What the API does with one request's file: written into a folder of that upload's own."""
    staged = staged_file(incoming_dir(settings, collection), name)
    staged.path.write_text(text)
    return staged


def texts(settings: Settings, fake: FakeEmbedder) -> set[str]:
    return {c.text for c in Store(settings, fake.embedding_id, "corpus").chunks()}


def test_two_uploads_of_one_name_each_ingest_their_own_bytes_and_the_later_stays(
    settings: Settings, fake: FakeEmbedder
) -> None:
    first, second = upload(settings, "leave.md", FIRST), upload(settings, "leave.md", SECOND)
    assert first.stored == second.stored == upload_dir(settings, "corpus") / "leave.md"
    assert not first.stored.exists()  # nothing changes the stored file before a locked run

    one = ingest_staged([first], settings, fake, "corpus")
    assert [(f.source, f.status) for f in one.files] == [("leave.md", Status.ADDED)]
    assert any("27 days" in t for t in texts(settings, fake))  # its own bytes, not the second upload's

    two = ingest_staged([second], settings, fake, "corpus")
    assert [(f.source, f.status) for f in two.files] == [("leave.md", Status.UPDATED)]
    stored = texts(settings, fake)
    assert any("30 days" in t for t in stored) and not any("27 days" in t for t in stored)
    assert first.stored.read_text() == SECOND
    assert list((upload_dir(settings, "corpus") / INCOMING).iterdir()) == []

    same = ingest_staged([upload(settings, "leave.md", SECOND)], settings, fake, "corpus")
    assert [f.status for f in same.files] == [Status.UNCHANGED]


def test_a_run_refused_by_the_lock_leaves_the_upload_staged_for_its_retry(
    settings: Settings, fake: FakeEmbedder
) -> None:
    ingest_staged([upload(settings, "leave.md", FIRST)], settings, fake, "corpus")
    waiting = upload(settings, "leave.md", SECOND)
    with run_lock(settings, "corpus"), pytest.raises(GemragError, match="Another ingest"):
        ingest_staged([waiting], settings, fake, "corpus")
    assert waiting.path.read_text() == SECOND and waiting.stored.read_text() == FIRST  # neither touched

    retry = ingest_staged([waiting], settings, fake, "corpus")
    assert [f.status for f in retry.files] == [Status.UPDATED] and not waiting.path.parent.exists()
    again = ingest_staged([waiting], settings, fake, "corpus")  # a retry after the move: what is stored
    assert [f.status for f in again.files] == [Status.UNCHANGED]


def test_refused_files_leave_nothing_waiting(settings: Settings, fake: FakeEmbedder) -> None:
    report = ingest_staged([upload(settings, "empty.md", ""), upload(settings, "tool.exe", "MZ")],
                           settings, fake, "corpus")
    assert {f.source: f.status for f in report.files} == {"empty.md": Status.FAILED, "tool.exe": Status.SKIPPED}
    assert list((upload_dir(settings, "corpus") / INCOMING).iterdir()) == []


def test_an_upload_folder_left_by_a_job_that_never_ran_is_swept_after_a_week(
    settings: Settings, fake: FakeEmbedder
) -> None:
    old, recent = upload(settings, "old.md", FIRST), upload(settings, "recent.md", FIRST)
    week_ago = time.time() - STALE_S - 60
    os.utime(old.path.parent, (week_ago, week_ago))
    ingest_staged([upload(settings, "leave.md", FIRST)], settings, fake, "corpus")
    assert not old.path.parent.exists() and recent.path.exists()


def test_a_folder_ingest_never_takes_uploads_waiting_in_incoming(settings: Settings, fake: FakeEmbedder) -> None:
    ingest_staged([upload(settings, "leave.md", FIRST)], settings, fake, "corpus")
    upload(settings, "leave.md", SECOND)
    found = list(discover(upload_dir(settings, "corpus"), Filters(include_hidden=True), settings.data_dir))
    assert [f.source for f in found if isinstance(f, SourceFile)] == ["leave.md"]
    assert [f.source for f in found if isinstance(f, Skipped)] == [f"{INCOMING}/"]


def test_an_upload_queued_before_staging_is_ingested_where_it_is(settings: Settings, fake: FakeEmbedder) -> None:
    stored = upload_dir(settings, "corpus") / "leave.md"
    stored.write_text(FIRST)
    report = ingest_staged([StagedFile.at(Path(stored))], settings, fake, "corpus")
    assert [f.status for f in report.files] == [Status.ADDED] and stored.read_text() == FIRST


def test_a_run_that_raises_after_the_move_puts_back_the_stored_file_and_the_upload(
    settings: Settings, fake: FakeEmbedder
) -> None:
    """The upload was left on its name and the previous version in the upload's folder, which
    the UI deletes at once and the worker on its last retry: the stored file's bytes were lost
    while the collection still searched them."""
    ingest_staged([upload(settings, "leave.md", FIRST)], settings, fake, "corpus")
    waiting = upload(settings, "leave.md", SECOND)
    broken = FakeEmbedder(fake.embedding_id)

    def disk_full(texts: object) -> object:
        raise OSError(28, "No space left on device")

    broken.embed_documents = disk_full  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        ingest_staged([waiting], settings, broken, "corpus")
    assert waiting.stored.read_text() == FIRST and waiting.path.read_text() == SECOND  # as before the run

    retry = ingest_staged([waiting], settings, fake, "corpus")
    assert [f.status for f in retry.files] == [Status.UPDATED] and waiting.stored.read_text() == SECOND


def test_a_refused_upload_of_a_new_name_leaves_no_file_behind(settings: Settings, fake: FakeEmbedder) -> None:
    """It stayed on its name, unsearched; a second refused upload of that name then said "the
    previous new.md stays, as stored and as searched", of a file nothing searched."""
    first = ingest_staged([upload(settings, "new.md", "")], settings, fake, "corpus")
    assert [f.status for f in first.files] == [Status.FAILED]
    assert not (upload_dir(settings, "corpus") / "new.md").exists()
    second = ingest_staged([upload(settings, "new.md", "")], settings, fake, "corpus")
    assert [f.status for f in second.files] == [Status.FAILED] and "previous" not in second.files[0].reason


def test_uploads_into_a_copied_data_dir_update_their_files_without_naming_server_paths(
    settings: Settings, fake: FakeEmbedder, tmp_path: Path
) -> None:
    """The manifest recorded the upload folder under the old data dir, so an upload into the
    copy was refused: "already ingested from /old/uploads/corpus, where it still is; ...
    Ingest /new/uploads/corpus into another --collection"."""
    import shutil

    ingest_staged([upload(settings, "leave.md", FIRST)], settings, fake, "corpus")
    copied = settings.model_copy(update={"data_dir": tmp_path / "copied"})
    shutil.copytree(settings.data_dir, copied.data_dir)

    again = ingest_staged([upload(copied, "leave.md", SECOND)], copied, fake, "corpus")
    assert [(f.status, f.reason) for f in again.files] == [(Status.UPDATED, "")]
    assert (upload_dir(copied, "corpus") / "leave.md").read_text() == SECOND
    assert (upload_dir(settings, "corpus") / "leave.md").read_text() == FIRST  # the original is its own


def test_an_upload_and_a_server_folder_holding_one_name_are_refused_without_server_paths_or_cli_flags(
    settings: Settings, fake: FakeEmbedder, tmp_path: Path
) -> None:
    """Either way round, an API job: it was refused as "already ingested from
    /srv/docs, where it still is; a second folder ... Ingest DATA_DIR/uploads/corpus into
    another --collection", naming both server folders to a client that cannot use a flag."""
    from ingest.pipeline import ingest_paths

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "leave.md").write_text(FIRST)
    assert ingest_paths([shared], settings, fake, collection="corpus").exit_code == 0
    refused = ingest_staged([upload(settings, "leave.md", SECOND)], settings, fake, "corpus")
    [(status, reason)] = [(f.status, f.reason) for f in refused.files]
    assert status is Status.FAILED and reason == (
        "the collection already holds a file of this name, ingested from a folder on the server; "
        "upload this one under another name")

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.md").write_text(SECOND)
    assert ingest_staged([upload(settings, "notes.md", FIRST, "team")], settings, fake, "team").exit_code == 0
    meets = ingest_paths([other], settings, fake, collection="team")
    [(status, reason)] = [(f.status, f.reason) for f in meets.files]
    assert status is Status.FAILED and str(settings.data_dir) not in reason and "--collection" not in reason
    assert reason == ("the collection already holds an uploaded file of this name; remove it first (over HTTP: "
                      "DELETE /v1/collections/team/documents/notes.md), or ingest this folder into another collection")

    third = tmp_path / "third"
    third.mkdir()
    (third / "leave.md").write_text(SECOND)
    two_folders = ingest_paths([third], settings, fake, collection="corpus")  # the CLI's case is as it was
    assert two_folders.files[0].reason.startswith(f"already ingested from {shared}, where it still is")


def test_a_cli_users_own_folders_are_never_taken_for_uploads(fake: FakeEmbedder, tmp_path: Path) -> None:
    """A review's repros: a folder holding a `.incoming` folder of its own (a sync tool's), or
    the user's own ~/uploads/reports with the data dir at ~, met a second folder and was told
    of the DELETE route or to upload under another name."""
    from ingest.pipeline import ingest_paths

    settings = Settings(data_dir=tmp_path, api_key=None, tier="unlimited")  # GEMRAG_DATA_DIR=~
    first = tmp_path / "mine"
    (first / ".incoming").mkdir(parents=True)
    (first / "notes.md").write_text(FIRST)
    assert ingest_paths([first], settings, fake, collection="corpus").exit_code == 0
    for second in (tmp_path / "other", tmp_path / "uploads" / "reports"):
        second.mkdir(parents=True)
        (second / "notes.md").write_text(SECOND)
        [refused] = ingest_paths([second], settings, fake, collection="corpus").files
        assert refused.reason.startswith(f"already ingested from {first}, where it still is"), refused.reason
