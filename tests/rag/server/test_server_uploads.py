"""Uploads through the API staged apart until their job moves them onto their names under the
collection's ingest lock (rag.uploads, ingest.uploads): two of one name queued at once, an
API upload after a UI upload of the name, and nothing left staged whatever a job's outcome.
Each test runs `python -m ingest.worker` against Redis and a Chroma server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ingest.pipeline import run_lock
from rag.filetypes import SUPPORTED
from rag.providers import Embedders
from rag.server.app import create_app
from rag.settings import Settings
from rag.store import Store
from rag.stores import embedder_for
from rag.uploads import INCOMING, UploadRejected, stored_names, upload_dir
from tests.fakes.worker import running_worker, wait_job
from tests.ingest.conftest import billed_embeddings
from ui.preview import locate
from ui.uploads import ingest_uploads

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.chroma_server]

HANDBOOK = "# Leave\n\nEvery employee gets 27 days of paid vacation per calendar year.\n"
HANDBOOK_2027 = "# Leave\n\nFrom 2027 every employee gets 30 days of paid vacation per calendar year.\n"


def finished(job: dict) -> bool:
    return job["state"] in ("done", "failed")


def stored_texts(settings: Settings) -> list[str]:
    embedder = embedder_for(settings, settings.collection, Embedders(settings))
    return [c.text for c in Store(settings, embedder.embedding_id, settings.collection).chunks()]


def upload(api: TestClient, settings: Settings, keys: dict, *files: tuple[str, bytes]) -> str:
    """One upload request of `files` (name, bytes) into the collection; its job's id."""
    return api.post(f"/v1/collections/{settings.collection}/documents", headers=keys["loader"],
                    files=[("files", f) for f in files]).json()["id"]


def waiting(settings: Settings) -> list[Path]:
    """The uploads in `.incoming`, not yet moved onto their names by their job."""
    return sorted((upload_dir(settings, settings.collection) / INCOMING).glob("*/*"))


def test_two_uploads_of_one_name_at_once_each_ingest_their_own_bytes(keyed_settings, fake_gemini, tmp_path):
    settings, keys = keyed_settings
    name = settings.collection
    stored = upload_dir(settings, name) / "handbook.md"
    with TestClient(create_app(settings, mounts=[])) as api:
        ids = [upload(api, settings, keys, ("handbook.md", text.encode())) for text in (HANDBOOK, HANDBOOK_2027)]
        assert len(waiting(settings)) == 2 and not stored.exists()  # both queued before either job ran
        with running_worker(settings, tmp_path / "worker.log"):
            first, second = (wait_job(api, i, finished, headers=keys["loader"]) for i in ids)
    assert (first["state"], first["outcomes"]) == ("done", {"added": 1})  # the first upload's bytes, as new
    assert (second["state"], second["outcomes"]) == ("done", {"updated": 1})  # then the second's, replacing them
    embedded = [text for request in billed_embeddings(fake_gemini) for text in request]
    assert [("27 days" in t, "30 days" in t) for t in embedded] == [(True, False), (False, True)]
    [chunk] = stored_texts(settings)
    assert "30 days" in chunk and "27 days" not in chunk  # the later upload stays, not a mix
    path, content_hash = locate(settings, name, "handbook.md")  # the UI's source preview finds it
    assert path == stored and path.read_text() == HANDBOOK_2027
    assert content_hash == hashlib.sha256(HANDBOOK_2027.encode()).hexdigest()
    assert waiting(settings) == []


def test_an_api_upload_replaces_a_ui_upload_of_the_same_name(keyed_settings, fake_gemini, tmp_path):
    settings, keys = keyed_settings
    name = settings.collection
    browser = tmp_path / "browser" / "handbook.md"
    browser.parent.mkdir()
    browser.write_text(HANDBOOK)
    ui = ingest_uploads([browser], settings, embedder_for(settings, name, Embedders(settings)), name)
    assert ui.report is not None and [f.status.value for f in ui.report.files] == ["added"]
    with running_worker(settings, tmp_path / "worker.log"), TestClient(create_app(settings, mounts=[])) as api:
        outcomes = [wait_job(api, upload(api, settings, keys, ("handbook.md", text.encode())), finished,
                             headers=keys["loader"])["outcomes"] for text in (HANDBOOK, HANDBOOK_2027)]
    assert outcomes == [{"unchanged": 1}, {"updated": 1}]
    assert ["30 days" in t for t in stored_texts(settings)] == [True]
    path, _ = locate(settings, name, "handbook.md")
    assert path == upload_dir(settings, name) / "handbook.md" and path.read_text() == HANDBOOK_2027
    assert waiting(settings) == []


def test_nothing_waits_in_incoming_once_a_job_is_over_whatever_its_outcome(keyed_settings, fake_gemini, tmp_path):
    settings, keys = keyed_settings
    settings = settings.model_copy(update={"job_max_retries": 0})  # a refused run fails at once
    name = settings.collection
    with running_worker(settings, tmp_path / "worker.log"), TestClient(create_app(settings, mounts=[])) as api:
        job = wait_job(api, upload(api, settings, keys, ("empty.md", b"")), finished, headers=keys["loader"])
        assert (job["state"], job["outcomes"]) == ("failed", {"failed": 1})
        assert waiting(settings) == []

        # Another ingest into the collection runs: the upload waits its turn, for as long as
        # that takes, without spending its one attempt (a busy collection was a failed attempt).
        with run_lock(settings, name):
            queued = upload(api, settings, keys, ("handbook.md", HANDBOOK.encode()))
            seen = 0.0
            for _ in range(3):  # looked at again and again (job_min_backoff_s is 1 s here)
                job = wait_job(api, queued, lambda j, after=seen: j["message"].startswith("waiting:")
                               and j["updated_at"] > after, headers=keys["loader"])
                seen = job["updated_at"]
            assert (job["state"], job["attempts"]) == ("queued", 0)
            assert f"another ingest into collection {name!r} is running" in job["message"]
            assert [p.name for p in waiting(settings)] == ["handbook.md"]
        job = wait_job(api, queued, finished, headers=keys["loader"])
        assert (job["state"], job["outcomes"], job["message"]) == ("done", {"added": 1}, "")
        assert ["27 days" in t for t in stored_texts(settings)] == [True]
        assert waiting(settings) == []
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


def test_an_upload_of_a_type_ingest_cannot_read_is_refused_by_name_before_anything_is_kept(keyed_settings):
    settings, keys = keyed_settings
    with TestClient(create_app(settings, mounts=[])) as api:
        refused = api.post(f"/v1/collections/{settings.collection}/documents", headers=keys["loader"],
                           files=[("files", ("notes.md", b"# Notes")), ("files", ("tool.exe", b"MZ")),
                                  ("files", ("README", b"text"))])
    assert refused.status_code == 422
    # Each named (only the first was: a client found the next by sending again), the types once.
    assert refused.json()["message"] == ("tool.exe: file type .exe is not supported; README: file type (none) is "
                                         f"not supported (use {', '.join(sorted(SUPPORTED))}).")
    with pytest.raises(UploadRejected, match=r"^\(a file sent without a name\): file type \(none\)"):
        stored_names([""])  # a part whose file name is empty (curl -F 'files=@x;filename=')
    assert refused.json()["fields"][0]["field"] == "body.files"
    assert waiting(settings) == [] and list(upload_dir(settings, settings.collection).iterdir()) == []


def test_two_files_one_upload_would_store_under_one_name_are_refused_naming_both(keyed_settings):
    """A review's repro: "a/x.md" and "b/x.md" were both accepted as "x.md"; the job
    ingested one, the second's bytes over the first's, and reported no error."""
    settings, keys = keyed_settings
    with TestClient(create_app(settings, mounts=[])) as api:
        refused = api.post(f"/v1/collections/{settings.collection}/documents", headers=keys["loader"],
                           files=[("files", ("a/x.md", b"# A")), ("files", ("b/x.md", b"# B"))])
    assert refused.status_code == 422
    assert refused.json()["message"] == ("a/x.md and b/x.md would both be stored as x.md; rename one (uploaded "
                                         "apart, the later would replace the other).")
    assert waiting(settings) == [] and list(upload_dir(settings, settings.collection).iterdir()) == []


def test_the_upload_limit_is_per_file_as_the_ui_says_and_a_file_past_it_is_refused_by_name(keyed_settings):
    """Two files of 0.6 of the limit each were a 413 for the whole request ("over the limit of
    20.06 MB"), though `max_upload_mb` is per file and the UI takes them."""
    settings, keys = keyed_settings
    settings = settings.model_copy(update={"max_upload_mb": 0.1, "max_upload_files": 3})
    part = b"# Notes\n\n" + b"x" * 60_000
    url = f"/v1/collections/{settings.collection}/documents"
    with TestClient(create_app(settings, mounts=[])) as api:
        taken = api.post(url, headers=keys["loader"], files=[("files", ("a.md", part)), ("files", ("dir\\b.md", part))])
        assert taken.status_code == 202 and taken.json()["files"] == ["a.md", "b.md"]  # each name as stored
        big = api.post(url, headers=keys["loader"],
                       files=[("files", ("a.md", part)), ("files", ("big.md", part + b"y" * 50_000))])
        assert big.status_code == 413 and big.json() == {
            "error": "file_too_large", "message": "big.md: over the limit of 0.1 MB per file (max_upload_mb)."}
        many = api.post(url, headers=keys["loader"], files=[("files", (f"{n}.md", b"# N")) for n in range(4)])
        assert many.status_code == 422 and many.json()["fields"][0]["field"] == "body.files"
        assert "at most 3 (max_upload_files)" in many.json()["message"]
        text = api.post(url, headers=keys["loader"], files=[("files", (None, "hello"))])  # a field, not a file
        assert text.status_code == 422 and text.json()["fields"] == [{
            "field": "body.files[0]",
            "reason": "must be a file, sent as a file part of the form (curl: -F files=@PATH)"}]
    staged = [p for p in (upload_dir(settings, settings.collection) / INCOMING).rglob("*") if p.is_file()]
    assert sorted(p.name for p in staged) == ["a.md", "b.md"]  # the first upload's only: the refused ones left nothing


def test_an_upload_the_ingest_refuses_leaves_the_stored_file_and_its_chunks_and_the_job_says_so(
    keyed_settings, fake_gemini, tmp_path
):
    """An empty file uploaded under the name of a stored one replaced it on disk while its
    chunks stayed searchable: the original was lost. Now the job names the file and why, and
    the previous version stays; a good upload after it still replaces it."""
    settings, keys = keyed_settings
    name = settings.collection
    stored = upload_dir(settings, name) / "handbook.md"
    with running_worker(settings, tmp_path / "worker.log"), TestClient(create_app(settings, mounts=[])) as api:
        def job(text: bytes) -> dict:
            return wait_job(api, upload(api, settings, keys, ("handbook.md", text)), finished, headers=keys["loader"])

        assert job(HANDBOOK.encode())["outcomes"] == {"added": 1}
        refused = job(b"")
        assert stored.read_text() == HANDBOOK and ["27 days" in t for t in stored_texts(settings)] == [True]
        assert (refused["state"], refused["outcomes"]) == ("failed", {"failed": 1})
        assert refused["message"] == "no file could be ingested: `errors` says why for each"
        reason = refused["errors"]["handbook.md"]
        assert reason.startswith("the upload of handbook.md was refused (the file is empty (0 bytes))")
        assert reason.endswith("the previous handbook.md stays, as stored and as searched")
        path, content_hash = locate(settings, name, "handbook.md")  # the source preview still opens it
        assert path == stored and content_hash == hashlib.sha256(HANDBOOK.encode()).hexdigest()
        assert waiting(settings) == []

        assert job(HANDBOOK_2027.encode())["outcomes"] == {"updated": 1}
    assert stored.read_text() == HANDBOOK_2027 and ["30 days" in t for t in stored_texts(settings)] == [True]


def test_an_upload_without_a_valid_key_is_refused_before_its_body_is_read(api_settings: Settings):
    """The upload limit (about 200 MB) applied before the key check: a client with no key made
    the server read 100 MB to answer 401."""
    import socket

    from rag.server.auth import new_key
    from tests.rag.server.conftest import serve_in_thread

    ask, ask_line = new_key("reader", "ask")
    ing, ing_line = new_key("ing", "ingest")
    elsewhere, elsewhere_line = new_key("team-b", "ingest", ["team-b"])
    settings = api_settings.model_copy(update={"api_keys": f"{ask_line},{ing_line},{elsewhere_line}",
                                               "key_rate_limit": "2/minute"})
    app = create_app(settings)

    def sent(header: bytes) -> str:
        with socket.create_connection((host, int(port)), timeout=5) as client:
            client.sendall(b"POST /v1/collections/corpus/documents HTTP/1.1\r\nHost: x\r\n" + header +
                           b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000000\r\n\r\n")
            return client.recv(4096).decode()  # no body sent: the reply comes first, or recv times out

    for url in serve_in_thread(app):
        host, port = url.removeprefix("http://").split(":")
        for key in (b"", b"Authorization: Bearer gr_not-a-key\r\n"):
            reply = sent(key)
            assert reply.startswith("HTTP/1.1 401") and "www-authenticate: bearer" in reply.lower(), reply
        assert sent(f"Authorization: Bearer {ask}\r\n".encode()).startswith("HTTP/1.1 403")  # an ask key
        assert sent(f"Authorization: Bearer {elsewhere}\r\n".encode()).startswith("HTTP/1.1 403")  # another team's
        files = {"files": ("note.md", b"# Note\n\nA note.\n")}
        for _ in range(2):  # counted once each, not by the check and the route both
            upload = httpx.post(f"{url}/v1/collections/corpus/documents", files=files, headers={"X-API-Key": ing})
            assert upload.status_code != 429, upload.text
        assert sent(f"Authorization: Bearer {ing}\r\n".encode()).startswith("HTTP/1.1 429")  # past its rate


def test_an_upload_over_the_whole_requests_limit_names_the_settings_that_make_it():
    """It named max_upload_mb alone, for a limit of max_upload_files of them (200.1 MB by
    default): a review's repro."""
    from starlette.responses import PlainTextResponse
    from starlette.testclient import TestClient

    from rag.server.guards import BodyLimit

    async def app(scope, receive, send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    limited = BodyLimit(app, default_bytes=64_000, upload_bytes=10 * 20 * 1024 * 1024 + 64_000, timeout_s=5)
    refused = TestClient(limited).post("/v1/collections/corpus/documents", content=b"x" * 10,
                                       headers={"content-length": str(10**10)})
    assert (refused.status_code, refused.json()) == (413, {
        "error": "body_too_large",
        "message": "The request body is over the limit of 200.1 MB (max_upload_files x max_upload_mb)."})
