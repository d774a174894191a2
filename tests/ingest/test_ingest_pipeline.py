import re
import threading
import time
from dataclasses import replace

import pytest

from ingest import pipeline
from ingest.discover import Filters
from ingest.manifest import Manifest
from ingest.pipeline import MANIFEST, ingest_paths, remove_paths
from ingest.report import Progress, Status
from rag.bm25 import CHUNKS, LINES, BM25Search
from rag.errors import ConfigError, EmbedderMismatch, GemragError, ProviderError, QuotaExhausted
from rag.settings import Settings
from rag.store import Store, drop_collection
from tests.fakes.corpus import BAD_INPUTS, MANUAL, outlined_pdf_bytes, write_bad_inputs
from tests.ingest.conftest import snapshot
from tests.ingest.fake_embedder import FakeEmbedder

GOOD = ["guide.md", "notes.txt", "runbook.html", "sub/limits.pdf"]


def _statuses(report):
    return {f.source: f.status for f in report.files}


def test_first_ingest_stores_every_chunk_with_its_place(corpus, settings, fake):
    report = ingest_paths([corpus.root], settings, fake)
    assert _statuses(report) == {**dict.fromkeys(GOOD, Status.ADDED), "diagram.svg": Status.SKIPPED}
    assert report.exit_code == 0 and report.version >= 1
    store = Store(settings, fake.embedding_id)
    chunks = list(store.chunks())
    assert len(chunks) == report.chunks == report.embedded_chunks == len(fake.embedded_texts)
    assert sorted(fake.embedded_texts) == sorted(c.embedded_text for c in chunks)  # heading path, then text
    assert {c.source for c in chunks} == set(GOOD)
    assert {c.page for c in chunks if c.source == "sub/limits.pdf"} == {1, 2, 3}
    headings = {c.heading for c in chunks if c.source == "guide.md"}
    assert headings >= {"Handbook > Streaming", "Handbook > Caching > Answer cache"}
    text = corpus.path("guide.md").read_text()
    assert all(text[c.start : c.end] == c.text for c in chunks if c.source == "guide.md")
    assert report.tokens > 0 and report.cost_usd == 0.0


def test_pdf_chunks_are_embedded_under_their_outline_path_and_a_renamed_section_is_embedded_again(
        corpus, settings, fake):
    corpus.path("manual.pdf").write_bytes(outlined_pdf_bytes(MANUAL))
    ingest_paths([corpus.root], settings, fake)
    chunks = {c.text: c for c in Store(settings, fake.embedding_id).chunks() if c.source == "manual.pdf"}
    carried = next(c for t, c in chunks.items() if t.startswith("2\nnrs is the number of rows"))
    assert (carried.page, carried.heading) == (2, "Problem routines > glp_add_rows - add new rows")
    assert f"Problem routines > glp_add_rows - add new rows\n{carried.text}" in fake.embedded_texts
    assert all(not t.startswith("Handbook") for t in fake.embedded_texts)  # Markdown prints its headings

    renamed = [[replace(b, title=b.title.replace("Problem", "Row"), text=b.text.replace("Problem", "Row"))
                for b in page] for page in MANUAL]
    corpus.path("manual.pdf").write_bytes(outlined_pdf_bytes(renamed))
    fake.calls.clear()
    ingest_paths([corpus.root], settings, fake)
    assert fake.embedded_texts and all(t.startswith("Row routines > ") for t in fake.embedded_texts)
    assert len(fake.embedded_texts) == len(chunks)  # the same texts, under a new path: embedded again


def test_reingest_without_change_embeds_nothing_and_keeps_the_version(corpus, settings, fake):
    first = ingest_paths([corpus.root], settings, fake)
    calls = len(fake.calls)
    before = snapshot(settings, fake.embedding_id)
    again = ingest_paths([corpus.root], settings, fake)
    assert len(fake.calls) == calls
    assert set(_statuses(again).values()) == {Status.UNCHANGED, Status.SKIPPED}
    assert again.version == first.version
    assert snapshot(settings, fake.embedding_id) == before


def test_an_edited_file_gets_new_chunks_and_loses_its_old_ones(corpus, settings, fake):
    first = ingest_paths([corpus.root], settings, fake)
    guide = corpus.path("guide.md")
    guide.write_text(guide.read_text().replace("server-sent events", "SSE frames") + "\n## New\n\nA new section.\n")
    fake.calls.clear()
    report = ingest_paths([corpus.root], settings, fake)
    assert _statuses(report)["guide.md"] is Status.UPDATED
    assert report.count(Status.UNCHANGED) == 3
    # only the changed and new chunks were embedded; the rest kept their stored vectors
    assert sorted(fake.embedded_texts) == sorted(t for t in fake.embedded_texts if "SSE" in t or "New" in t)
    assert len(fake.embedded_texts) == 2 and report.reused_chunks > 0
    texts = [c.text for c in Store(settings, fake.embedding_id).chunks() if c.source == "guide.md"]
    assert any("SSE frames" in t for t in texts) and not any("server-sent" in t for t in texts)
    assert report.version > first.version
    # the result is exactly what a fresh ingest of the edited folder gives
    fresh = settings.model_copy(update={"data_dir": settings.data_dir.parent / "fresh"})
    ingest_paths([corpus.root], fresh, FakeEmbedder())
    assert snapshot(settings, fake.embedding_id).chunks == snapshot(fresh, fake.embedding_id).chunks


def test_a_renamed_or_copied_file_copies_its_stored_vectors_instead_of_embedding_them(corpus, settings, fake):
    ingest_paths([corpus.root], settings, fake)
    store = Store(settings, fake.embedding_id)
    old = {c.embedded_text for c in store.chunks() if c.source == "guide.md"}
    corpus.path("guide.md").rename(corpus.path("handbook.md"))
    corpus.path("copy.txt").write_bytes(corpus.path("notes.txt").read_bytes())
    corpus.path("copy2.txt").write_bytes(corpus.path("notes.txt").read_bytes())
    fake.calls.clear()

    # The dry run said these would all be embedded (its estimate of a Gemini run: ~300x the cost).
    dry = ingest_paths([corpus.root], settings, fake, prune=True, dry_run=True)
    assert (dry.embedded_chunks, dry.tokens, dry.reused_chunks) == (0, 0, dry.chunks)
    report = ingest_paths([corpus.root], settings, fake, prune=True)

    assert (_statuses(report)["handbook.md"], _statuses(report)["copy.txt"]) == (Status.ADDED, Status.ADDED)
    assert _statuses(report)["guide.md"] is Status.REMOVED  # after its vectors were copied
    assert fake.calls == [] and report.embedded_chunks == 0 and report.reused_chunks == report.chunks
    assert {c.embedded_text for c in store.chunks() if c.source == "handbook.md"} == old
    fresh = settings.model_copy(update={"data_dir": settings.data_dir.parent / "fresh"})
    ingest_paths([corpus.root], fresh, FakeEmbedder())
    assert snapshot(settings, fake.embedding_id) == snapshot(fresh, fake.embedding_id)  # as a fresh ingest stores it


@pytest.mark.parametrize("windows", ["one window", "many windows"])
def test_copies_of_a_file_in_one_run_embed_each_text_once(corpus, settings, fake, windows):
    """Two copies of a file in the folder were both embedded (paid twice on Gemini), though
    a copy made after the first ingest costs nothing: each text is embedded once per run,
    within a window or across windows, and its twins take its vector."""
    if windows == "many windows":
        settings = settings.model_copy(update={"ingest_batch_chunks": 3})
    corpus.path("guide-copy.md").write_bytes(corpus.path("guide.md").read_bytes())
    corpus.path("sub/guide.md").write_bytes(corpus.path("guide.md").read_bytes())

    dry = ingest_paths([corpus.root], settings, fake, dry_run=True)
    report = ingest_paths([corpus.root], settings, fake)
    assert (dry.embedded_chunks, dry.reused_chunks) == (report.embedded_chunks, report.reused_chunks)

    sent = fake.embedded_texts
    assert len(sent) == len(set(sent)) == report.embedded_chunks
    store = Store(settings, fake.embedding_id)
    chunks = list(store.chunks())
    vectors = store.vectors([c.id for c in chunks])
    by_text: dict[str, set[tuple[float, ...]]] = {}
    for c in chunks:
        by_text.setdefault(c.embedded_text, set()).add(tuple(round(x, 6) for x in vectors[c.id]))
    originals = [c for c in chunks if c.source == "guide.md"]
    assert report.reused_chunks == 2 * len(originals) and report.chunks == len(chunks)
    assert {c.source for c in chunks} >= {"guide.md", "guide-copy.md", "sub/guide.md"}
    assert len([c for c in chunks if c.source == "sub/guide.md"]) == len(originals)
    assert all(len(held) == 1 for held in by_text.values())  # every copy stored with its text's one vector
    assert all(fake.embed_documents([c.embedded_text]).vectors[0] == pytest.approx(vectors[c.id], abs=1e-6)
               for c in originals)


def test_a_renamed_file_over_many_windows_copies_every_vector_and_reads_the_owners_once(
        corpus, small_batches, fake, monkeypatch):
    ingest_paths([corpus.root], small_batches, fake)
    corpus.path("guide.md").rename(corpus.path("handbook.md"))
    corpus.path("notes.txt").rename(corpus.path("notes2.txt"))
    owned_calls, windows = [], []
    owned, copies = pipeline._owned, pipeline._Run.copies
    monkeypatch.setattr(pipeline, "_owned", lambda records: owned_calls.append(1) or owned(records))
    monkeypatch.setattr(pipeline._Run, "copies", lambda run, fresh: windows.append(fresh) or copies(run, fresh))
    fake.calls.clear()

    report = ingest_paths([corpus.root], small_batches, fake, prune=True)

    assert len([w for w in windows if w]) > 1
    assert fake.calls == [] and report.reused_chunks == report.chunks
    assert len(owned_calls) == 1  # once when the run starts, not once per window


def test_a_deleted_file_loses_its_chunks_only_with_prune(corpus, settings, fake):
    ingest_paths([corpus.root], settings, fake)
    corpus.path("notes.txt").unlink()
    kept = ingest_paths([corpus.root], settings, fake)
    assert "notes.txt" not in _statuses(kept)
    assert kept.notes == ["1 file ingested before is gone from the folder but still in the collection "
                          "(notes.txt); --prune removes it"]
    assert any(c.source == "notes.txt" for c in Store(settings, fake.embedding_id).chunks())
    pruned = ingest_paths([corpus.root], settings, fake, prune=True)
    assert _statuses(pruned)["notes.txt"] is Status.REMOVED and pruned.version > kept.version and not pruned.notes
    assert {c.source for c in Store(settings, fake.embedding_id).chunks()} == set(GOOD) - {"notes.txt"}
    assert "notes.txt" not in snapshot(settings, fake.embedding_id).files


def test_the_note_on_files_gone_names_a_few_and_counts_the_rest(corpus, settings, fake, monkeypatch):
    monkeypatch.setattr(pipeline, "GONE_NAMED", 1)
    ingest_paths([corpus.root], settings, fake)
    corpus.path("notes.txt").unlink()
    corpus.path("guide.md").unlink()
    [note] = ingest_paths([corpus.root], settings, fake).notes
    assert re.fullmatch(r"2 files ingested before are gone from the folder but still in the collection "
                        r"\((notes\.txt|guide\.md) and 1 more\); --prune removes them", note)


def test_prune_leaves_files_of_other_roots_and_excluded_files_alone(corpus, settings, fake, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "extra.md").write_text("# Extra\n\nAnother folder's file.\n")
    ingest_paths([corpus.root, other], settings, fake)
    report = ingest_paths([corpus.root], settings, fake, filters=Filters(include=["*.md"]), prune=True)
    assert report.count(Status.REMOVED) == 0
    assert {c.source for c in Store(settings, fake.embedding_id).chunks()} == {*GOOD, "extra.md"}


def test_mixing_embedders_is_refused_and_rebuild_switches(corpus, settings, fake):
    ingest_paths([corpus.root], settings, fake)
    other = FakeEmbedder("other:hash:8")
    with pytest.raises(EmbedderMismatch, match="was built with fake:hash:8"):
        ingest_paths([corpus.root], settings, other)
    with pytest.raises(EmbedderMismatch, match="a real run would be refused"):
        ingest_paths([corpus.root], settings, other, dry_run=True)
    assert other.calls == []
    store = Store(settings, fake.embedding_id)
    search = BM25Search(settings)
    for kind in (CHUNKS, LINES):  # both keyword indexes saved for this corpus
        search.index_for(store, kind)
    indexes = [settings.data_dir / kind / store.name for kind in ("bm25", "bm25-lines")]
    assert all(folder.is_dir() for folder in indexes)
    report = ingest_paths([corpus.root], settings, other, rebuild=True)
    assert report.count(Status.ADDED) == 4 and len(other.calls) > 0
    assert Store(settings, "other:hash:8").count() == report.chunks
    assert not any(folder.exists() for folder in indexes)  # dropped with the collection they indexed


def test_bad_inputs_are_reported_by_name_and_the_run_goes_on(corpus, settings, fake):
    write_bad_inputs(corpus.root / "bad")
    big = corpus.root / "big.txt"
    big.write_text("large " * 1000)
    settings = settings.model_copy(update={"max_file_mb": 0.005})
    report = ingest_paths([corpus.root], settings, fake)
    failed = {f.source: f.reason for f in report.of(Status.FAILED)}
    assert set(failed) == {f"bad/{name}" for name in BAD_INPUTS} | {"big.txt"}
    for name, words in BAD_INPUTS.items():
        assert words in failed[f"bad/{name}"]
    assert "over the 0.005 MB limit" in failed["big.txt"]
    assert _statuses(report)["bad/latin1.txt"] is Status.ADDED
    assert report.count(Status.ADDED) == 5 and report.exit_code == 1
    assert {c.source for c in Store(settings, fake.embedding_id).chunks()} == {*GOOD, "bad/latin1.txt"}


def test_a_readers_unexpected_error_fails_that_file_and_the_run_goes_on(corpus, settings, fake, monkeypatch):
    """A parser tripped by one hostile file stopped the whole run (exit 3), and every rerun at
    the same file: now the file fails, named with the error, and the others are ingested."""
    (corpus.root / "trips.md").write_text("TRIP the reader here.")
    read = pipeline.read

    def tripping(data, kind, vision=None):
        if data.startswith(b"TRIP"):
            raise IndexError("list index out of range")
        return read(data, kind, vision)

    monkeypatch.setattr(pipeline, "read", tripping)
    report = ingest_paths([corpus.root], settings, fake)
    failed = {f.source: f.reason for f in report.of(Status.FAILED)}
    assert list(failed) == ["trips.md"] and "IndexError: list index out of range" in failed["trips.md"]
    assert report.exit_code == 1
    assert {c.source for c in Store(settings, fake.embedding_id).chunks()} == set(GOOD)


def test_a_collection_name_of_the_longest_allowed_length_ingests(corpus, settings, fake):
    """A 300-character name passed the check (Chroma takes 512) and then crashed on its lock
    file's name ("File name too long", exit 3): names are capped where every file named after
    them still fits."""
    from rag.store import MAX_NAME_CHARS

    name = "c" * MAX_NAME_CHARS
    report = ingest_paths([corpus.root], settings, fake, collection=name)
    assert report.exit_code == 0 and Store(settings, fake.embedding_id, name).count() == report.chunks


def test_a_file_named_twice_is_taken_once(corpus, settings, fake):
    """`ingest docs docs/guide.md` failed guide.md as having "the same stored name as" itself."""
    report = ingest_paths([corpus.root, corpus.root / "guide.md"], settings, fake)
    assert report.exit_code == 0 and not report.of(Status.FAILED)
    assert sorted(f.source for f in report.of(Status.ADDED)) == sorted(GOOD)


def test_a_folder_read_again_from_its_parent_keeps_its_old_names_until_pruned(corpus, settings, fake):
    """A name clash's advice, "ingest both from their common parent folder", left the first
    folder's files under their old names beside the new ones (answers cited both), and
    --prune did not remove them: their folder was not among the run's roots."""
    ingest_paths([corpus.root / "sub"], settings, fake)
    kept = ingest_paths([corpus.root], settings, fake)
    assert any("old name (limits.pdf)" in note and "--prune removes it" in note for note in kept.notes), kept.notes
    assert {c.source for c in Store(settings, fake.embedding_id).chunks()} == {*GOOD, "limits.pdf"}
    pruned = ingest_paths([corpus.root], settings, fake, prune=True)
    assert [f.source for f in pruned.of(Status.REMOVED)] == ["limits.pdf"]
    assert {c.source for c in Store(settings, fake.embedding_id).chunks()} == set(GOOD)


def test_a_run_that_finds_no_file_it_reads_says_so(settings, fake, tmp_path):
    """`ingest hostfile` printed "Ingested into collection 'corpus'", "skipped hostfile: unknown
    type ''" and exit 0: a run that read nothing looked like one that did."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hostfile").write_text("server-1\n")
    (docs / "data.xyz").write_text("1,2,3\n")
    report = ingest_paths([docs], settings, fake)
    reasons = {f.source: f.reason for f in report.of(Status.SKIPPED)}
    assert reasons == {"hostfile": "no extension to tell its type", "data.xyz": "unknown type '.xyz'"}
    assert any(n.startswith("nothing to ingest: no file found is of a type ingest reads (.docx,") for n in report.notes)
    (docs / "notes.md").write_text("# Notes\n\nSomething to read.\n")
    assert not any(n.startswith("nothing to ingest") for n in ingest_paths([docs], settings, fake).notes)


def test_a_missing_path_is_a_failure_not_a_crash(settings, fake, tmp_path):
    report = ingest_paths([tmp_path / "nope"], settings, fake)
    assert report.of(Status.FAILED)[0].reason == "no such file or folder" and report.exit_code == 1


def test_quota_exhausted_stops_cleanly_and_keeps_finished_files(corpus, small_batches):
    failing = FakeEmbedder(fail_after=2, error=QuotaExhausted("Daily quota of gemini-embedding-001 is used up."))
    report = ingest_paths([corpus.root], small_batches, failing)
    assert report.stopped and "quota" in report.stopped and "run the same command again" in report.stopped
    assert report.exit_code == 2 and report.not_done > 0
    done = {f.source for f in report.of(Status.ADDED)}
    stored = {c.source for c in Store(small_batches, failing.embedding_id).chunks()}
    assert stored == done  # finished files kept, nothing half-stored
    resumed = ingest_paths([corpus.root], small_batches, FakeEmbedder())
    assert resumed.exit_code == 0 and {f.source for f in resumed.of(Status.ADDED)} == set(GOOD) - done
    assert {c.source for c in Store(small_batches, failing.embedding_id).chunks()} == set(GOOD)


def test_dry_run_counts_and_prices_without_writing(corpus, settings, fake):
    report = ingest_paths([corpus.root], settings, fake, dry_run=True)
    assert report.dry_run and report.count(Status.ADDED) == 4 and report.embedded_chunks > 0
    assert fake.calls == [] and not (settings.data_dir / MANIFEST).exists()
    assert not (settings.data_dir / "chroma").exists()
    real = ingest_paths([corpus.root], settings, fake)
    assert (real.embedded_chunks, real.tokens) == (report.embedded_chunks, report.tokens)
    corpus.path("notes.txt").unlink()
    corpus.path("guide.md").write_text("# Handbook\n\nRewritten entirely.\n")
    before = snapshot(settings, fake.embedding_id)
    dry = ingest_paths([corpus.root], settings, fake, dry_run=True, prune=True)
    assert _statuses(dry)["notes.txt"] is Status.REMOVED and _statuses(dry)["guide.md"] is Status.UPDATED
    assert dry.embedded_chunks == 1
    assert snapshot(settings, fake.embedding_id) == before


def test_dry_run_prices_gemini_embeddings(corpus, settings):
    gemini_like = FakeEmbedder("gemini:gemini-embedding-001:768", embedding_model="gemini-embedding-001")
    gemini_like.name = "gemini"
    report = ingest_paths([corpus.root], settings, gemini_like, dry_run=True)
    price = settings.models["gemini-embedding-001"].price.input
    assert report.cost_usd == pytest.approx(report.tokens * price / 1e6) and report.cost_usd > 0


def test_damage_to_the_store_is_repaired_on_the_next_run(corpus, settings, fake):
    ingest_paths([corpus.root], settings, fake)
    clean = snapshot(settings, fake.embedding_id)
    store = Store(settings, fake.embedding_id)
    lost = next(c for c in store.chunks() if c.source == "notes.txt")
    store.delete([lost.id])
    orphan = lost.__class__(**{**lost.__dict__, "id": "orphan-id", "source": "ghost.md"})
    store.upsert([orphan], [[0.5] * 8])
    fake.calls.clear()
    report = ingest_paths([corpus.root], settings, fake)
    assert _statuses(report)["notes.txt"] is Status.UPDATED and report.orphans_removed == 1
    assert fake.embedded_texts == [lost.text]  # only the missing chunk is embedded again
    assert snapshot(settings, fake.embedding_id) == clean


def test_remove_paths_deletes_named_files(corpus, settings, fake):
    ingest_paths([corpus.root], settings, fake)
    report = remove_paths(["notes.txt", "nothere.md"], settings, fake)
    assert _statuses(report) == {"notes.txt": Status.REMOVED, "nothere.md": Status.FAILED}
    assert "notes.txt" not in {c.source for c in Store(settings, fake.embedding_id).chunks()}
    manifest = Manifest(settings.path(MANIFEST), "corpus")
    assert "notes.txt" not in manifest.records()


def test_removing_an_uploaded_file_deletes_the_servers_copy_not_a_users_file(corpus, settings, fake):
    """DELETE /v1/collections/hr/documents/salaries.md removed the chunks and left the upload's
    bytes under the data dir (operations walkthrough)."""
    uploaded = settings.path("uploads", "corpus") / "salaries.md"
    uploaded.parent.mkdir(parents=True)
    uploaded.write_text("# Salaries\n\nThe bands are confidential.\n")
    ingest_paths([corpus.root, uploaded], settings, fake)
    report = remove_paths(["salaries.md", "notes.txt"], settings, fake)
    assert _statuses(report) == {"salaries.md": Status.REMOVED, "notes.txt": Status.REMOVED}
    assert not uploaded.exists() and corpus.path("notes.txt").exists()  # the user's own file stays


def test_an_uploaded_file_is_deleted_also_after_the_data_dir_moved(corpus, settings, fake, tmp_path):
    uploaded = settings.path("uploads", "corpus") / "salaries.md"
    uploaded.parent.mkdir(parents=True)
    uploaded.write_text("# Salaries\n\nThe bands are confidential.\n")
    ingest_paths([uploaded], settings, fake)
    moved = settings.model_copy(update={"data_dir": tmp_path / "moved"})
    settings.data_dir.rename(moved.data_dir)
    assert remove_paths(["salaries.md"], moved, fake).files[0].status == Status.REMOVED
    assert not (moved.data_dir / "uploads" / "corpus" / "salaries.md").exists()


def test_single_file_and_collection_option(corpus, settings, fake):
    report = ingest_paths([corpus.path("sub/limits.pdf")], settings, fake, collection="one-file")
    assert _statuses(report) == {"limits.pdf": Status.ADDED}
    assert {c.source for c in Store(settings, fake.embedding_id, "one-file").chunks()} == {"limits.pdf"}


def test_a_second_concurrent_run_is_refused(corpus, settings, fake):
    from ingest.pipeline import run_lock

    with run_lock(settings, "corpus"), pytest.raises(GemragError, match="Another ingest"):
        ingest_paths([corpus.root], settings, fake)


def test_a_run_told_to_wait_for_another_on_its_collection_does_so_and_then_ingests(corpus, settings, fake):
    """An upload in the UI while a CLI run or an API job held its collection was refused, to
    be sent again; a run given a LockWait waits, saying how long, up to its bound."""
    from ingest.pipeline import LockWait, run_lock

    waited: list[float] = []
    other = threading.Event()
    with run_lock(settings, "corpus"):
        with pytest.raises(GemragError, match=r"Another ingest .* \(waited \d+ s\)"):
            ingest_paths([corpus.root], settings, fake, wait=LockWait(0.6, waited.append))
        assert waited and waited == sorted(waited)  # told at each look, the seconds growing
        reports = []
        patient = LockWait(None, lambda _: other.set())  # as long as it takes
        run = threading.Thread(target=lambda: reports.append(ingest_paths([corpus.root], settings, fake, wait=patient)))
        run.start()
        assert other.wait(10)  # it waits while the other run holds the collection ...
        assert not reports
    run.join(10)  # ... and ingests once it is done
    assert [r.count(Status.ADDED) for r in reports] == [len(GOOD)]


def test_a_bad_collection_name_is_refused_before_any_lock_file_is_made(corpus, settings, fake):
    with pytest.raises(ConfigError, match=r"'\.\./notes' is not allowed"):
        ingest_paths([corpus.root], settings, fake, collection="../notes")
    assert not list(settings.data_dir.glob("ingest-*.lock"))


def test_the_version_only_goes_up_even_when_the_collection_is_dropped(corpus, settings, fake):
    first = ingest_paths([corpus.root], settings, fake)
    rebuilt = ingest_paths([corpus.root], settings, FakeEmbedder("other:hash:8"), rebuild=True)
    assert rebuilt.version > first.version  # caches keyed on the version must not see old answers
    drop_collection(settings, "corpus")  # dropped behind ingest's back
    again = ingest_paths([corpus.root], settings, fake)
    assert again.version > rebuilt.version and again.count(Status.ADDED) == 4


def test_a_file_with_its_size_and_mtime_unchanged_is_not_read_and_a_touched_one_is_hashed_once(
    corpus, settings, fake
):
    import os

    ingest_paths([corpus.root], settings, fake)
    notes = corpus.path("notes.txt")
    stat = notes.stat()
    old_time = stat.st_mtime_ns - 10**10
    os.utime(notes, ns=(old_time, old_time))  # touched: same content, another mtime
    first = ingest_paths([corpus.root], settings, fake)
    assert _statuses(first)["notes.txt"] is Status.UNCHANGED
    assert Manifest(settings.path(MANIFEST), "corpus").records()["notes.txt"].mtime_ns == old_time
    notes.write_text(notes.read_text().replace("proxy", "PROXY"))  # same size ...
    os.utime(notes, ns=(old_time, old_time))  # ... and mtime: by design, not read
    assert _statuses(ingest_paths([corpus.root], settings, fake))["notes.txt"] is Status.UNCHANGED


class HeldEmbedder(FakeEmbedder):
    """Holds every request until released, as a limiter waiting for its next minute does."""

    def __init__(self) -> None:
        super().__init__(embedding_model="gemini-embedding-001")
        self.release = threading.Event()

    def embed_documents(self, texts):
        assert self.release.wait(30), "never released"
        return super().embed_documents(texts)


def _run_held(settings, docs, monkeypatch) -> tuple[int, object]:
    """Ingest `docs` while the embedder holds its requests: how many files were read by the
    time reading stopped, then the finished run's report."""
    read: list[str] = []
    real_prepare = pipeline.prepare

    def counted(task, *args, **kwargs):
        read.append(task.file.source)
        return real_prepare(task, *args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare", counted)
    embedder = HeldEmbedder()
    done: list[object] = []
    run = threading.Thread(target=lambda: done.append(ingest_paths([docs], settings, embedder)))
    run.start()
    settled = -1
    while settled != len(read):  # reading has stopped when a second passes without a file read
        settled = len(read)
        time.sleep(1.0)
    embedder.release.set()
    run.join(60)
    return settled, done[0]


class GatedEmbedder(FakeEmbedder):
    """Answers its first `open_calls` requests, then holds the rest until `gate` opens."""

    def __init__(self, open_calls: int) -> None:
        super().__init__()
        self.open_calls = open_calls
        self.gate = threading.Event()
        self.started = 0
        self.lock = threading.Lock()

    def embed_documents(self, texts):
        with self.lock:
            self.started += 1
            held = self.started > self.open_calls
        if held:
            assert self.gate.wait(10), "nothing was stored while the window's last batches embedded"
        return super().embed_documents(texts)


def test_a_window_is_stored_in_parts_while_its_last_batches_still_embed(settings, tmp_path, monkeypatch):
    """The last window would otherwise be written whole after the embedder has finished:
    its first batches' chunks go to the store while the others embed, and the file is
    committed once, when all are stored."""
    docs = tmp_path / "docs"
    docs.mkdir()
    sections = "\n\n".join(f"## Topic {i}\n\nThe {i}th fact is that value {i} holds." for i in range(100))
    (docs / "long.md").write_text(f"# Facts\n\n{sections}\n")
    embedder = GatedEmbedder(open_calls=pipeline.STORE_STEP // pipeline.OFFLINE_EMBED_STEP)
    stored: list[int] = []
    real_upsert = Store.upsert

    def upsert(self, chunks, vectors):
        stored.append(len(chunks))
        real_upsert(self, chunks, vectors)
        embedder.gate.set()

    monkeypatch.setattr(Store, "upsert", upsert)
    report = ingest_paths([docs], settings, embedder)
    assert report.exit_code == 0 and report.count(Status.ADDED) == 1
    assert stored[0] == pipeline.STORE_STEP and len(stored) > 1  # a part first, the rest after
    assert sum(stored) == report.embedded_chunks >= 100
    assert Store(settings, embedder.embedding_id, report.collection).count() == report.embedded_chunks


def test_progress_names_the_file_whose_chunks_are_embedding_before_it_is_done(settings, fake, tmp_path):
    """A big file embeds for minutes before it counts as done: the bar must name it meanwhile."""
    docs = tmp_path / "docs"
    docs.mkdir()
    sections = "\n\n".join(f"## Topic {i}\n\nThe {i}th fact is that value {i} holds." for i in range(100))
    (docs / "long.md").write_text(f"# Facts\n\n{sections}\n")
    events: list[Progress] = []
    report = ingest_paths([docs], settings, fake, on_progress=events.append)
    assert report.exit_code == 0 and report.embedded_chunks > pipeline.OFFLINE_EMBED_STEP
    embedding = [e for e in events if e.files_done == 0 and e.chunks_done]
    assert len(embedding) > 1 and all(e.current == "long.md" for e in embedding)
    # Named from the moment it is read, before any count moves; none once all are read.
    assert events[0].reading == "long.md" and events[0].chunks_total == 0
    assert events[-1].reading == "" and events[-1].files_done == 1


class WarmingEmbedder(FakeEmbedder):
    """A local model's shape: `warm_up` loads it (here: records when), and embedding waits
    for it; `fail` makes the load raise, as a missing model file would."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.warmed: list[str] = []  # the thread each warm-up ran on
        self.loaded = threading.Event()

    def warm_up(self) -> None:
        self.warmed.append(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("model file missing")
        time.sleep(0.2)
        self.loaded.set()

    def embed_documents(self, texts):
        assert self.loaded.wait(5), "embedded before the model was loaded"
        return super().embed_documents(texts)


def test_a_local_model_starts_loading_when_there_are_files_to_read_and_not_on_an_unchanged_rerun(corpus, settings):
    embedder = WarmingEmbedder()
    report = ingest_paths([corpus.root], settings, embedder)
    assert report.exit_code == 0 and report.count(Status.ADDED) == len(GOOD)
    assert len(embedder.warmed) == 1 and embedder.warmed[0].startswith("ingest-embed")  # off the reading thread
    again = ingest_paths([corpus.root], settings, embedder)
    assert again.exit_code == 0 and len(embedder.warmed) == 1  # nothing to read: nothing loaded


def test_a_failing_warm_up_is_left_to_the_first_batch(corpus, settings):
    """A load that fails early is not reported on its own: the embedder's first call meets
    the same problem and the run reports it there (here it does not, and the run succeeds)."""
    embedder = WarmingEmbedder(fail=True)
    embedder.loaded.set()
    report = ingest_paths([corpus.root], settings, embedder)
    assert embedder.warmed and report.exit_code == 0 and report.count(Status.ADDED) == len(GOOD)


def test_a_warm_up_failure_is_reported_by_the_first_batch_that_meets_it(corpus, settings):
    class Missing(WarmingEmbedder):
        def embed_documents(self, texts):
            raise ProviderError("the offline model is not installed")

    report = ingest_paths([corpus.root], settings, Missing(fail=True))
    assert "the offline model is not installed" in (report.stopped or "") and report.exit_code != 0
    assert report.count(Status.ADDED) == 0


def _one_chunk_files(root, n: int):
    root.mkdir()
    for i in range(n):
        (root / f"note-{i:02}.md").write_text(f"# Note {i}\n\nThe {i}th fact about topic {i} is recorded here.\n")
    return root


def test_under_a_requests_per_minute_limit_files_are_read_ahead_while_requests_wait(settings, tmp_path, monkeypatch):
    """A limiter holding requests until its minute reopens must not stop the reading: the
    next minute's requests should be ready when it does (up to a minute of requests ahead)."""
    docs = _one_chunk_files(tmp_path / "docs", 40)
    limited = Settings(data_dir=settings.data_dir, api_key=None, ingest_batch_chunks=2, tier="tier1",
                       models={"gemini-embedding-001": {"limits": {"tier1": {"rpm": 3, "tpm": None, "rpd": None}}}})
    read, report = _run_held(limited, docs, monkeypatch)
    assert read == 40  # a minute at 3 requests/min is 3 requests of 16 texts (this fake's batch) ahead: every file
    assert report.exit_code == 0 and report.count(Status.ADDED) == 40


def test_without_a_rate_limit_reading_stays_a_few_files_ahead(settings, tmp_path, monkeypatch):
    """Offline the embedder is the slow step: reading further ahead would only hold memory."""
    docs = _one_chunk_files(tmp_path / "docs", 40)
    read, report = _run_held(settings.model_copy(update={"ingest_batch_chunks": 2}), docs, monkeypatch)
    assert read <= 2 * 2 + pipeline.PREFETCH_FILES + 2  # two windows, the prefetch queue, one in hand
    assert report.exit_code == 0 and report.count(Status.ADDED) == 40


def test_an_edit_that_ends_the_sentence_before_a_chunk_clears_its_lead(settings, fake, tmp_path):
    """The chunk's own text, hence its id, is unchanged and it is reused; its lead (the start of
    its sentence, rag.sentences) is gone from the edited text, so it must be gone from the store."""
    from rag.settings import ChunkProfile

    small = settings.model_copy(update={"chunk_profiles": {
        **settings.chunk_profiles, fake.name: ChunkProfile(size_tokens=30, overlap_tokens=10)}})
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "\n".join(f"Step {i} of the routine reads the matrix and then" if i % 2 == 0 else "writes the basis."
                     for i in range(40)) + "\n"
    (docs / "m.txt").write_text(text)
    ingest_paths([docs], small, fake)
    led = min((c for c in Store(small, fake.embedding_id).chunks() if c.lead), key=lambda c: c.index)
    (docs / "m.txt").write_text(text[: led.start - 1] + "." + text[led.start - 1 :])
    report = ingest_paths([docs], small, fake)
    assert report.reused_chunks > 0
    stored = {c.id: c for c in Store(small, fake.embedding_id).chunks()}
    assert led.id in stored and stored[led.id].lead == ""
    fresh = small.model_copy(update={"data_dir": small.data_dir.parent / "fresh"})
    ingest_paths([docs], fresh, FakeEmbedder())
    assert snapshot(small, fake.embedding_id).chunks == snapshot(fresh, fake.embedding_id).chunks


def _sources_stored(settings, fake):
    return {c.source for c in Store(settings, fake.embedding_id).chunks()}


def test_a_deleted_link_loses_its_chunks_with_prune_though_its_target_is_still_there(corpus, settings, fake):
    hidden = corpus.root / ".drafts"
    hidden.mkdir()
    (hidden / "plan.md").write_text("# Plan\n\nThe crab Oxbellow leads the parade.\n")
    (corpus.root / "drafts").symlink_to(".drafts")  # the only way in: the walk follows it
    (corpus.root / "plan-link.md").symlink_to(".drafts/plan.md")
    ingest_paths([corpus.root], settings, fake)
    assert {"drafts/plan.md"} <= _sources_stored(settings, fake)
    (corpus.root / "drafts").unlink()
    kept = ingest_paths([corpus.root], settings, fake)  # now the file link is the way in
    assert _statuses(kept)["plan-link.md"] is Status.ADDED
    assert kept.notes == ["1 file ingested before is gone from the folder but still in the collection "
                          "(drafts/plan.md); --prune removes it"]
    (corpus.root / "plan-link.md").unlink()
    pruned = ingest_paths([corpus.root], settings, fake, prune=True)
    assert {s for s, st in _statuses(pruned).items() if st is Status.REMOVED} == {"drafts/plan.md", "plan-link.md"}
    assert _sources_stored(settings, fake) == set(GOOD)


def test_a_link_stored_before_its_target_was_read_gives_way_to_the_real_name_with_prune(corpus, settings, fake):
    (corpus.root / ".plan.md").write_text("# Plan\n\nThe crab Oxbellow leads the parade.\n")
    (corpus.root / "plan.md").symlink_to(".plan.md")
    ingest_paths([corpus.root], settings, fake)
    assert "plan.md" in _sources_stored(settings, fake)
    hidden = Filters(include_hidden=True)  # the target is read under its own name now
    kept = ingest_paths([corpus.root], settings, fake, filters=hidden)
    assert _statuses(kept)[".plan.md"] is Status.ADDED and _statuses(kept)["plan.md"] is Status.SKIPPED
    assert kept.notes == ["1 file ingested before through a link to what is now read under its real name is "
                          "still in the collection (plan.md); --prune removes it"]
    pruned = ingest_paths([corpus.root], settings, fake, filters=hidden, prune=True)
    assert _statuses(pruned)["plan.md"] is Status.REMOVED
    assert _sources_stored(settings, fake) == {*GOOD, ".plan.md"}


def test_a_link_to_a_file_of_the_folder_is_stored_once_under_the_real_name(corpus, settings, fake):
    (corpus.root / "a-guide.md").symlink_to("guide.md")
    (corpus.root / "all").symlink_to(".")
    report = ingest_paths([corpus.root], settings, fake)
    assert _statuses(report)["a-guide.md"] is Status.SKIPPED and _statuses(report)["all/"] is Status.SKIPPED
    assert _sources_stored(settings, fake) == set(GOOD) and report.exit_code == 0


@pytest.mark.parametrize("spoil", ["empty", "binary", "too large"])
def test_a_file_that_cannot_be_read_any_more_keeps_its_chunks_until_prune_removes_them(
        corpus, settings, fake, spoil):
    ingest_paths([corpus.root], settings, fake)
    notes = corpus.path("notes.txt")
    if spoil == "empty":
        notes.write_text("")
    elif spoil == "binary":
        notes.write_bytes(bytes(range(256)) * 4)
    else:
        notes.write_text("large " * 1000)
        settings = settings.model_copy(update={"max_file_mb": 0.005})
    kept = ingest_paths([corpus.root], settings, fake)
    [failed] = kept.of(Status.FAILED)
    assert failed.source == "notes.txt" and kept.exit_code == 1
    assert failed.reason.endswith("; its previous version stays in the collection; --prune removes it")
    assert "notes.txt" in _sources_stored(settings, fake)
    dry = ingest_paths([corpus.root], settings, fake, prune=True, dry_run=True)
    assert _statuses(dry)["notes.txt"] is Status.REMOVED
    pruned = ingest_paths([corpus.root], settings, fake, prune=True)
    assert [f.status for f in pruned.files if f.source == "notes.txt"] == [Status.FAILED, Status.REMOVED]
    assert "--prune" not in pruned.of(Status.FAILED)[0].reason and pruned.version > kept.version
    assert _sources_stored(settings, fake) == set(GOOD) - {"notes.txt"}
    assert "notes.txt" not in snapshot(settings, fake.embedding_id).files


def test_prune_on_a_deleted_folder_removes_its_files_and_is_no_failure(corpus, settings, fake):
    ingest_paths([corpus.root], settings, fake)
    for path in sorted(corpus.root.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    corpus.root.rmdir()
    report = ingest_paths([corpus.root], settings, fake, prune=True)
    assert report.count(Status.REMOVED) == 4 and not report.of(Status.FAILED) and report.exit_code == 0
    assert report.notes == [f"{corpus.root} no longer exists: 4 files ingested from it were removed"]
    again = ingest_paths([corpus.root], settings, fake, prune=True)  # nothing left to remove: a mistyped path
    assert again.of(Status.FAILED)[0].reason == "no such file or folder" and again.exit_code == 1


def test_a_file_just_over_the_size_limit_says_by_how_much(corpus, settings, fake):
    settings = settings.model_copy(update={"max_file_mb": 0.005})
    corpus.path("big.txt").write_text("x" * 5243)  # 0.005 MB is 5,242 bytes (rounded down)
    [failed] = ingest_paths([corpus.root], settings, fake).of(Status.FAILED)
    assert failed.reason == "5,243 bytes is over the 0.005 MB limit (5,242 bytes; GEMRAG_MAX_FILE_MB)"


def test_a_newline_in_a_file_name_is_stored_written_out(corpus, settings, fake):
    (corpus.root / "bad\nname.md").write_text("# Odd\n\nA file with a newline in its name.\n")
    report = ingest_paths([corpus.root], settings, fake)
    assert _statuses(report)["bad\\nname.md"] is Status.ADDED
    assert "bad\\nname.md" in _sources_stored(settings, fake)


def test_a_folder_inside_one_ingested_before_is_not_stored_twice(tmp_path, settings, fake):
    """`ingest docs`, then `ingest docs/notes`: every file of notes/ was stored again under a
    shorter name, silently, and answers cited each twice ("notes/a.md" and "a.md")."""
    docs = tmp_path / "docs"
    (docs / "notes").mkdir(parents=True)
    (docs / "top.md").write_text("# Top\n\nThe gateway timeout is 30 seconds.\n")
    (docs / "notes" / "a.md").write_text("# A\n\nReleases ship on Tuesdays.\n")
    ingest_paths([docs], settings, fake)

    inner = ingest_paths([docs / "notes"], settings, fake)

    [outcome] = inner.files
    assert (outcome.source, outcome.status) == ("a.md", Status.SKIPPED)
    assert outcome.reason == (f"already in the collection as notes/a.md, ingested from {docs}; "
                              "ingest that folder again to update it")
    assert sorted(c.source for c in Store(settings, fake.embedding_id).chunks()) == ["notes/a.md", "top.md"]
    assert inner.exit_code == 0


def test_a_file_named_on_its_own_after_its_folder_is_updated_under_its_name(tmp_path, settings, fake):
    """`ingest docs` then `ingest docs/a.md`: the same stored name, so the file is updated in
    place, as before the check for folders inside ingested ones (which skipped it)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nReleases ship on Tuesdays.\n")
    ingest_paths([docs], settings, fake)
    (docs / "a.md").write_text("# A\n\nReleases ship on Thursdays.\n")
    report = ingest_paths([docs / "a.md"], settings, fake)
    assert [(f.source, f.status) for f in report.files] == [("a.md", Status.UPDATED)]
    assert ["Releases ship on Thursdays." in c.text for c in Store(settings, fake.embedding_id).chunks()] == [True]


def test_a_stop_while_reading_keeps_the_windows_already_embedded(tmp_path, settings, fake, monkeypatch):
    """A budget refusing a figure's call stops the reader: the windows read before it were
    embedded and paid for, but dropped, and the next run embedded them (and paid) again."""
    from rag.errors import BudgetExceeded

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"f{i:02}.md").write_text(f"# File {i}\n\n" + " ".join(
            f"Sentence {i}-{j} about topic {j}." for j in range(40)) + "\n")
    small = settings.model_copy(update={"ingest_batch_chunks": 2})
    prepare, read = pipeline.prepare, []

    def refusing(task, chunker, vision):
        read.append(task)
        if len(read) == 8:
            raise BudgetExceeded("The daily budget would be exceeded")
        return prepare(task, chunker, vision)

    monkeypatch.setattr(pipeline, "prepare", refusing)
    report = ingest_paths([docs], small, fake)
    assert report.stopped and report.exit_code == 2
    embedded = {t for call in fake.calls for t in call}
    stored = {c.embedded_text for c in Store(small, fake.embedding_id).chunks()}
    assert embedded and embedded <= stored  # nothing paid for and then dropped


def test_a_dry_run_creates_no_collection_to_compare_with(tmp_path, settings, fake):
    """A dry run over a manifest whose collection was dropped made the collection (and an
    embedded store) while saying "nothing was written" (review)."""
    from rag.store import recorded_embedder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nReleases ship on Tuesdays.\n")
    ingest_paths([docs], settings, fake)
    drop_collection(settings, "corpus")
    (docs / "b.md").write_text("# B\n\nReleases ship on Tuesdays.\n")
    dry = ingest_paths([docs], settings, fake, dry_run=True)
    assert dry.dry_run and recorded_embedder(settings, "corpus") is None


def _refused(settings) -> list[str]:
    """The files the manifest remembers as refused, whatever the settings they were refused under."""
    return [source for (source,) in Manifest(settings.path(MANIFEST), "corpus").db.execute(
        "SELECT source FROM refusals ORDER BY source")]


def test_a_file_refused_for_its_size_in_chunks_is_not_read_again_until_it_or_the_limit_changes(
    settings, fake, tmp_path, monkeypatch
):
    import os

    docs = tmp_path / "refused"
    docs.mkdir()
    big, small = docs / "big.md", docs / "small.md"
    big.write_text("\n\n".join(f"Paragraph {i}: " + "words of a long report " * 40 for i in range(30)))
    small.write_text("# Small\n\nA short note.\n")
    old = time.time_ns() - 10**11  # a recent mtime is never trusted (`trusted_stat`)
    for path in (big, small):
        os.utime(path, ns=(old, old))
    reads: list[int] = []
    real_read = pipeline.read
    monkeypatch.setattr(pipeline, "read", lambda data, kind, vision=None: reads.append(len(data)) or
                        real_read(data, kind, vision))
    strict = settings.model_copy(update={"max_chunks_per_file": 5})

    first = ingest_paths([docs], strict, fake)
    assert _statuses(first) == {"big.md": Status.FAILED, "small.md": Status.ADDED}
    assert len(reads) == 2
    assert _refused(settings) == ["big.md"]

    reads.clear()
    again = ingest_paths([docs], strict, fake)
    dry = ingest_paths([docs], strict, fake, dry_run=True)
    assert reads == []  # neither run read it
    for report in (again, dry):
        (failed,) = report.of(Status.FAILED)
        assert failed.source == "big.md"
        assert failed.reason.startswith("yields more than 5 chunks") and pipeline.REFUSED_BEFORE in failed.reason

    release = pipeline.rag.__version__
    monkeypatch.setattr(pipeline.rag, "__version__", "99.0")  # an upgrade may read or chunk it otherwise
    upgraded = ingest_paths([docs], strict, fake)
    (failed,) = upgraded.of(Status.FAILED)
    assert pipeline.REFUSED_BEFORE not in failed.reason and len(reads) == 1  # read again
    monkeypatch.setattr(pipeline.rag, "__version__", release)
    reads.clear()

    lenient = ingest_paths([docs], settings, fake)  # the limit raised: read again, and ingested
    assert _statuses(lenient)["big.md"] is Status.ADDED and len(reads) == 1
    assert _refused(settings) == []  # ingested: forgotten

    big.write_text(big.read_text() + "\n\nOne more paragraph.")  # changed: read again under the strict limit
    os.utime(big, ns=(old, old + 1))
    changed = ingest_paths([docs], strict, fake)
    (failed,) = changed.of(Status.FAILED)
    assert pipeline.REFUSED_BEFORE not in failed.reason and pipeline.STALE_HINT in failed.reason
    assert len(reads) == 2


def test_an_image_nothing_here_can_read_is_not_read_again_until_it_or_the_reader_changes(
    settings, fake, tmp_path, monkeypatch
):
    """A photo offline is skipped after Tesseract found no words in it: each unchanged run
    read it again (gnuplot's doc folder: 12 such images made 1.65 s of a 2.1 s re-run)."""
    import os

    from PIL import Image

    docs = tmp_path / "photos"
    docs.mkdir()
    Image.new("RGB", (64, 48), (40, 120, 200)).save(docs / "sky.png")
    old = time.time_ns() - 10**11
    os.utime(docs / "sky.png", ns=(old, old))
    reads: list[int] = []
    real_read = pipeline.read
    monkeypatch.setattr(pipeline, "read", lambda data, kind, vision=None: reads.append(len(data)) or
                        real_read(data, kind, vision))

    first = ingest_paths([docs], settings, fake)
    (skipped,) = first.of(Status.SKIPPED)
    assert skipped.source == "sky.png" and skipped.reason.startswith("an image") and len(reads) == 1
    again = ingest_paths([docs], settings, fake)
    (skipped,) = again.of(Status.SKIPPED)
    assert pipeline.REFUSED_BEFORE in skipped.reason and len(reads) == 1  # not read: skipped as before
    assert again.exit_code == 0  # a skipped file is no failure, remembered or not
    other_ocr = settings.model_copy(update={"ocr_min_words": settings.ocr_min_words + 1})
    ingest_paths([docs], other_ocr, fake)  # another reader (if Tesseract is here): read again
    assert len(reads) == (2 if pipeline.Vision(other_ocr, None).tesseract else 1)


def test_an_image_gemini_gave_no_text_for_is_asked_about_again_on_the_next_run(settings, fake, tmp_path):
    """An empty reply may be a hiccup (`Vision` keeps no empty description): remembered as
    unreadable, the image stayed out for good (a review's repro)."""
    import os

    from PIL import Image

    from rag.types import Generation, Usage

    class Hiccup:
        """Gemini giving an empty reply once, then a description."""

        online = True
        name = "gemini"

        def __init__(self) -> None:
            self.calls = 0

        def generate(self, prompt, model=None, **kw):
            self.calls += 1
            text = "" if self.calls == 1 else "A blue sky over a field."
            return Generation(text=text, usage=Usage(prompt_tokens=10, output_tokens=5), model=model or "m")

    docs = tmp_path / "photos"
    docs.mkdir()
    Image.new("RGB", (640, 480), (40, 120, 200)).save(docs / "sky.png")
    old = time.time_ns() - 10**11
    os.utime(docs / "sky.png", ns=(old, old))
    online = settings.model_copy(update={"figure_min_pixels": 1})
    gemini = Hiccup()
    first = ingest_paths([docs], online, fake, generator=gemini)
    assert [(f.status, f.reason) for f in first.files] == [(Status.SKIPPED, "Gemini gave no description")]
    again = ingest_paths([docs], online, fake, generator=gemini)
    assert gemini.calls == 2 and again.count(Status.ADDED) == 1
