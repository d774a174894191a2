from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import run_lock
from ingest.report import Status
from rag.errors import GemragError
from rag.providers.offline import OfflineProvider
from rag.settings import Settings
from rag.store import Store
from rag.uploads import INCOMING, incoming_dir
from tests.fakes.corpus import pdf_bytes
from ui import render
from ui.uploads import UploadRejected, ingest_uploads, safe_name, stage, upload_dir


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/cron.d/evil.md", "evil.md"),
        ("..\\..\\Windows\\evil.md", "evil.md"),
        (".bashrc.md", "bashrc.md"),
        ("rapport été <b>.md", "rapport été _b_.md"),
        ("budget (2025).md", "budget (2025).md"),  # and "[2025]" is another name: the walkthrough's lost file
        ("notes [draft], v2+ {old} Q&A=1 @x!~.md", "notes [draft], v2+ {old} Q&A=1 @x!~.md"),
        ("a#b?c%d*e|f:g\"h'i.md", "a_b_c_d_e_f_g_h_i.md"),
        ("a" * 300 + ".pdf", "a" * 116 + ".pdf"),
    ],
)
def test_upload_names_become_plain_file_names(sent: str, kept: str) -> None:
    assert safe_name(sent) == kept


def test_uploads_apart_whose_names_differ_by_punctuation_are_two_documents(settings, offline_provider, tmp_path):
    """API walkthrough: "budget (2025).md" and then "budget [2025].md" were both stored as
    "budget _2025_.md", the second replacing the first's chunks and bytes."""
    travel = write(tmp_path / "a" / "budget (2025).md", "# Travel\n\nThe travel budget is 4,000 euros.")
    office = write(tmp_path / "b" / "budget [2025].md", "# Office\n\nThe office budget is 9,000 euros.")
    for sent in (travel, office):
        result = ingest_uploads([sent], settings, offline_provider, "corpus")
        assert result.report is not None and [f.status.value for f in result.report.files] == ["added"]
    folder = upload_dir(settings, "corpus")
    assert "4,000" in (folder / "budget (2025).md").read_text() and "9,000" in (folder / "budget [2025].md").read_text()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_stage_copies_into_its_uploads_own_folder_only(settings: Settings, tmp_path: Path) -> None:
    folder = incoming_dir(settings, "corpus")
    staged = stage(write(tmp_path / "in" / "x", "notes"), "../../../outside.md", settings, folder)
    assert staged.path == folder / "outside.md" and staged.path.read_text() == "notes"
    assert staged.stored == upload_dir(settings, "corpus") / "outside.md"
    assert not staged.stored.exists()  # moved there by the ingest that reads it, under the collection's lock
    assert not (tmp_path / "outside.md").exists()


def test_stage_refuses_unknown_types_and_oversized_files(settings: Settings, tmp_path: Path) -> None:
    folder = incoming_dir(settings, "corpus")
    with pytest.raises(UploadRejected, match=r"tool\.exe: file type \.exe is not supported"):
        stage(write(tmp_path / "a", "MZ"), "tool.exe", settings, folder)
    small = settings.model_copy(update={"max_upload_mb": 0.001})
    with pytest.raises(UploadRejected, match=r"big\.md: 1,049 bytes is over the upload limit of 0\.001 MB \(1,048"):
        stage(write(tmp_path / "b", "x" * 1_049), "big.md", small, folder)  # MB: 1,048,576 bytes
    assert list(folder.iterdir()) == []
    assert stage(write(tmp_path / "c", "x" * 1_048), "fits.md", small, folder).name == "fits.md"  # at the limit
    with pytest.raises(UploadRejected, match=r"^\.\.md: not a usable file name; give the file a name"):
        stage(write(tmp_path / "d", "x"), "..md", settings, folder)  # stored as "md": no type left


def test_a_second_file_of_one_name_in_an_upload_is_refused_not_written_over_the_first(
    settings: Settings, tmp_path: Path, offline_provider: OfflineProvider
) -> None:
    """A review's repro: two files named alike from two folders were both staged under one
    name, the second's bytes over the first's, while the upload reported both."""
    first = write(tmp_path / "a" / "notes.md", "# Notes\n\nThe canteen serves lunch from 11:30 to 14:00.")
    second = write(tmp_path / "b" / "notes.md", "# Notes\n\nThe gym opens at 6:00.")
    result = ingest_uploads([first, second], settings, offline_provider, "corpus")
    assert [s.name for s in result.staged] == ["notes.md"]
    assert result.rejected == ["notes.md: another file of this upload has the same name; rename one (uploaded "
                               "apart, the later would replace the other)."]
    assert "canteen" in (upload_dir(settings, "corpus") / "notes.md").read_text()


@pytest.mark.parametrize("collection", ["..", ".", "../x", "a/../.."])
def test_collection_names_cannot_leave_the_uploads_folder(settings: Settings, collection: str) -> None:
    with pytest.raises(UploadRejected):
        upload_dir(settings, collection)


def test_uploads_are_ingested_under_their_file_names(
    settings: Settings, tmp_path: Path, offline_provider: OfflineProvider
) -> None:
    good = write(tmp_path / "tmp1" / "canteen.md", "# Canteen\n\nThe canteen serves lunch from 11:30 to 14:00.")
    bad = write(tmp_path / "tmp2" / "virus.exe", "MZ")
    seen = []
    result = ingest_uploads([good, bad], settings, offline_provider, "corpus", seen.append)
    assert [s.name for s in result.staged] == ["canteen.md"]
    assert result.rejected and "virus.exe" in result.rejected[0]
    assert result.report is not None and result.report.exit_code == 0
    chunks = list(Store(settings, offline_provider.embedding_id, "corpus").chunks())
    assert {c.source for c in chunks} == {"canteen.md"}
    assert seen and seen[-1].files_done == seen[-1].files_total == 1
    assert list((upload_dir(settings, "corpus") / INCOMING).iterdir()) == []


def test_an_upload_refused_by_a_running_ingest_leaves_the_stored_file_as_ingested(
    settings: Settings, tmp_path: Path, offline_provider: OfflineProvider
) -> None:
    ingest_uploads([write(tmp_path / "tmp1" / "canteen.md", "# Canteen\n\nLunch from 11:30.")], settings,
                   offline_provider, "corpus")
    stored = upload_dir(settings, "corpus") / "canteen.md"
    with run_lock(settings, "corpus"), pytest.raises(GemragError, match="Another ingest"):
        ingest_uploads([write(tmp_path / "tmp2" / "canteen.md", "# Canteen\n\nClosed.")], settings,
                       offline_provider, "corpus")
    assert stored.read_text() == "# Canteen\n\nLunch from 11:30."  # what the collection holds, still
    assert list((upload_dir(settings, "corpus") / INCOMING).iterdir()) == []


CANTEEN = b"# Canteen\n\nLunch is served from 11:30 to 14:00.\n"
LATER = b"# Canteen\n\nLunch is served from 12:00 to 14:00.\n"


def put(path: Path, data: bytes) -> Path:
    """A file as the browser leaves it for the upload handler."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("name", "good", "bad", "later"), [
    ("canteen.md", CANTEEN, b"", LATER),
    ("canteen.md", CANTEEN, b"\x00\x01\x02 not text", LATER),
    ("menu.pdf", pdf_bytes(["Lunch is served from 11:30 to 14:00."]), b"%PDF-1.7 torn off",
     pdf_bytes(["Lunch is served from 12:00 to 14:00."])),
])
def test_an_upload_the_ingest_refuses_leaves_the_stored_file_and_its_chunks_and_says_so(
    settings: Settings, tmp_path: Path, offline_provider: OfflineProvider, name: str, good: bytes, bad: bytes,
    later: bytes,
) -> None:
    """An empty or unreadable file uploaded under the name of a stored one replaced it on disk
    while the old chunks stayed searchable: the original was lost."""
    ingest_uploads([put(tmp_path / "tmp1" / name, good)], settings, offline_provider, "corpus")
    stored = upload_dir(settings, "corpus") / name
    store = Store(settings, offline_provider.embedding_id, "corpus")
    chunks = {c.id: c.text for c in store.chunks()}

    for attempt in ("tmp2", "tmp3"):  # the second finds nothing of the first recorded
        refused = ingest_uploads([put(tmp_path / attempt / name, bad)], settings, offline_provider, "corpus")
        assert stored.read_bytes() == good  # the previous version, on disk as in the collection
        assert {c.id: c.text for c in store.chunks()} == chunks
        assert refused.report is not None
        [outcome] = refused.report.files
        assert outcome.status is Status.FAILED
        assert outcome.reason.startswith(f"the upload of {name} was refused (")
        assert outcome.reason.endswith(f"); the previous {name} stays, as stored and as searched")
        assert "--prune" not in outcome.reason
        assert list((upload_dir(settings, "corpus") / INCOMING).iterdir()) == []

    replaced = ingest_uploads([put(tmp_path / "tmp4" / name, later)], settings, offline_provider, "corpus")
    assert replaced.report is not None and [f.status for f in replaced.report.files] == [Status.UPDATED]
    texts = [c.text for c in store.chunks()]
    assert stored.read_bytes() == later and any("12:00" in t for t in texts) and not any("11:30" in t for t in texts)


def test_an_empty_upload_is_refused_as_empty_by_name_and_the_stored_file_of_its_name_stays(
    settings: Settings, tmp_path: Path, offline_provider: OfflineProvider
) -> None:
    """An empty notes.md was refused as having "no text to index", which read like a fault of the app's."""
    empty = ingest_uploads([put(tmp_path / "a" / "blank.md", b"")], settings, offline_provider, "corpus")
    assert empty.report is not None
    [outcome] = empty.report.files
    assert outcome.status is Status.FAILED and outcome.reason == "the file is empty (0 bytes)"
    assert "❌ blank.md: the file is empty (0 bytes)" in render.upload_summary(empty)

    ingest_uploads([put(tmp_path / "b" / "notes.md", b"# Notes\n\nLunch is at noon.\n")], settings,
                   offline_provider, "corpus")
    again = ingest_uploads([put(tmp_path / "c" / "notes.md", b"")], settings, offline_provider, "corpus")
    assert ("❌ notes.md: the upload of notes.md was refused (the file is empty (0 bytes)); the previous notes.md "
            "stays, as stored and as searched") in render.upload_summary(again)
    assert (upload_dir(settings, "corpus") / "notes.md").read_bytes().startswith(b"# Notes")


def test_an_upload_while_another_ingest_holds_the_collection_waits_for_it_saying_so(
    settings: Settings, tmp_path: Path, offline_provider: OfflineProvider
) -> None:
    """It was refused at once ("Another ingest ... is running"), to be sent again by hand."""
    import threading

    from rag.backend import Backend
    from ui.handlers import Handlers
    from ui.session import SessionState

    handlers = Handlers(settings, Backend.build(settings, offline_provider))
    said: list[tuple[object, str, str]] = []
    waiting = threading.Event()

    def progress(done: object, desc: str = "", unit: str = "steps") -> None:
        said.append((done, desc, unit))
        if desc.startswith("Waiting for another ingest into corpus"):
            waiting.set()

    upload = write(tmp_path / "tmp1" / "canteen.md", "# Canteen\n\nLunch from 11:30.")
    outputs: list[tuple[object, ...]] = []
    with run_lock(settings, "corpus"):
        run = threading.Thread(target=lambda: outputs.append(
            handlers.upload([str(upload)], "corpus", SessionState(), progress=progress)))  # type: ignore[arg-type]
        run.start()
        assert waiting.wait(10)  # its progress says what it waits for
    run.join(30)
    summary = str(outputs[0][0])
    assert "canteen.md" in summary and "❌" not in summary
    # Gradio shows no description beside a progress of None: the wait said nothing (UI walkthrough)
    assert all(done is not None for done, desc, _ in said if desc.startswith("Waiting"))
    # counted in chunks once some are known, one large file read "0/1" to its end (UI walkthrough)
    chunks = [(done, desc) for done, desc, unit in said if unit == "chunks"]
    assert chunks and chunks[-1] == ((1, 1), "Ingesting canteen.md (file 1 of 1)")
    assert (upload_dir(settings, "corpus") / "canteen.md").read_text() == "# Canteen\n\nLunch from 11:30."
