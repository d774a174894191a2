"""API keys, roles, loopback-only without keys, per-key rate limits, CORS."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from rag.server.app import create_app
from rag.server.auth import ApiKeys, Caller, new_key
from rag.settings import Settings
from rag.types import Usage


@pytest.fixture
def keyed(settings: Settings) -> tuple[Settings, dict[str, str]]:
    keys, lines = {}, []
    for name, role in (("alice", "ask"), ("ops", "admin")):
        keys[name], line = new_key(name, role)
        lines.append(line)
    path = settings.data_dir.parent / "keys.txt"
    path.write_text("# hashed keys\n" + lines[1] + "\n")
    return settings.model_copy(update={"api_keys": lines[0], "api_keys_file": path}), keys


def test_keys_are_stored_hashed_only(keyed):
    settings, keys = keyed
    assert keys["alice"] not in settings.api_keys and keys["ops"] not in settings.api_keys_file.read_text()


def test_wrong_key_is_refused_and_a_right_one_answers(keyed):
    settings, keys = keyed
    with TestClient(create_app(settings, mounts=[])) as client:
        assert client.get("/v1/models").status_code == 401
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer gr_not-a-key"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {keys['alice']}"}).status_code == 200
        assert client.get("/v1/models", headers={"X-API-Key": keys["ops"]}).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes need no key
        assert wrong.headers["www-authenticate"] == "Bearer"


def test_a_body_that_is_not_json_is_refused_for_the_missing_key_first(keyed):
    """FastAPI parses the body before the route's key check: a caller without a key got a
    422 describing where the JSON broke, so the body's shape could be probed with no key."""
    settings, keys = keyed
    broken = {"content": b'{"question":', "headers": {"content-type": "application/json"}}
    with TestClient(create_app(settings, mounts=[])) as client:
        anonymous = client.post("/v1/ask", **broken)
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/ask", **{**broken, "headers": {**broken["headers"], "X-API-Key": "gr_nope"}}
                           ).status_code == 401
        keyed_call = client.post("/v1/ask", **{**broken, "headers": {**broken["headers"], "X-API-Key": keys["alice"]}})
        assert keyed_call.status_code == 422 and "not valid JSON" in keyed_call.json()["message"]
        # Bodies FastAPI cannot even parse (not UTF-8, nested past the parser's depth) were
        # described before the key was checked, and the second only as "There was an error
        # parsing the body" (a review's repros).
        for unread, said in ((b'{"question":"\xff"}', "The body is not UTF-8 text (byte 13"),
                             (b'{"history":' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply to read")):
            body = {"content": unread, "headers": {"content-type": "application/json"}}
            assert client.post("/v1/ask", **body).status_code == 401
            refused = client.post("/v1/ask", **{**body, "headers": {**body["headers"], "X-API-Key": keys["alice"]}})
            assert refused.status_code == 400 and said in refused.json()["message"], refused.json()


def test_sessions_belong_to_their_key(keyed):
    settings, keys = keyed
    with TestClient(create_app(settings, mounts=[])) as client:
        ledger = client.app.state.services.backend.ledger  # type: ignore[attr-defined]
        ledger.charge("alice/s1", "gemini-3.8-flash", Usage(1000, 100), "answer")
        mine = client.get("/v1/sessions/s1/costs", headers={"X-API-Key": keys["alice"]}).json()
        theirs = client.get("/v1/sessions/s1/costs", headers={"X-API-Key": keys["ops"]}).json()
        assert mine["total"]["calls"] == 1 and theirs["total"]["calls"] == 0


def test_without_keys_only_loopback_clients_are_served(settings: Settings):
    app = create_app(settings, mounts=[])
    with TestClient(app, client=("10.1.2.3", 5000)) as remote:
        refused = remote.get("/v1/models")
        assert refused.status_code == 403 and "loopback" in refused.json()["message"]
    with TestClient(app, client=("127.0.0.1", 5000)) as local:
        assert local.get("/v1/models").status_code == 200


def test_binding_another_address_without_keys_is_refused(tmp_path):
    run = subprocess.run([sys.executable, "-m", "rag.server", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "refusing to listen on 0.0.0.0 without API keys" in run.stderr


def test_keygen_prints_a_key_and_a_line_the_server_accepts():
    run = subprocess.run([sys.executable, "-m", "rag.server", "keygen", "bob", "ingest"],
                         capture_output=True, text=True, timeout=60)
    key, line = (ln.strip() for ln in run.stdout.splitlines() if ln.startswith("  "))
    assert ApiKeys.load(line, None).caller(key, "10.0.0.1").role == "ingest"


def test_malformed_key_entry_names_where_it_is(settings: Settings):
    with pytest.raises(Exception, match="GEMRAG_API_KEYS: API key entry 'bob' is not"):
        ApiKeys.load("bob:root:plain", None)


def test_per_key_rate_limit_answers_429_with_retry_after(keyed):
    settings, keys = keyed
    with TestClient(create_app(settings.model_copy(update={"key_rate_limit": "2/minute"}), mounts=[])) as client:
        headers = {"X-API-Key": keys["alice"]}
        assert [client.get("/v1/models", headers=headers).status_code for _ in range(2)] == [200, 200]
        limited = client.get("/v1/models", headers=headers)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert client.get("/v1/models", headers={"X-API-Key": keys["ops"]}).status_code == 200  # per key


def test_cors_is_closed_unless_origins_are_configured(settings: Settings):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(settings, mounts=[])) as client:
        assert "access-control-allow-origin" not in client.options("/v1/ask", headers=preflight).headers
    opened = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    with TestClient(create_app(opened, mounts=[])) as client:
        ok = client.options("/v1/ask", headers={**preflight, "Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in client.options("/v1/ask", headers=preflight).headers


def test_an_allowed_origin_can_read_every_refusal_and_the_request_id(settings: Settings, monkeypatch):
    """CORS sat inside the body limit and the fault handler: a browser app saw a 413 or a 500
    as an opaque network error, without the message or the request id to report."""
    import rag.server.app as app_module

    def broken(settings: Settings) -> list[object]:
        raise RuntimeError("a fault of ours")

    monkeypatch.setattr(app_module, "list_collections_out", broken)
    origin = {"Origin": "https://app.example"}
    opened = settings.model_copy(update={"cors_origins": ["https://app.example"], "api_keys": ""})
    with TestClient(create_app(opened, mounts=[])) as client:
        huge = client.post("/v1/ask", content=b"x" * 70_000, headers={**origin, "content-type": "application/json"})
        unknown = client.get("/v1/jobs/nope", headers=origin)
        fault = client.get("/v1/collections", headers=origin)
    assert fault.status_code == 500 and fault.json()["error"] == "internal_error"
    for refused in (huge, unknown, fault):
        assert refused.headers["access-control-allow-origin"] == "https://app.example", refused.status_code
        assert "x-request-id" in refused.headers["access-control-expose-headers"].lower()
    assert huge.status_code == 413


def test_a_redis_socket_url_serves_the_key_limit_too(tmp_path):
    """REDIS_URL=unix:///... passed the settings' check, then the server's start-up failed:
    the rate-limit library names a socket redis+unix://."""
    from rag.kv import StoreUnavailable
    from rag.server.guards import KeyRateLimit
    from rag.settings import Settings

    socket_path = tmp_path / "redis.sock"
    limit = KeyRateLimit(Settings(api_key=None, redis_url=f"unix://{socket_path}"))
    with pytest.raises(StoreUnavailable, match=rf"Cannot use Redis at {socket_path} \(REDIS_URL\)"):
        limit.hit("alice")  # no server on that socket: named, a 503


def test_a_key_limited_to_collections_reaches_no_other(gemini_settings: Settings):
    """Every ask key read every collection and every ingest key could replace any team's
    files: a key's fifth field now names the only collections it may use."""
    from rag.providers.gemini import GeminiProvider
    from tests.fakes.tiny_corpus import build_store

    provider = GeminiProvider(gemini_settings)
    build_store(gemini_settings, provider, "team-a")
    build_store(gemini_settings, provider, "team-b")
    alice, alice_line = new_key("alice", "ingest", ["team-a"])
    ops, ops_line = new_key("ops", "admin")
    two, two_line = new_key("two", "ask", ["team-a", "team-c"])
    settings = gemini_settings.model_copy(update={"api_keys": f"{alice_line},{ops_line},{two_line}",
                                                  "collection": "team-b"})
    mine, everyone, both = {"X-API-Key": alice}, {"X-API-Key": ops}, {"X-API-Key": two}
    with TestClient(create_app(settings, mounts=[])) as client:
        assert [c["name"] for c in client.get("/v1/collections", headers=mine).json()] == ["team-a"]
        assert {"team-a", "team-b"} <= {c["name"] for c in client.get("/v1/collections", headers=everyone).json()}
        assert client.get("/v1/collections/team-a/documents", headers=mine).status_code == 200
        refusals = [
            client.get("/v1/collections/team-b/documents", headers=mine),
            client.post("/v1/ask", headers=mine, json={"question": "Refunds?", "collection": "team-b"}),
            client.delete("/v1/collections/team-b/documents/refunds.md", headers=mine),
            client.post("/v1/collections/team-b/documents", headers=mine, files={"files": ("a.md", b"# A\n\nText.\n")}),
        ]
        answered = client.post("/v1/ask", headers=mine,
                               json={"question": "What is the refund window?", "collection": "team-a", "stream": False})
        # A key of one collection asks it when the request names none; a key of several must name one.
        defaulted = client.post("/v1/ask", headers=mine, json={"question": "What is the refund window?",
                                                              "stream": False})
        unnamed = client.post("/v1/ask", headers=both, json={"question": "What is the refund window?"})
        # A collection not made yet: the refusal names only those the key may use.
        absent = client.get("/v1/collections/team-c/documents", headers=both)
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.json()["message"] == "Key 'alice' may not use collection 'team-b'; its collections: team-a."
    assert answered.status_code == 200 and answered.json()["answer"]
    assert defaulted.status_code == 200 and defaulted.json()["citations"][0]["source"] == \
        answered.json()["citations"][0]["source"]
    assert unnamed.status_code == 403 and "its collections: team-a, team-c" in unnamed.json()["message"]
    assert absent.status_code == 404 and absent.json()["message"] == \
        "No collection 'team-c' on this server (its collections: team-a)."


def test_a_keys_collections_are_checked_when_the_server_starts(settings: Settings):
    with pytest.raises(Exception, match="GEMRAG_API_KEYS: API key entry 'bob': Collection name 'a b' is not allowed"):
        ApiKeys.load(f"bob:ask:sha256:{'0' * 64}:team|a b", None)
    with pytest.raises(Exception, match=r"entry 'team' is not .* \(a key's collections are separated by '\|', not"):
        ApiKeys.load(f"bob:ask:sha256:{'0' * 64}:one,team", None)
    with pytest.raises(Exception, match=r"separated by '\|'; leave it out \(no trailing ':'\) for a key that reaches"):
        ApiKeys.load(f"bob:ask:sha256:{'0' * 64}:", None)
    with pytest.raises(Exception, match="GEMRAG_API_KEYS: API key entry 'bob' has another role or other collections "
                                        "than the entry of that name at GEMRAG_API_KEYS; keys sharing a name"):
        ApiKeys.load(f"bob:ask:sha256:{'0' * 64}:one|two,bob:admin:sha256:{'1' * 64}:two|three", None)
    rotated = ApiKeys.load(f"bob:ask:sha256:{'0' * 64}:one|two,bob:ask:sha256:{'1' * 64}:two|one", None)
    assert rotated.caller_of("bob") == Caller("bob", "ask", frozenset({"one", "two"}))
    assert rotated.caller_of("nobody") is None


def test_keygen_limits_a_key_to_the_collections_named():
    run = subprocess.run([sys.executable, "-m", "rag.server", "keygen", "bob", "ask", "--collections", "hr-docs,legal"],
                         capture_output=True, text=True, timeout=60)
    key, line = (ln.strip() for ln in run.stdout.splitlines() if ln.startswith("  "))
    assert line.endswith(":hr-docs|legal") and "collections hr-docs, legal" in run.stdout
    assert ApiKeys.load(line, None).caller(key, "10.0.0.1").collections == frozenset({"hr-docs", "legal"})
    empty = subprocess.run([sys.executable, "-m", "rag.server", "keygen", "bob", "ask", "--collections", " , "],
                           capture_output=True, text=True, timeout=60)  # as `--collections "$TEAMS"` with it unset
    assert empty.returncode == 2 and "name at least one collection" in empty.stderr and "gr_" not in empty.stdout


def test_a_missing_collection_read_where_no_key_is_known_names_no_collection():
    """A removal job whose collection was dropped after the API's check failed with the
    server's every collection in its message, which a key limited to one team reads (review)."""
    from rag.errors import NoCollection, remote_message

    missing = NoCollection("No collection 'gone' in /srv/data (...)", name="gone", held=["team-a", "team-b"])
    assert remote_message(missing) == "No collection 'gone' on this server."
    assert missing.told(lambda c: c == "team-a") == "No collection 'gone' on this server (its collections: team-a)."


def test_every_route_naming_a_collection_checks_the_callers_collections(settings: Settings):
    """The check is the routes' dependency (`entering`), not a call each route body must
    remember: a route whose path names a collection without it would serve any key."""
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    def calls(dependant: Dependant) -> set[str]:
        own = getattr(dependant.call, "__qualname__", "")  # a security scheme is an instance
        return {own, *(c for d in dependant.dependencies for c in calls(d))}

    named = [r for r in create_app(settings, mounts=[]).routes if isinstance(r, APIRoute) and "{name}" in r.path]
    assert len(named) == 4
    for route in named:
        assert "entering.<locals>.dependency" in calls(route.dependant), route.path
