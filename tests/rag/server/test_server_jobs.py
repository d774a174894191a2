"""Ingest through the API: uploads and folders become jobs that a worker runs; progress as
JSON and SSE; removal of one document; roles; no queue without Redis, or a queue that
fails to take a job or loses it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from rag.server.app import create_app
from tests.fakes.worker import start_worker, wait_job

HANDBOOK = "# Leave\n\nEvery employee gets 27 days of paid vacation per calendar year.\n"
NOTES = "# Parking\n\nThe parking garage opens at 6 am and closes at 11 pm.\n"


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

            listed = api.get(f"/v1/collections/{name}/documents", headers=keys["reader"]).json()["documents"]
            assert [(d["source"], d["chunks"]) for d in listed] == [("handbook.md", 1), ("notes.md", 1)]
            before = next(c for c in api.get("/v1/collections", headers=keys["reader"]).json() if c["name"] == name)
            gone = api.delete(f"/v1/collections/{name}/documents/handbook.md", headers=keys["loader"]).json()
            assert wait_job(api, gone["id"], lambda j: j["state"] == "done", headers=keys["loader"])["outcomes"] \
                == {"removed": 1}
            [collection] = [c for c in api.get("/v1/collections", headers=keys["reader"]).json() if c["name"] == name]
            assert before["chunks"] == 2 and collection["chunks"] == 1 and collection["version"] > before["version"]
            listed = api.get(f"/v1/collections/{name}/documents", headers=keys["reader"]).json()["documents"]
            assert [d["source"] for d in listed] == ["notes.md"]
            metrics = api.get("/metrics").text
            assert 'gemrag_jobs{state="done"} 2.0' in metrics and "gemrag_job_queue_depth 0.0" in metrics
            assert "gemrag_workers_alive 1.0" in metrics  # the worker beats (the server enqueues: not counted)
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
        for relative in ("", ".", "docs"):  # "" ingested the folder the worker ran in
            refused = api.post(url, json={"path": relative}, headers=keys["ops"])
            assert refused.status_code == 422 and refused.json()["fields"] == [
                {"field": "body.path", "reason": "must be an absolute path of a folder on the server"}]
        assert api.post(url, json={"path": str(tmp_path), "prune": "yes"}, headers=keys["ops"]).status_code == 422
        assert api.post(url, json={"path": str(tmp_path)}, headers=keys["ops"]).json()["state"] == "queued"
        bad = api.post("/v1/collections/x/ingest", json={"path": str(tmp_path)}, headers=keys["ops"])
        assert bad.status_code == 422 and "'x' is not allowed" in bad.json()["message"]


@pytest.mark.redis
def test_a_job_the_queue_could_not_take_is_a_503_that_leaves_nothing_behind(keyed_settings, monkeypatch, tmp_path):
    """The record was saved, then the enqueue failed (a Redis hiccup): the job stayed
    "queued" for good, its staged files gone, and the client got a 500 and no id."""
    import redis

    settings, keys = keyed_settings

    def hiccup(*args: object) -> None:
        raise redis.ConnectionError("Connection reset by peer")

    with TestClient(create_app(settings, mounts=[])) as api:
        monkeypatch.setattr(api.app.state.services.jobs.broker, "do_enqueue", hiccup)
        files = [("files", ("notes.md", NOTES.encode()))]
        refused = api.post(f"/v1/collections/{settings.collection}/documents", files=files, headers=keys["loader"])
        folder = api.post(f"/v1/collections/{settings.collection}/ingest", json={"path": str(tmp_path)},
                          headers=keys["ops"])
    for response in (refused, folder):
        assert response.status_code == 503 and response.json()["error"] == "queue_unavailable"
        assert "ConnectionError" in response.json()["message"] and "nothing was queued" in response.json()["message"]
    stored = redis.Redis.from_url(settings.redis_url)
    assert stored.keys("gemrag:job*") == []  # no record, in no state
    incoming = settings.data_dir / "uploads" / settings.collection / ".incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []


@pytest.mark.redis
def test_folder_ingest_reads_only_under_the_configured_roots_links_resolved(keyed_settings, tmp_path):
    """An admin key ingested /etc/X11 into a shared collection, and a link to a folder outside,
    which every ask key could then read back (security walkthrough)."""
    settings, keys = keyed_settings
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (docs / "team").mkdir(parents=True)
    outside.mkdir()
    (docs / "escape").symlink_to(outside)
    settings = settings.model_copy(update={"folder_ingest_roots": [docs]})
    with TestClient(create_app(settings, mounts=[])) as api:
        url = f"/v1/collections/{settings.collection}/ingest"
        assert api.post(url, json={"path": str(docs / "team")}, headers=keys["ops"]).status_code == 202
        for path in ("/etc", str(docs / "escape"), str(docs / "team" / ".." / ".." / "outside")):
            refused = api.post(url, json={"path": path}, headers=keys["ops"])
            assert refused.status_code == 403 and "outside the folders this server ingests from" in refused.text, path


@pytest.mark.redis
def test_an_admin_key_limited_to_collections_sees_no_other_collections_jobs_or_uploads(keyed_settings, tmp_path):
    """An admin key limited to team-a read team-b's upload job (its files' names), and could
    ingest the folder the API keeps team-b's uploads in into team-a, then ask for them (review)."""
    from rag.server.auth import new_key

    settings, keys = keyed_settings
    limited, line = new_key("ops-a", "admin", ["team-a"])
    settings = settings.model_copy(update={"api_keys": f"{settings.api_keys},{line}"})
    ops_a = {"X-API-Key": limited}
    with TestClient(create_app(settings, mounts=[])) as api:
        theirs = api.post(f"/v1/collections/{settings.collection}/documents", headers=keys["loader"],
                          files=[("files", ("salaries.md", NOTES.encode()))]).json()
        assert api.get(f"/v1/jobs/{theirs['id']}", headers=keys["ops"]).status_code == 200  # an unlimited admin's
        assert api.get(f"/v1/jobs/{theirs['id']}", headers=ops_a).status_code == 404
        for folder in (settings.data_dir / "uploads" / settings.collection, settings.data_dir):
            refused = api.post("/v1/collections/team-a/ingest", json={"path": str(folder)}, headers=ops_a)
            assert refused.status_code == 403 and "inside the server's data dir" in refused.json()["message"]
        assert api.post("/v1/collections/team-a/ingest", json={"path": str(tmp_path)}, headers=ops_a).status_code == 202


@pytest.mark.redis
def test_a_job_queued_with_no_worker_running_says_so(keyed_settings, tmp_path):
    """With no worker, an upload was a 202 and a job "queued" for ever with an empty message
    (operations walkthrough)."""
    import uuid

    from rag.jobs import NO_WORKER, Jobs

    settings, keys = keyed_settings
    settings = settings.model_copy(update={"job_queue": f"q-{uuid.uuid4().hex[:8]}"})  # no other test's worker
    with TestClient(create_app(settings, mounts=[])) as api:
        url = f"/v1/collections/{settings.collection}/ingest"
        idle = api.post(url, json={"path": str(tmp_path)}, headers=keys["ops"]).json()
        files = [("files", ("handbook.md", HANDBOOK.encode())), ("files", ("notes.md", NOTES.encode()))]
        upload = api.post(f"/v1/collections/{settings.collection}/documents", files=files, headers=keys["loader"])
        Jobs(settings).beat("worker-1")
        taken = api.post(url, json={"path": str(tmp_path)}, headers=keys["ops"]).json()
    assert (idle["state"], idle["message"]) == ("queued", NO_WORKER)
    assert (taken["state"], taken["message"]) == ("queued", "")
    # an upload's files are counted while it waits; a folder's are found as it runs
    assert (upload.json()["state"], upload.json()["files_total"]) == ("queued", 2)
    assert idle["files_total"] == 0


def test_folder_ingest_roots_read_from_the_environment_as_path_does(monkeypatch):
    from rag.settings import load_settings

    monkeypatch.setenv("GEMRAG_FOLDER_INGEST_ROOTS", "/srv/docs:/srv/manuals")
    assert [str(p) for p in load_settings().folder_ingest_roots] == ["/srv/docs", "/srv/manuals"]


@pytest.mark.redis
@pytest.mark.timeout(30)
def test_a_job_the_queue_lost_fails_and_its_stream_ends(keyed_settings):
    """Its message gone from Redis (the queue's keys deleted or evicted), the job said
    "queued" for good, its staged files stayed, and its progress stream never ended."""
    import redis

    settings, keys = keyed_settings
    settings = settings.model_copy(update={"job_lost_grace_s": 1.0})
    with TestClient(create_app(settings, mounts=[])) as api:
        files = [("files", ("notes.md", NOTES.encode()))]
        job = api.post(f"/v1/collections/{settings.collection}/documents", files=files, headers=keys["loader"]).json()
        queue = f"gemrag-jobs:{settings.job_queue}"
        redis.Redis.from_url(settings.redis_url).delete(queue, f"{queue}.msgs")
        with api.stream("GET", f"/v1/jobs/{job['id']}",
                        headers={**keys["loader"], "Accept": "text/event-stream"}) as stream:
            progress = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
        status = api.get(f"/v1/jobs/{job['id']}", headers=keys["loader"]).json()
    assert [p["state"] for p in progress] == ["queued", "failed"] and status == progress[-1]
    assert "The queue lost this job" in status["message"] and status["message"].endswith("upload the files again.")
    assert list((settings.data_dir / "uploads" / settings.collection / ".incoming").iterdir()) == []


@pytest.mark.redis
@pytest.mark.timeout(30)
def test_the_stream_of_a_waiting_job_keeps_the_connection_alive(keyed_settings, monkeypatch, tmp_path):
    """A job may wait in the queue for hours: its stream sent nothing meanwhile, and a
    proxy closes a connection silent for a minute."""
    import rag.server.app as app_module

    monkeypatch.setattr(app_module, "JOB_KEEPALIVE_S", 0.3)
    settings, keys = keyed_settings
    with TestClient(create_app(settings, mounts=[])) as api:
        job = api.post(f"/v1/collections/{settings.collection}/ingest", json={"path": str(tmp_path)},
                       headers=keys["ops"]).json()
        lines = []
        with api.stream("GET", f"/v1/jobs/{job['id']}", headers={**keys["ops"], "Accept": "text/event-stream"}) \
                as stream:
            for line in stream.iter_lines():
                lines.append(line)
                if line == ": keep-alive":  # no worker here: the test finishes the job
                    api.app.state.services.jobs.update(job["id"], state="done")
    states = [json.loads(line[6:])["state"] for line in lines if line.startswith("data: ")]
    assert ": keep-alive" in lines and states[-1] == "done"


def test_without_redis_jobs_are_unavailable_and_say_why(settings, tmp_path):
    with TestClient(create_app(settings, mounts=[])) as api:
        refused = api.post("/v1/collections/corpus/ingest", json={"path": str(tmp_path)})
        assert refused.status_code == 503 and "REDIS_URL" in refused.json()["message"]
        # both at once: a client set REDIS_URL, to be told next of CHROMA_URL (API walkthrough)
        assert "CHROMA_URL, for a Chroma server (chroma run --path" in refused.json()["message"]


@pytest.mark.redis
def test_jobs_without_a_shared_store_are_refused_by_the_server_and_the_worker(settings, redis_url, tmp_path):
    """A worker writing the embedded store (no CHROMA_URL) beside a server reading it: the
    server never saw the worker's new chunks by meaning and answered 500 once the worker
    removed a file. Both now refuse jobs with what to run instead."""
    import subprocess
    import sys

    queued = settings.model_copy(update={"redis_url": redis_url})
    with TestClient(create_app(queued, mounts=[])) as api:
        files = [("files", ("notes.md", NOTES.encode()))]
        refused = api.post("/v1/collections/corpus/documents", files=files)
        assert refused.status_code == 503 and "CHROMA_URL" in refused.json()["message"]
        assert "chroma run --path" in refused.json()["message"]
        assert api.get("/metrics").status_code == 200
    env = {"PATH": "/usr/bin:/bin", "GEMRAG_DATA_DIR": str(settings.data_dir), "GEMRAG_REDIS_URL": redis_url}
    worker = subprocess.run([sys.executable, "-m", "ingest.worker"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert worker.returncode == 2 and "CHROMA_URL" in worker.stderr and "Traceback" not in worker.stderr


@pytest.mark.parametrize("name", ["x", "-bad-", "a%20b"])
def test_a_bad_collection_name_is_the_same_422_wherever_it_is_sent(settings, tmp_path, name):
    """The upload, folder and removal routes answered 400 config_error for a name /v1/ask
    refuses as 422 invalid_request: one mistake, two shapes. Refused before any queue is
    needed (there is none here) and before anything is made under the name."""
    with TestClient(create_app(settings, mounts=[])) as api:
        asked = api.post("/v1/ask", json={"question": "q", "collection": name.replace("%20", " "), "stream": False})
        refusals = [
            api.post(f"/v1/collections/{name}/documents", files=[("files", ("a.md", b"# A\n"))]),
            api.post(f"/v1/collections/{name}/ingest", json={"path": str(tmp_path)}),
            api.delete(f"/v1/collections/{name}/documents/a.md"),
        ]
    assert asked.status_code == 422 and [f["field"] for f in asked.json()["fields"]] == ["body.collection"]
    reason = asked.json()["fields"][0]["reason"]
    for refused in refusals:
        assert refused.status_code == 422, refused.text
        assert refused.json() == {"error": "invalid_request", "message": f"path.name: {reason}",
                                  "fields": [{"field": "path.name", "reason": reason}]}
    assert not (settings.data_dir / "uploads").exists()


@pytest.mark.redis
@pytest.mark.timeout(30)
def test_a_job_stream_ends_when_its_replica_shuts_down(keyed_settings, tmp_path):
    """A job may run for hours: its progress stream held the replica's shutdown for all of
    drain_s, then was cut with no last event (operations walkthrough). It ends at once now;
    the client reads on from another replica."""
    settings, keys = keyed_settings
    with TestClient(create_app(settings, mounts=[])) as api:
        job = api.post(f"/v1/collections/{settings.collection}/ingest", json={"path": str(tmp_path)},
                       headers=keys["ops"]).json()
        with api.stream("GET", f"/v1/jobs/{job['id']}", headers={**keys["ops"], "Accept": "text/event-stream"}) \
                as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: progress"  # no worker here: the job stays queued
            api.app.state.services.drain.begin(50)
            rest = list(lines)
    assert [json.loads(line[6:])["state"] for line in rest if line.startswith("data: ")] == ["queued"]
