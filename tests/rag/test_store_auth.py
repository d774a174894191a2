"""A Chroma server that wants credentials: a user and password in CHROMA_URL, or a token
(GEMRAG_CHROMA_TOKEN), reach it, and no message shows them.

Chroma 1.x's own server (`chroma run`) checks no credentials (its CHROMA_SERVER_AUTHN_*
settings were the 0.x Python server's), so one that wants them sits behind a reverse proxy:
these tests put a small one in front of the test Chroma server, as nginx or Caddy would.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pydantic import SecretStr

from rag.kv import StoreUnavailable
from rag.settings import Settings
from rag.store import Store, drop_collection, list_collections

pytestmark = pytest.mark.chroma_server

PREFIX = "/chroma"  # the path the proxy serves Chroma under, as one that serves other apps too


@contextmanager
def auth_proxy(upstream: str, header: str, wanted: str, revoked: threading.Event | None = None) -> Iterator[str]:
    """A proxy to the Chroma server at `upstream`, served under PREFIX, that answers 401
    (an HTML page, as nginx does) to a request whose `header` is not `wanted`, and to every
    request once `revoked` is set (a password changed under a running server)."""

    class Proxy(BaseHTTPRequestHandler):
        def forward(self) -> None:
            if not self.path.startswith(PREFIX + "/"):
                self.reply(404, b"not found", "text/plain")
            elif self.headers.get(header) != wanted or (revoked is not None and revoked.is_set()):
                self.reply(401, b"<html><head><title>401 Authorization Required</title></head></html>", "text/html")
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = httpx.request(self.command, upstream + self.path[len(PREFIX):], content=body,
                                       headers={"Content-Type": self.headers.get("Content-Type") or "application/json"})
                self.reply(answer.status_code, answer.content, answer.headers.get("Content-Type", "application/json"))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        def reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _creates_and_lists_a_collection(settings: Settings) -> None:
    name = f"auth-{uuid.uuid4().hex[:8]}"
    try:
        Store(settings, "test:emb:2", name)
        assert name in list_collections(settings)
    finally:
        drop_collection(settings, name)


def test_a_user_and_password_in_chroma_url_reach_a_server_behind_basic_auth_and_a_path(settings, chroma_server_url):
    """They were dropped (and the path with them): every request went unauthenticated to
    host:port/api/v2 and was refused, so a server that wants credentials could not be used.
    Percent-encoded characters in them are decoded, as in any URL."""
    with auth_proxy(chroma_server_url, "Authorization", basic("gem rag", "p@ss:w/rd")) as proxy:
        url = f"http://gem%20rag:p%40ss%3Aw%2Frd@{proxy}{PREFIX}"
        _creates_and_lists_a_collection(settings.model_copy(update={"chroma_url": url}))


@pytest.mark.parametrize(("header", "wanted"), [("Authorization", "Bearer tok-123"), ("X-Chroma-Token", "tok-123")])
def test_a_token_reaches_a_server_in_the_header_it_is_set_to_go_in(settings, chroma_server_url, header, wanted):
    with auth_proxy(chroma_server_url, header, wanted) as proxy:
        token = {"chroma_token": SecretStr("tok-123"), "chroma_token_header": header}
        _creates_and_lists_a_collection(settings.model_copy(update={"chroma_url": f"http://{proxy}{PREFIX}", **token}))


def test_refused_credentials_are_a_store_refusal_naming_host_and_port_never_them(settings, chroma_server_url):
    """It said "Cannot reach the Chroma server ... Could not connect to tenant default_tenant",
    when the server had answered: it refused the credentials, which are what to check."""
    with auth_proxy(chroma_server_url, "Authorization", basic("admin", "right")) as proxy:
        for update in ({"chroma_url": f"http://admin:pw1234@{proxy}{PREFIX}"},
                       {"chroma_url": f"http://{proxy}{PREFIX}", "chroma_token": SecretStr("pw1234")}):
            with pytest.raises(StoreUnavailable) as refused:
                Store(settings.model_copy(update=update), "test:emb:2", "never-made")
            message = str(refused.value)
            assert message.startswith(f"The Chroma server at {proxy} (CHROMA_URL) refused") and refused.value.documents
            assert "GEMRAG_CHROMA_TOKEN" in message
            assert "pw1234" not in message and "admin" not in message and PREFIX not in message


def test_credentials_refused_after_the_client_was_made_are_a_store_refusal_not_an_unexpected_error(
        settings, chroma_server_url):
    """chromadb checks credentials when its client is made only: a later 401 (the password
    changed, the token revoked) came through as a bare Exception holding the proxy's page."""
    revoked, name = threading.Event(), f"auth-{uuid.uuid4().hex[:8]}"
    try:
        with auth_proxy(chroma_server_url, "Authorization", basic("admin", "pw1234"), revoked) as proxy:
            store = Store(settings.model_copy(update={"chroma_url": f"http://admin:pw1234@{proxy}{PREFIX}"}),
                          "test:emb:2", name)
            assert store.collection.count() == 0
            revoked.set()
            with pytest.raises(StoreUnavailable) as refused:
                store.collection.count()
    finally:
        drop_collection(settings.model_copy(update={"chroma_url": chroma_server_url}), name)
    message = str(refused.value)
    assert message.startswith(f"The Chroma server at {proxy} (CHROMA_URL) refused") and refused.value.documents
    assert "401 Authorization Required" in message and "pw1234" not in message


@pytest.mark.slow
def test_the_cli_refused_by_a_chroma_server_says_so_in_one_line_without_the_password(
        settings, chroma_server_url, tmp_path):
    with auth_proxy(chroma_server_url, "Authorization", basic("admin", "right")) as proxy:
        env = {**os.environ, "GEMRAG_DATA_DIR": str(settings.data_dir),
               "CHROMA_URL": f"http://admin:pw1234@{proxy}{PREFIX}"}
        done = subprocess.run([sys.executable, "-m", "rag", "ask", "When does the canteen open?"],
                              capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 2, done.stderr
    assert f"The Chroma server at {proxy} (CHROMA_URL) refused" in done.stderr
    assert "pw1234" not in done.stderr and "Traceback" not in done.stderr
