"""POST /v1/ask on a real socket: SSE deltas then one final event, JSON with stream=false,
the answer cache, server-kept conversations, costs, refusals, and a client that leaves."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import pytest

from rag.settings import RateLimit, Settings
from rag.testing.fake_gemini import TEST_API_KEY, FakeGemini, Fault, Reply
from tests.rag.server.conftest import Running, gemini_app, serve_in_thread

QUESTION = "How many days of paid vacation do employees get?"


def events(response: httpx.Response) -> list[tuple[str, dict]]:
    out, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[6:])))
    return out


def ask_stream(url: str, **body) -> list[tuple[str, dict]]:
    with httpx.stream("POST", f"{url}/v1/ask", json={"question": QUESTION, **body}, timeout=10) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return events(response)


def test_stream_sends_deltas_then_one_final_event_with_citations_route_usage_cost(api: Running, fake_gemini):
    fake_gemini.reply("Employees receive 25 days [2] of paid vacation per year [2].")
    got = ask_stream(api.url)
    kinds = [k for k, _ in got]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) > 3
    done = got[-1][1]
    assert "".join(d["text"] for k, d in got if k == "delta") == done["answer"]
    assert [c["source"] for c in done["citations"]] == [done["sources"][1]["source"]]
    assert done["route"]["kind"] == "flash" and done["route"]["model"] == "gemini-3.8-flash"
    assert done["usage"]["output_tokens"] > 0 and done["cost_usd"] > 0
    assert done["cached"] is False and done["session_id"]


def test_per_file_answers_from_each_files_best_passage(api: Running, fake_gemini):
    fake_gemini.reply("Employees receive 25 days [1].")
    body = {"question": QUESTION, "stream": False, "k": 4}
    usual = httpx.post(f"{api.url}/v1/ask", json=body, timeout=10).json()["sources"]
    files = httpx.post(f"{api.url}/v1/ask", json={**body, "per_file": True}, timeout=10).json()["sources"]
    assert len({s["source"] for s in usual}) < 4  # the handbook's pages come more than once
    assert len(files) == 4 and len({s["source"] for s in files}) == 4


def test_repeated_question_is_served_from_the_cache_for_free(api: Running, fake_gemini):
    first = ask_stream(api.url)[-1][1]
    calls = len(fake_gemini.calls("streamGenerateContent"))
    second = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "stream": False}, timeout=10).json()
    assert second["cached"] is True and second["cost_usd"] == 0 and second["answer"] == first["answer"]
    assert second["saved_usd"] == pytest.approx(first["cost_usd"])
    assert len(fake_gemini.calls("streamGenerateContent")) == calls
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'gemrag_answer_cache_total{result="hit"} 1.0' in metrics
    assert 'gemrag_answer_cache_total{result="miss"} 1.0' in metrics


def test_session_keeps_its_history_and_reports_its_costs(api: Running, fake_gemini):
    first = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "session_id": "s1", "stream": False},
                       timeout=10).json()
    fake_gemini.reply("What about unused vacation days?", "They expire at the end of March [2].")
    second = httpx.post(f"{api.url}/v1/ask", json={"question": "and unused ones?", "session_id": "s1",
                                                  "stream": False}, timeout=10).json()
    [rewrite] = fake_gemini.calls("generateContent")  # a follow-up is rewritten with the kept history
    assert QUESTION in json.dumps(rewrite.body)
    assert first["question"] == first["standalone_question"] == QUESTION
    assert second["question"] == "and unused ones?"  # and what was searched instead, for the client to show
    assert second["standalone_question"] == "What about unused vacation days?"
    costs = httpx.get(f"{api.url}/v1/sessions/s1/costs").json()
    assert costs["total"]["answers"] == 2
    assert costs["total"]["cost_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"])
    # the follow-up's rewrite is a cheap step, on Flash-Lite
    assert set(costs["by_model"]) == {"gemini-3.8-flash", "gemini-3.5-flash-lite", "gemini-embedding-001"}
    assert httpx.get(f"{api.url}/v1/sessions/other/costs").json()["total"]["calls"] == 0


@contextlib.contextmanager
def long_answer_streaming(fake_gemini, url: str, session_id: str) -> Iterator[Iterator[str]]:
    """A 10-second answer (400 words at 40 tokens/s) streaming to `session_id`, its first delta
    arrived; yields the rest of its SSE lines."""
    fake_gemini.tokens_per_s = 40
    fake_gemini.reply(Reply(" ".join(f"word{i}" for i in range(400))))
    with httpx.stream("POST", f"{url}/v1/ask", json={"question": QUESTION, "session_id": session_id},
                      timeout=10) as response:
        lines = response.iter_lines()
        while not next(lines).startswith("data: "):
            pass  # one delta arrived: the model is generating
        yield lines


@pytest.fixture
def held_iterators(monkeypatch) -> list:
    """Every chain stream the server steps, kept alive by the test: its generator's finalizer
    would otherwise close it, and settle its hold, once the server dropped it, so only an
    explicit close is seen settling it here."""
    from rag.server.streaming import ThreadedIterator

    held: list = []
    real = ThreadedIterator.__init__

    def holding(self, iterator) -> None:
        held.append(iterator)
        real(self, iterator)

    monkeypatch.setattr(ThreadedIterator, "__init__", holding)
    return held


def settled(chain, session_id: str, within_s: float = 15.0):
    """The session's totals once its hold is settled: an answer the shutdown ended is closed,
    and charged, once the model's step under way ends (its client is not kept waiting)."""
    deadline = time.monotonic() + within_s
    session = chain.ledger.session(session_id)
    while (session.held_usd or not session.cost_usd) and time.monotonic() < deadline:
        time.sleep(0.1)
        session = chain.ledger.session(session_id)
    return session


def test_client_leaving_mid_stream_stops_the_model_call_and_charges_what_was_produced(
    api_settings, fake_gemini
):
    app, chain = gemini_app(api_settings)
    for url in serve_in_thread(app):
        with long_answer_streaming(fake_gemini, url, "gone"):
            pass  # one delta arrived, and the client leaves
        left = time.monotonic()
        while fake_gemini.streams_open and time.monotonic() - left < 5:
            time.sleep(0.05)
        assert fake_gemini.streams_open == 0 and time.monotonic() - left < 3  # stopped, not run to its end
        session = chain.ledger.session("local/gone")
        assert 0 < session.usage.output_tokens < 400 and session.cost_usd > 0 and session.answers == 0
        assert chain.ledger.models("local/gone")["gemini-3.8-flash"].calls == 1
        assert "gemrag_stream_disconnects_total 1.0" in httpx.get(f"{url}/metrics").text


def test_an_answer_still_streaming_near_the_shutdown_deadline_ends_itself_settled(
    api_settings, fake_gemini, held_iterators
):
    """uvicorn cancels the streams still open at its shutdown deadline (drain_s): a cancelled
    stream was never settled (its hold counted against every budget for good, 35 minutes
    later) and its client got no last event. Near the deadline the answer now ends itself."""
    app, chain = gemini_app(api_settings)
    for url in serve_in_thread(app):
        with long_answer_streaming(fake_gemini, url, "drained") as lines:
            app.state.services.drain.begin(0)  # the shutdown signal came, its deadline is near
            rest = list(lines)
        assert "event: error" in rest and '"error":"server_draining"' in "".join(rest)
        session = settled(chain, "local/drained")
        assert 0 < session.usage.output_tokens < 400 and session.cost_usd > 0 and session.held_usd == 0


def test_an_answer_whose_model_stalls_near_the_shutdown_deadline_ends_without_waiting_for_it(
    api_settings, fake_gemini, held_iterators
):
    """The answer ended itself only at its next delta: a model that sent nothing for a while
    kept its client waiting until uvicorn cut the stream at the deadline, with no last event.
    Then the error event came at the deadline, but the body ended only with the stalled step
    (a review's repro); it ends at once, and the chain is closed, and charged, after."""
    app, chain = gemini_app(api_settings)
    for url in serve_in_thread(app):
        with long_answer_streaming(fake_gemini, url, "stalled") as lines:
            fake_gemini.tokens_per_s = 0.4  # from the next piece on, 10 s per delta: the model stalls
            while not next(lines).startswith("data: "):
                pass  # the piece under way when the pace changed arrived: the next is 10 s off
            app.state.services.drain.begin(0)
            begun = time.monotonic()
            event = next(line for line in lines if line.startswith("event: ") and line != "event: delta")
            waited = time.monotonic() - begun
            rest = list(lines)
            ended = time.monotonic() - begun
        assert event == "event: error" and '"error":"server_draining"' in "".join(rest)
        assert waited < 6 and ended < 6  # not after the stalled delta (10 s): at the deadline, looked at every 0.25 s
        session = settled(chain, "local/stalled")
        assert session.cost_usd > 0 and session.held_usd == 0  # closed once the step ended: settled


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_the_shutdown_ends_while_its_model_stalls_mid_answer_is_not_held_for_the_model(
    api_settings, fake_gemini, held_iterators, stream: bool
):
    """A review's repro: past its first words, the 503 (stream=false) or the end of the body
    after the error event (stream=true) waited for the stalled piece, 10 s here; past the
    drain's margin uvicorn cut the request first. The chain is closed, and charged, after."""
    patient = api_settings.model_copy(update={"request_timeout_s": 30.0, "deadline_s": 30.0})
    app, chain = gemini_app(patient)
    fake_gemini.reply(Reply(" ".join(f"word{i}" for i in range(400))))
    fake_gemini.tokens_per_s = 40.0  # 0.1 s per piece
    for url in serve_in_thread(app):
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(httpx.post, f"{url}/v1/ask", timeout=30,
                                json={"question": QUESTION, "session_id": "mid", "stream": stream})
            while not fake_gemini.calls("streamGenerateContent"):
                time.sleep(0.02)
            time.sleep(0.5)  # a few pieces came: past the first step
            fake_gemini.tokens_per_s = 0.4  # the next piece is 10 s off
            time.sleep(0.3)
            app.state.services.drain.begin(0)
            begun = time.monotonic()
            response = reply.result()
            waited = time.monotonic() - begun
        assert waited < 3, waited
        assert response.status_code == (200 if stream else 503) and '"error":"server_draining"' in response.text
        session = settled(chain, "local/mid")
        assert 0 < session.usage.output_tokens < 400 and session.held_usd == 0 and session.answers == 0


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_whose_model_has_not_begun_by_the_shutdown_deadline_is_a_503_then_settled(
    api_settings, fake_gemini, held_iterators, stream: bool
):
    """The first step (retrieval, the rate limiter, the model's first token) ran without the
    shutdown's watch: a model silent before its first token kept the request open until
    uvicorn cut it, with no reply, and its hold was never settled."""
    patient = api_settings.model_copy(update={"request_timeout_s": 30.0, "deadline_s": 30.0})
    app, chain = gemini_app(patient)
    fake_gemini.inject(Fault.slow(4.0), method="streamGenerateContent")  # nothing for 4 s, then the answer
    for url in serve_in_thread(app):
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(httpx.post, f"{url}/v1/ask", timeout=10,
                                json={"question": QUESTION, "session_id": "silent", "stream": stream})
            while not fake_gemini.calls("streamGenerateContent"):
                assert not reply.done(), reply.result().text
                time.sleep(0.02)
            app.state.services.drain.begin(0)  # the shutdown signal came while the model is silent
            begun = time.monotonic()
            response = reply.result()
            waited = time.monotonic() - begun
        assert response.status_code == 503 and response.json()["error"] == "server_draining", response.text
        assert waited < 2  # at the deadline (looked at every 0.25 s), not after the model's 4 s
        session = settled(chain, "local/silent")  # the step ends with the model's first piece, the chain closed then
        assert session.cost_usd > 0 and session.held_usd == 0 and session.answers == 0
        assert fake_gemini.streams_open == 0


def test_an_answer_cancelled_by_uvicorn_before_the_models_first_token_is_still_settled(
    api_settings, fake_gemini, held_iterators
):
    """A server stopped without the drain (this one's uvicorn has a 2 s graceful shutdown)
    cancels the request while the model is silent: the chain was never closed, and its hold
    counted against the session's budget for good."""
    patient = api_settings.model_copy(update={"request_timeout_s": 30.0, "deadline_s": 30.0})
    app, chain = gemini_app(patient)
    fake_gemini.inject(Fault.slow(4.0), method="streamGenerateContent")
    with ThreadPoolExecutor(1) as pool:
        for url in serve_in_thread(app):
            reply = pool.submit(httpx.post, f"{url}/v1/ask", timeout=10,
                                json={"question": QUESTION, "session_id": "cut", "stream": False})
            while not fake_gemini.calls("streamGenerateContent"):
                time.sleep(0.02)
        reply.exception()  # waited for: uvicorn answers 500 for a request it cancels before its reply
    session = settled(chain, "local/cut")
    assert session.cost_usd > 0 and session.held_usd == 0


def test_rate_limit_past_the_wait_bound_is_429_with_retry_after(api_settings, fake_gemini):
    flash = api_settings.models["gemini-3.8-flash"].model_copy(update={"limits": {"unlimited": RateLimit(rpm=1)}})
    models = api_settings.models | {"gemini-3.8-flash": flash}
    # Flash-Lite as the cheap model too: otherwise load-adaptive routing moves the second answer
    # to it (rag/headroom.py) and nothing is refused.
    limited = api_settings.model_copy(update={"models": models, "deadline_s": 1.0, "lite_model": "gemini-3.8-flash"})
    app, _ = gemini_app(limited)
    for url in serve_in_thread(app):
        assert httpx.post(f"{url}/v1/ask", json={"question": QUESTION, "stream": False}).status_code == 200
        refused = httpx.post(f"{url}/v1/ask", json={"question": "Another question?"})
        assert refused.status_code == 429
        assert refused.json()["error"] == "quota_exhausted" and "gemini-3.8-flash" in refused.json()["message"]
        assert 50 <= int(refused.headers["retry-after"]) <= 61


def test_the_gemini_key_never_leaves_the_server(api: Running, fake_gemini):
    fake_gemini.inject(Fault.invalid_key(), times=None, method="streamGenerateContent")
    refused = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION})
    assert refused.status_code == 502 and refused.json()["error"] == "invalid_key"
    seen = [refused.text, httpx.get(f"{api.url}/metrics").text, httpx.get(f"{api.url}/v1/models").text,
            httpx.get(f"{api.url}/openapi.json").text, httpx.get(f"{api.url}/readyz").text]
    assert all(TEST_API_KEY not in text for text in seen)


def test_a_missing_collection_names_no_server_path_or_url(api_settings: Settings, tmp_path):
    """The 404 named the data directory ("No collection 'x' in /srv/gemrag/...") and a CHROMA_URL
    as configured, credentials and all, to any client with the ask role; the CLI still names
    them, since its user runs the server's files."""
    from fastapi.testclient import TestClient

    from rag.server.app import create_app

    app = create_app(api_settings, mounts=[])
    with TestClient(app) as client:
        missing = client.post("/v1/ask", json={"question": QUESTION, "collection": "nothing-here"})
        listed = client.get("/v1/collections/nothing-here/documents")
    for refused in (missing, listed):
        assert refused.status_code == 404, refused.text
        assert str(api_settings.data_dir.resolve()) not in refused.text and str(tmp_path) not in refused.text
        assert "No collection 'nothing-here' on this server" in refused.json()["message"]


@pytest.mark.chroma_server
def test_a_missing_collection_on_a_chroma_server_names_it_by_host_and_port(api_settings: Settings, chroma_server_url):
    """CHROMA_URL was quoted as configured, with any credentials in it."""
    from rag.errors import EmptyCollection
    from rag.stores import Stores

    url = urlparse(chroma_server_url)
    settings = api_settings.model_copy(update={"chroma_url": f"http://admin:pw1234@{url.hostname}:{url.port}"})
    with pytest.raises(EmptyCollection, match=f"on the Chroma server at {url.hostname}:{url.port} ") as absent:
        Stores(settings).open(f"nothing-{uuid.uuid4().hex[:8]}")
    assert "pw1234" not in str(absent.value) and "on this server" in absent.value.remote


def test_bad_requests_name_the_field_and_reason(api: Running):
    model = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "model": "gpt-9"})
    assert model.status_code == 422 and model.json()["fields"] == [
        {"field": "body.model",
         "reason": "'gpt-9' is not one of the answer models (gemini-3.8-flash, gemini-3.1-pro-preview)."}]
    missing = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "collection": "nothing-here"})
    assert missing.status_code == 404 and missing.json()["message"] == (
        "No collection 'nothing-here' on this server (its collections: tiny-corpus).")
    climbing = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "collection": "../etc"})
    assert climbing.status_code == 422 and climbing.json()["fields"][0]["field"] == "body.collection"
    huge = httpx.post(f"{api.url}/v1/ask", content=b'{"question": "' + b"x" * 70_000 + b'"}',
                      headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "64 kB" in huge.json()["message"]
    invalid = httpx.post(f"{api.url}/v1/ask", json={"question": ""})
    assert invalid.status_code == 422 and invalid.json()["fields"][0]["field"] == "body.question"


@pytest.mark.parametrize(("body", "field", "reason"), [
    (b'{"question": "x",}', "body", "not valid JSON"),
    (b'{"stream": false}', "body.question", "Field required"),
    (json.dumps({"question": "x" * 8_001}).encode(), "body.question", "at most 8000 characters"),
    (json.dumps({"question": QUESTION, "history": [{"role": "bot", "text": "hi"}]}).encode(),
     "body.history[0].role", "'user' or 'model'"),
    (json.dumps({"question": QUESTION, "colection": "hr"}).encode(), "body.colection",
     "Extra inputs are not permitted"),  # a mistyped field is not ignored
    # A value of the wrong JSON type is refused, not converted: k was 1, stream a JSON answer.
    (json.dumps({"question": QUESTION, "k": True}).encode(), "body.k", "valid integer"),
    (json.dumps({"question": QUESTION, "k": "3"}).encode(), "body.k", "valid integer"),
    (json.dumps({"question": QUESTION, "stream": "no"}).encode(), "body.stream", "valid boolean"),
    (json.dumps({"question": QUESTION, "stream": 0}).encode(), "body.stream", "valid boolean"),
    (json.dumps({"question": QUESTION, "history": [{"role": "user", "text": 5}]}).encode(), "body.history[0].text",
     "valid string"),
])
def test_a_request_the_schema_refuses_is_422_in_the_documented_shape_without_the_input(
    api: Running, body: bytes, field: str, reason: str
):
    refused = httpx.post(f"{api.url}/v1/ask", content=body, headers={"content-type": "application/json"})
    assert refused.status_code == 422
    out = refused.json()
    assert set(out) == {"error", "message", "fields"} and out["error"] == "invalid_request"
    assert [f["field"] for f in out["fields"]] == [field] and reason in out["fields"][0]["reason"]
    assert out["message"].startswith(f"{field}: ") and reason in out["message"]
    assert "x" * 100 not in refused.text and '"input"' not in refused.text  # the refused input is not echoed
    assert 'gemrag_errors_total{kind="invalid_request",route="/v1/ask"} 1.0' in httpx.get(f"{api.url}/metrics").text


def test_a_refusal_after_the_schema_is_the_same_kind_naming_its_field(api: Running):
    """A blank question or a file the collection lacks passes the schema; the 422 still names
    the field, as the schema's own refusals do."""
    blank = httpx.post(f"{api.url}/v1/ask", json={"question": "   "})
    assert blank.status_code == 422
    empty = "The question is empty: ask something about your documents."
    assert blank.json() == {"error": "invalid_request", "fields": [{"field": "body.question", "reason": empty}],
                            "message": empty}
    typo = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "sources": ["handbok.pdf"]})
    assert typo.status_code == 422 and [f["field"] for f in typo.json()["fields"]] == ["body.sources"]
    assert "holds no file 'handbok.pdf'" in typo.json()["message"]


def test_the_frameworks_own_refusals_come_in_the_same_shape(api: Running):
    """An unknown path, a wrong method and a body that is not even UTF-8 were FastAPI's
    {"detail": ...}; a client reads every refusal the same way."""
    assert httpx.get(f"{api.url}/v1/nope").json() == {"error": "not_found", "message": "Not Found"}
    wrong = httpx.get(f"{api.url}/v1/ask")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json() == {"error": "method_not_allowed", "message": "Method Not Allowed"}
    garbled = httpx.post(f"{api.url}/v1/ask", content=b'{"question": "\xff\xfe"}',
                         headers={"content-type": "application/json"})
    assert garbled.status_code == 400
    assert garbled.json() == {"error": "bad_request",  # it said only "There was an error parsing the body"
                              "message": "The body is not UTF-8 text (byte 14: b'\\xff'): send JSON encoded in UTF-8."}
    assert httpx.get(f"{api.url}/ui/healthz").status_code == 404  # under the UI's mount: not the API's /healthz
    counted = httpx.get(f"{api.url}/metrics").text  # each is counted by the kind it was answered with
    assert 'route="/healthz",status="404"' not in counted
    assert 'gemrag_errors_total{kind="not_found",route="unmatched"} 2.0' in counted
    assert all(f'gemrag_errors_total{{kind="{kind}",route="/v1/ask"}} 1.0' in counted
               for kind in ("method_not_allowed", "bad_request"))


def test_a_json_body_sent_as_another_type_is_415_saying_so(api: Running):
    """It was 422 "body: Input should be a valid dictionary or object to extract fields from"."""
    body = json.dumps({"question": QUESTION}).encode()
    for sent in ("text/plain", "application/x-www-form-urlencoded"):
        refused = httpx.post(f"{api.url}/v1/ask", content=body, headers={"content-type": sent})
        assert refused.status_code == 415
        expected = f"Send the body as JSON, with Content-Type: application/json (got {sent})."
        assert refused.json() == {"error": "unsupported_media_type", "message": expected}
    assert httpx.post(f"{api.url}/v1/ask", json={"stream": False}).status_code == 422  # JSON missing a field
    # No type at all (httpx's and requests' raw bytes) is not read as JSON: it said "Input should
    # be a valid dictionary" of a valid object (a review's repro).
    untyped = httpx.post(f"{api.url}/v1/ask", content=body)
    assert untyped.status_code == 415 and untyped.json()["message"].endswith("(got none).")


def test_an_oversize_chunked_body_is_413_like_one_that_declares_its_length(api: Running):
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(70):
            yield b"x" * 1000
        yield b'"}'

    huge = httpx.post(f"{api.url}/v1/ask", content=chunks(), headers={"content-type": "application/json"})
    assert huge.request.headers["transfer-encoding"] == "chunked" and "content-length" not in huge.request.headers
    assert huge.status_code == 413
    assert huge.json() == {"error": "body_too_large",  # the upload limit was named too
                           "message": "The request body is over the limit of 64 kB (max_request_kb)."}
    declared = httpx.post(f"{api.url}/v1/ask", content=b"".join(chunks()), headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "content-length" in declared.request.headers
    counted = httpx.get(f"{api.url}/metrics").text  # both counted as errors, under the route they were sent to
    assert 'gemrag_errors_total{kind="body_too_large",route="/v1/ask"} 2.0' in counted
    assert 'kind="bad_request"' not in counted  # FastAPI's 400 that BodyLimit replaced is not counted too
    assert 'gemrag_http_requests_total{method="POST",route="/v1/ask",status="413"} 2.0' in counted


def test_a_client_leaving_mid_body_is_counted_as_gone_not_as_an_error_answered(api: Running):
    """Half a /v1/ask body, then the connection closes: Starlette's ClientDisconnect became
    FastAPI's 400 bad_request, counted as an error answered (and fed the error-rate alert)
    though nobody was there to read it."""
    body = json.dumps({"question": QUESTION, "stream": False}).encode()
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.2)  # the server is reading the body when the client goes
    deadline = time.monotonic() + 5
    while 'route="/v1/ask"' not in (counted := httpx.get(f"{api.url}/metrics").text):
        assert time.monotonic() < deadline, "the request was never counted"
        time.sleep(0.05)
    assert 'gemrag_http_requests_total{method="POST",route="/v1/ask",status="499"} 1.0' in counted
    assert 'kind="bad_request"' not in counted


def test_a_body_that_stalls_is_refused_with_408_and_its_connection_closed(
    api_settings: Settings, fake_gemini: FakeGemini
):
    """A client trickling a body held its connection as long as it liked: 40 such clients,
    30 bytes each, were all still connected after 15 s. A streamed answer, once its body is
    whole, still waits on the client untimed."""
    app, _ = gemini_app(api_settings.model_copy(update={"body_timeout_s": 0.5}))
    for url in serve_in_thread(app):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n" + b'{"question": "wh')
            reply = client.recv(4096).decode()
        # spaced as every other error body (it was {"error": "body_timeout", ...})
        assert reply.startswith("HTTP/1.1 408") and '"error":"body_timeout"' in reply and "0.5 s" in reply
        counted = httpx.get(f"{url}/metrics").text
        assert 'gemrag_http_requests_total{method="POST",route="/v1/ask",status="408"} 1.0' in counted
        assert 'gemrag_errors_total{kind="body_timeout",route="/v1/ask"} 1.0' in counted
        assert 'kind="bad_request"' not in counted
        fake_gemini.inject(Fault.slow(1.0), method="streamGenerateContent")  # the answer takes longer than 0.5 s
        slow = httpx.post(f"{url}/v1/ask", json={"question": QUESTION, "stream": True}, timeout=30)
        assert slow.status_code == 200 and "event: done" in slow.text  # waiting on the model is not a stalled body


def test_a_body_trickled_within_each_timeout_is_refused_once_it_falls_behind_the_minimum_rate(
    api_settings: Settings,
):
    """A byte sent a little within each `body_timeout_s` kept a connection open indefinitely
    (5 of 230 bytes after 103 s, security walkthrough): past its first timeout a body must
    keep up `body_min_rate_bytes_s` on average."""
    app, _ = gemini_app(api_settings.model_copy(update={"body_timeout_s": 0.5, "body_min_rate_bytes_s": 100}))
    for url in serve_in_thread(app):
        host, port = url.removeprefix("http://").split(":")
        started = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 200\r\n\r\n")
            client.settimeout(0.3)
            reply = b""
            for byte in b'{"question": "what is the slowest body you take?"' * 4:
                try:
                    client.sendall(bytes([byte]))
                    reply = client.recv(4096)
                except (TimeoutError, OSError):
                    continue
                if reply:
                    break
        assert reply.startswith(b"HTTP/1.1 408") and b"100 bytes/s" in reply, reply
        assert time.monotonic() - started < 3  # its allowance: 0.5 s and a few bytes at 100/s


def test_collections_models_and_health(api: Running):
    [collection] = httpx.get(f"{api.url}/v1/collections").json()
    assert collection["name"] == "tiny-corpus" and collection["chunks"] == 9 and collection["version"] == 1
    models = httpx.get(f"{api.url}/v1/models").json()
    assert models["online"] and models["reachable"] is True and [m["name"] for m in models["models"]] == [
        "gemini-3.8-flash", "gemini-3.1-pro-preview", "gemini-embedding-001"]
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok", "checks": {}}
    ready = httpx.get(f"{api.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"chroma": "ok", "data_dir": "ok", "models": "ok"}


def test_models_and_readyz_agree_while_gemini_is_unreachable(api: Running, fake_gemini: FakeGemini):
    """Before: /v1/models said "online": true and nothing else while /readyz said unreachable.
    The replica stays ready, "degraded": a 503 took every replica out of the load balancer at
    once, the UI and cached answers with them; the gauge and its alert watch Gemini instead."""
    fake_gemini.inject(Fault.slow(6.0), times=None, method="countTokens")  # longer than a probe waits
    started = time.monotonic()
    ready = httpx.get(f"{api.url}/readyz", timeout=10)
    assert time.monotonic() - started < 4.5  # within a readiness probe's 5 s timeout
    assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.json()
    assert ready.json()["checks"]["models"] == "unreachable: provider_error"
    fake_gemini.clear_faults()
    fake_gemini.inject(Fault.server_error(503), times=None)
    models = httpx.get(f"{api.url}/v1/models").json()
    assert models["online"] is True and models["reachable"] is False  # a key is set; Gemini does not answer
    assert "gemrag_model_api_up 0.0" in httpx.get(f"{api.url}/metrics").text
    fake_gemini.clear_faults()
    assert "gemrag_model_api_up 1.0" in httpx.get(f"{api.url}/metrics").text


def test_the_answer_carries_its_citation_checks_and_the_request_may_choose_the_second_stage(
    api: Running, fake_gemini
):
    fake_gemini.reply("Employees receive 25 days of paid vacation per year [1]. The office opens at 9.")
    body = {"question": QUESTION, "stream": False, "rerank": "none"}
    done = httpx.post(f"{api.url}/v1/ask", json=body, timeout=10).json()
    assert [(c["verdict"], c["cited"]) for c in done["checks"]] == [("supported", [1]), ("uncited", [])]
    bad = httpx.post(f"{api.url}/v1/ask", json={**body, "rerank": "cohere"}, timeout=10)
    assert bad.status_code == 422 and "rerank" in bad.text


def test_the_server_loads_the_local_model_before_its_first_request(settings, monkeypatch):
    """Every answer's citations are checked with MiniLM: started cold, the first question
    would wait for it to load."""
    from fastapi.testclient import TestClient

    from rag import backend as backend_module
    from rag.providers.minilm import MiniLM
    from rag.server.app import create_app

    model = MiniLM()
    monkeypatch.setattr(backend_module, "shared_minilm", lambda: model)
    app = create_app(settings, mounts=[])
    assert "session" not in vars(model)
    with TestClient(app):
        assert {"session", "tokenizer"} <= set(vars(model))


@pytest.mark.parametrize("stream", [True, False])
def test_a_gemini_quota_429_reaches_the_client_with_retry_after(api: Running, fake_gemini, stream: bool):
    """Gemini's own retry delay (30 s, past the deadline) is passed on: a client told nothing
    about when to come back retries at once, or gives up."""
    fake_gemini.inject(Fault.rate_limited("30s"), times=None, method="streamGenerateContent")
    refused = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "stream": stream}, timeout=10)
    assert refused.status_code == 429 and refused.json()["error"] == "quota_exhausted"
    assert 30 <= int(refused.headers["retry-after"]) <= 34


def test_a_retired_model_is_answered_by_its_replacement_and_its_route_says_so(api: Running, fake_gemini):
    """The same check as `python -m rag ask --model` (rag/server/choices.py): a retired model
    is treated as a retired configured one, not sent to Gemini for a 404."""
    done = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "model": "gemini-2.5-pro", "stream": False},
                      timeout=10).json()
    assert done["route"]["model"] == "gemini-3.1-pro-preview"  # a retired Pro by today's Pro
    assert done["route"]["reason"].endswith(
        "; gemini-2.5-pro is retired since 2026-12-01; gemini-3.1-pro-preview answered")
    flash = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "model": "gemini-2.5-flash", "stream": False},
                       timeout=10).json()
    assert flash["route"]["model"] == "gemini-3.8-flash"  # it was a 422
    assert [r.model for r in fake_gemini.calls("streamGenerateContent")] == ["gemini-3.1-pro-preview",
                                                                              "gemini-3.8-flash"]


def test_errors_are_counted_under_the_route_that_answered_them(api: Running, fake_gemini: FakeGemini):
    """The error-rate alert divides /v1/ask's errors by /v1/ask's requests: an expired job
    polled or a bad key on another route counted as a question failing (and, beside few
    questions, paged). A stream that fails after its first words counts under /v1/ask too."""
    assert httpx.get(f"{api.url}/v1/jobs/abc").status_code == 503  # no REDIS_URL: no job queue
    fake_gemini.inject(Fault.server_error(), times=None, method="streamGenerateContent")
    failed = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "stream": True}, timeout=30)
    assert failed.status_code == 502
    fake_gemini.clear_faults()
    fake_gemini.inject(Fault.cut_stream(2), times=None, method="streamGenerateContent")
    cut = httpx.post(f"{api.url}/v1/ask", json={"question": QUESTION, "stream": True}, timeout=30)
    assert cut.status_code == 200 and "event: delta" in cut.text and "event: error" in cut.text
    counted = httpx.get(f"{api.url}/metrics").text
    assert 'gemrag_errors_total{kind="jobs_unavailable",route="/v1/jobs/{job_id}"} 1.0' in counted
    ask_errors = sum(float(line.rpartition(" ")[2]) for line in counted.splitlines()
                     if line.startswith("gemrag_errors_total{") and 'route="/v1/ask"' in line)
    assert ask_errors == 2.0, counted


def test_a_chroma_server_that_cannot_be_reached_is_a_503_naming_chroma_url(settings):
    """It was a 500 "the server failed on this request" for every question and listing, as if
    gemrag had a bug, while /readyz already said Chroma was unreachable; the URL's credentials
    stay out of the message."""
    from fastapi.testclient import TestClient

    from rag.server.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    app = create_app(settings.model_copy(update={"chroma_url": f"http://admin:pw1234@127.0.0.1:{dead}"}), mounts=[])
    with TestClient(app) as client:
        for refused in (client.post("/v1/ask", json={"question": QUESTION, "stream": False}),
                        client.get("/v1/collections"), client.get("/v1/collections/corpus/documents")):
            assert refused.status_code == 503, refused.text
            body = refused.json()
            assert body["error"] == "store_unavailable"
            assert f"Cannot reach the Chroma server at 127.0.0.1:{dead} (CHROMA_URL)" in body["message"]
            assert "pw1234" not in refused.text


def test_a_data_dir_that_turns_unwritable_is_unready_and_a_503_naming_no_path(api: Running, monkeypatch):
    """/readyz said 200 "ok" with the data dir remounted read-only while uploads failed with a
    400 config_error naming the server's path (operations walkthrough). Root writes anywhere,
    so the remount is played by os.access answering as it does on a read-only mount."""
    import os

    import rag.settings

    data = str(api.chain.settings.data_dir)
    real = os.access
    monkeypatch.setattr(rag.settings.os, "access",
                        lambda path, mode: False if str(path).startswith(data) and mode & os.W_OK else real(path, mode))
    ready = httpx.get(f"{api.url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"]["data_dir"] == "not writable"
    upload = httpx.post(f"{api.url}/v1/collections/tiny-corpus/documents",
                        files={"files": ("note.md", b"# Note\n\nA note.\n")}, timeout=30)
    assert upload.status_code == 503 and upload.json()["error"] == "data_dir_unwritable", upload.text
    assert data not in upload.text


def test_with_redis_an_unwritable_data_dir_only_degrades_the_replica(
    gemini_settings, redis_url, chroma_server_url, monkeypatch
):
    """With Redis holding the ledger and caches (and a Chroma server the store), only uploads
    need the shared data dir: a read-only remount took every replica out of the load balancer."""
    import os

    from fastapi.testclient import TestClient

    import rag.settings
    from rag.server.app import create_app

    settings = gemini_settings.model_copy(update={"redis_url": redis_url, "chroma_url": chroma_server_url})
    data, real = str(settings.data_dir), os.access
    with TestClient(create_app(settings, mounts=[])) as client:
        monkeypatch.setattr(rag.settings.os, "access", lambda path, mode: False if str(path).startswith(data)
                            and mode & os.W_OK else real(path, mode))
        ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.json()
    assert ready.json()["checks"]["data_dir"] == "not writable"


def test_a_finished_answer_is_not_followed_by_a_draining_error():
    """The shutdown's deadline passing while `done` was written (a slow client) sent an
    `error` event after the complete answer (a review's repro)."""
    from types import SimpleNamespace

    import anyio

    from rag.answer import Delta, Done
    from rag.server.app import answer_events
    from rag.server.metrics import Metrics
    from rag.server.streaming import Drain, ThreadedIterator

    closed: list[bool] = []

    def answer():
        try:
            yield Delta("hello")
            yield Done(record=SimpleNamespace())
        finally:
            closed.append(True)

    drain = Drain()
    steps = ThreadedIterator(answer())

    async def finish(record):
        drain.deadline = time.monotonic() - 1  # the deadline passes while `done` is written
        return {}

    async def stream() -> list[str]:
        first = await steps.next()
        return [chunk.decode() async for chunk in answer_events(Metrics(), "/v1/ask", first, steps, finish, drain)]

    events = [line for chunk in anyio.run(stream) for line in chunk.splitlines() if line.startswith("event:")]
    assert events == ["event: delta", "event: done"] and closed == [True]
