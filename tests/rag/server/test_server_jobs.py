"""Ingest through the API: uploads and folders become jobs that a worker runs; progress as
JSON and SSE; removal of one document; roles; no queue without Redis; uploads of one name at
once, and beside the UI's."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.pipeline import run_lock
from rag.providers import Embedders
from rag.server.app import create_app
from rag.server.auth import new_key
from rag.settings import Settings
from rag.store import Store
from rag.stores import embedder_for
from rag.uploads import INCOMING, upload_dir
from tests.fakes.worker import start_worker, wait_job
from tests.ingest.conftest import billed_embeddings
from ui.preview import locate
from ui.uploads import ingest_uploads

HANDBOOK = "# Leave\n\nEvery employee gets 27 days of paid vacation per calendar year.\n"
NOTES = "# Parking\n\nThe parking garage opens at 6 am and closes at 11 pm.\n"
HANDBOOK_2027 = "# Leave\n\nFrom 2027 every employee gets 30 days of paid vacation per calendar year.\n"


@pytest.fixture
def keyed_settings(gemini_settings, redis_url, chroma_server_url, tmp_path):
    keys, lines = {}, []
    for name, role in (("reader", "ask"), ("loader", "ingest"), ("ops", "admin")):
        keys[name], line = new_key(name, role)
        lines.append(line)
    settings = gemini_settings.model_copy(update={
        "redis_url": redis_url, "chroma_url": chroma_server_url, "api_keys": ",".join(lines),
        "collection": f"upl-{uuid.uuid4().hex[:12]}"})
    return settings, {name: {"X-API-Key": key} for name, key in keys.items()}


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.chroma_server
def test_upload_job_progress_answer_and_delete(keyed_settings, fake_gemini, tmp_path):
    settings, keys = keyed_settings
    name = settings.collection
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with TestClient(create_app(settings, mounts=[])) as api:
            files = [("files", ("../../handbook.md", HANDBOOK.encode())), ("files", ("notes.md", NOTES.encode()))]
            assert api.post(f"/v1/collections/{name}/documents", files=files, headers=keys["reader"]).status_code == 403
            job = api.post(f"/v1/collections/{name}/documents", files=files, headers=keys["loader"])
            assert job.status_code == 202
            with api.stream("GET", f"/v1/jobs/{job.json()['id']}",
                            headers={**keys["loader"], "Accept": "text/event-stream"}) as stream:
                progress = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
            assert progress[-1]["state"] == "done" and progress[-1]["outcomes"] == {"added": 2}
            assert api.get(f"/v1/jobs/{job.json()['id']}", headers=keys["reader"]).status_code == 404  # not theirs

            fake_gemini.reply("Every employee gets 27 days [1].")
            answer = api.post("/v1/ask", json={"question": "How many vacation days?", "collection": name,
                                               "stream": False}, headers=keys["reader"]).json()
            assert answer["citations"][0]["source"] == "handbook.md"  # the safe name, not the path sent

            before = next(c for c in api.get("/v1/collections", headers=keys["reader"]).json() if c["name"] == name)
            gone = api.delete(f"/v1/collections/{name}/documents/handbook.md", headers=keys["loader"]).json()
            assert wait_job(api, gone["id"], lambda j: j["state"] == "done", headers=keys["loader"])["outcomes"] \
                == {"removed": 1}
            [collection] = [c for c in api.get("/v1/collections", headers=keys["reader"]).json() if c["name"] == name]
            assert before["chunks"] == 2 and collection["chunks"] == 1 and collection["version"] > before["version"]
            metrics = api.get("/metrics").text
            assert 'gemrag_jobs{state="done"} 2.0' in metrics and "gemrag_job_queue_depth 0.0" in metrics
    finally:
        worker.terminate()
        worker.wait(10)


@pytest.mark.redis
def test_folder_ingest_is_admin_only_and_must_exist(keyed_settings, tmp_path):
    settings, keys = keyed_settings
    with TestClient(create_app(settings, mounts=[])) as api:
        url = f"/v1/collections/{settings.collection}/ingest"
        assert api.post(url, json={"path": str(tmp_path)}, headers=keys["loader"]).status_code == 403
        missing = api.post(url, json={"path": str(tmp_path / "nope")}, headers=keys["ops"])
        assert missing.status_code == 422 and "nope" in missing.json()["message"]
        assert [f["field"] for f in missing.json()["fields"]] == ["body.path"]
        assert api.post(url, json={"path": str(tmp_path)}, headers=keys["ops"]).json()["state"] == "queued"
        bad = api.post("/v1/collections/x/ingest", json={"path": str(tmp_path)}, headers=keys["ops"])
        assert bad.status_code == 400 and "'x' is not allowed" in bad.json()["message"]


def test_without_redis_jobs_are_unavailable_and_say_why(settings, tmp_path):
    with TestClient(create_app(settings, mounts=[])) as api:
        refused = api.post("/v1/collections/corpus/ingest", json={"path": str(tmp_path)})
        assert refused.status_code == 503 and "REDIS_URL" in refused.json()["message"]


def finished(job: dict) -> bool:
    return job["state"] in ("done", "failed")


def stored_texts(settings: Settings) -> list[str]:
    embedder = embedder_for(settings, settings.collection, Embedders(settings))
    return [c.text for c in Store(settings, embedder.embedding_id, settings.collection).chunks()]


def waiting(settings: Settings) -> list[Path]:
    """The uploads in `.incoming`, not yet moved onto their names by their job."""
    return sorted((upload_dir(settings, settings.collection) / INCOMING).glob("*/*"))


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.chroma_server
def test_two_uploads_of_one_name_at_once_each_ingest_their_own_bytes(keyed_settings, fake_gemini, tmp_path):
    settings, keys = keyed_settings
    name = settings.collection
    stored = upload_dir(settings, name) / "handbook.md"
    with TestClient(create_app(settings, mounts=[])) as api:
        ids = [api.post(f"/v1/collections/{name}/documents", files=[("files", ("handbook.md", text.encode()))],
                        headers=keys["loader"]).json()["id"] for text in (HANDBOOK, HANDBOOK_2027)]
        assert len(waiting(settings)) == 2 and not stored.exists()  # both queued before either job ran
        worker = start_worker(settings, tmp_path / "worker.log")
        try:
            first, second = (wait_job(api, i, finished, headers=keys["loader"]) for i in ids)
        finally:
            worker.terminate()
            worker.wait(10)
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


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.chroma_server
def test_an_api_upload_replaces_a_ui_upload_of_the_same_name(keyed_settings, fake_gemini, tmp_path):
    settings, keys = keyed_settings
    name = settings.collection
    browser = tmp_path / "browser" / "handbook.md"
    browser.parent.mkdir()
    browser.write_text(HANDBOOK)
    ui = ingest_uploads([browser], settings, embedder_for(settings, name, Embedders(settings)), name)
    assert ui.report is not None and [f.status.value for f in ui.report.files] == ["added"]
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with TestClient(create_app(settings, mounts=[])) as api:
            outcomes = []
            for text in (HANDBOOK, HANDBOOK_2027):
                job = api.post(f"/v1/collections/{name}/documents", files=[("files", ("handbook.md", text.encode()))],
                               headers=keys["loader"]).json()
                outcomes.append(wait_job(api, job["id"], finished, headers=keys["loader"])["outcomes"])
    finally:
        worker.terminate()
        worker.wait(10)
    assert outcomes == [{"unchanged": 1}, {"updated": 1}]
    assert ["30 days" in t for t in stored_texts(settings)] == [True]
    path, _ = locate(settings, name, "handbook.md")
    assert path == upload_dir(settings, name) / "handbook.md" and path.read_text() == HANDBOOK_2027
    assert waiting(settings) == []


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.chroma_server
def test_nothing_waits_in_incoming_once_a_job_is_over_whatever_its_outcome(keyed_settings, fake_gemini, tmp_path):
    settings, keys = keyed_settings
    settings = settings.model_copy(update={"job_max_retries": 0})  # a refused run fails at once
    name = settings.collection
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        with TestClient(create_app(settings, mounts=[])) as api:
            refused = api.post(f"/v1/collections/{name}/documents", headers=keys["loader"],
                               files=[("files", ("empty.md", b"")), ("files", ("tool.exe", b"MZ"))]).json()
            job = wait_job(api, refused["id"], finished, headers=keys["loader"])
            assert (job["state"], job["outcomes"]) == ("done", {"failed": 1, "skipped": 1})
            assert waiting(settings) == []

            with run_lock(settings, name):  # another ingest into the collection runs throughout
                failed = api.post(f"/v1/collections/{name}/documents", headers=keys["loader"],
                                  files=[("files", ("handbook.md", HANDBOOK.encode()))]).json()
                assert [p.name for p in waiting(settings)] == ["handbook.md"]
                job = wait_job(api, failed["id"], finished, headers=keys["loader"])
            assert job["state"] == "failed" and "Another ingest" in job["message"]
            assert waiting(settings) == [] and not (upload_dir(settings, name) / "handbook.md").exists()
    finally:
        worker.terminate()
        worker.wait(10)
