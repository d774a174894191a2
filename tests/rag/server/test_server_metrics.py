"""/metrics while a store it reads at scrape time is down."""

from __future__ import annotations

import socket

from fastapi.testclient import TestClient

from rag.server.app import create_app
from rag.settings import Settings


def test_metrics_are_served_while_redis_is_down(settings: Settings) -> None:
    """Job counts and budget spending are read from Redis at each scrape. With Redis down the
    scrape answered 500, so Prometheus lost every figure of the replica (errors, latency,
    streams) for the whole outage, when they are needed most; now only those are left out."""
    with socket.socket() as probe:  # a port nothing listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/9", "api_keys": ""})
    with TestClient(create_app(down, mounts=[])) as client:
        client.get("/healthz")
        scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert 'gemrag_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in scraped.text
    assert "gemrag_budget_spent_usd{" not in scraped.text  # unknown, so not reported as 0


def test_a_fault_of_ours_is_a_json_500_counted_and_logged_with_its_request_id(
    settings: Settings, monkeypatch, caplog
) -> None:
    """An error no handler expects (a store returning what it should not) was answered with a
    bare text/plain "Internal Server Error", without the request id, and never counted in
    gemrag_errors_total, so the error-rate alert did not see it."""
    import logging

    import rag.server.app as app_module

    def broken(settings: Settings) -> list[object]:
        raise TypeError("'NoneType' object is not iterable")

    monkeypatch.setattr(app_module, "list_collections_out", broken)
    with TestClient(create_app(settings.model_copy(update={"api_keys": ""}), mounts=[])) as client:
        with caplog.at_level(logging.ERROR, logger="rag.server"):
            failed = client.get("/v1/collections", headers={"X-Request-ID": "req-fault-1"})
        scraped = client.get("/metrics").text
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "req-fault-1"
    assert failed.json()["error"] == "internal_error" and "req-fault-1" in failed.json()["message"]
    assert "NoneType" not in failed.text  # the cause is in the log, not shown to the client
    assert 'gemrag_errors_total{kind="internal_error",route="/v1/collections"} 1.0' in scraped
    assert 'gemrag_http_requests_total{method="GET",route="/v1/collections",status="500"} 1.0' in scraped
    assert any("NoneType" in (r.exc_text or "") for r in caplog.records)


def test_health_probes_answer_head(settings: Settings) -> None:
    """Some load balancers probe with HEAD: it was 405, which marks a healthy replica down."""
    with TestClient(create_app(settings.model_copy(update={"api_keys": ""}), mounts=[])) as client:
        for path in ("/healthz", "/readyz"):
            probed = client.head(path)
            assert (probed.status_code, probed.content) == (200, b""), path
            assert client.get(path).status_code == 200


def test_the_quota_of_every_model_the_answers_use_is_exported_flash_lite_included(gemini_settings: Settings) -> None:
    """Flash-Lite rewrites follow-ups, reranks and answers when a budget degrades: its quota
    was the one model of the lineup /metrics did not show, so no alert could watch it."""
    with TestClient(create_app(gemini_settings)) as client:
        scraped = client.get("/metrics").text
    for model in (gemini_settings.flash_model, gemini_settings.lite_model, gemini_settings.embedding_model):
        assert f'gemrag_quota_requests_today{{model="{model}"}}' in scraped, model


def test_with_a_metrics_token_only_a_scraper_that_sends_it_reads_the_figures(settings: Settings) -> None:
    """/metrics named every route, model, budget and what was spent to anyone who could reach
    the port: with `metrics_token` set it asks for the token, as Prometheus sends it."""
    guarded = Settings(data_dir=settings.data_dir, api_key=None, metrics_token="scrape-secret-1234")
    with TestClient(create_app(guarded, mounts=[])) as client:
        refused = [client.get("/metrics"), client.get("/metrics", headers={"Authorization": "Bearer wrong"})]
        scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1234"})
        assert client.get("/healthz").status_code == 200  # the probes stay open
    for response in refused:
        assert response.status_code == 401 and "metrics token" in response.json()["message"]
        assert "gemrag_" not in response.text and "scrape-secret" not in response.text
    assert scraped.status_code == 200 and "gemrag_http_requests_total" in scraped.text
    assert Settings(api_key=None, metrics_token="  ").metrics_token is None  # GEMRAG_METRICS_TOKEN= : open
    assert Settings(api_key=None, metrics_token="tok\n").metrics_token.get_secret_value() == "tok"  # type: ignore[union-attr]
