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


def test_health_probes_answer_head(settings: Settings) -> None:
    """Some load balancers probe with HEAD: it was 405, which marks a healthy replica down."""
    with TestClient(create_app(settings.model_copy(update={"api_keys": ""}), mounts=[])) as client:
        for path in ("/healthz", "/readyz"):
            probed = client.head(path)
            assert (probed.status_code, probed.content) == (200, b""), path
            assert client.get(path).status_code == 200
