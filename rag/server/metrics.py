"""Prometheus metrics of one replica, served at GET /metrics. Each replica keeps its own
registry; Prometheus sums them. The names below are the contract the ops dashboard builds
on (README: Metrics): rename one and the dashboard breaks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rag.costs import Call, CallKind, Ledger, Priced, Scope
from rag.kv import StoreUnavailable
from rag.settings import Settings
from rag.types import Usage

log = logging.getLogger("rag.server")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.watching = False
        r = self.registry
        self.requests = Counter(
            "gemrag_http_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "gemrag_http_request_duration_seconds", "Time to the end of the response (streams: to the last event)",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttfb = Histogram(
            "gemrag_ask_time_to_first_byte_seconds", "From the request to the first answer event sent",
            ["route_kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram(
            "gemrag_ask_time_to_first_token_seconds", "The chain's time to the model's first token",
            ["route_kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter(
            "gemrag_model_tokens", "Tokens of model calls, by model, call kind and token type",
            ["model", "kind", "type"], registry=r)
        self.cost = Counter(
            "gemrag_model_cost_usd", "Money spent on model calls, by model and call kind", ["model", "kind"],
            registry=r)
        self.calls = Counter("gemrag_model_calls", "Model calls made, by model and call kind", ["model", "kind"],
                             registry=r)
        self.cache = Counter("gemrag_answer_cache", "Answers by cache result (hit, miss)", ["result"], registry=r)
        self.routes = Counter("gemrag_routes",
                              "Answers by route kind (flash, pro, chosen, fallback, cached, offline, degraded)",
                              ["kind"], registry=r)
        self.route_decisions = Counter(
            "gemrag_route_decisions", "Answers whose model load or money changed: pro_quota, pro_budget, flash_quota",
            ["decision"], registry=r)
        self.streams = Gauge("gemrag_streams_active", "Answer streams open now", registry=r)
        self.model_api_up = Gauge("gemrag_model_api_up", "1 when the model API answered its last check (offline: 1, "
                                  "answers need none)", registry=r)
        self.disconnects = Counter("gemrag_stream_disconnects", "Answer streams the client left before the end",
                                   registry=r)
        self.errors = Counter("gemrag_errors", "Errors answered, by kind and route template", ["kind", "route"],
                              registry=r)
        self.ratelimit_wait = Histogram(
            "gemrag_ratelimit_wait_seconds", "Time a model call waited for a global rate-limit slot", ["model"],
            buckets=(0, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 60), registry=r)
        self.ratelimit_queue = Gauge(
            "gemrag_ratelimit_queue_depth", "Calls waiting for a rate-limit slot, all replicas", ["model"], registry=r)
        self.quota_eta = Gauge(
            "gemrag_quota_exhausted_in_seconds",
            "At the current request rate, seconds until the daily quota runs out (+Inf: no daily limit or no traffic)",
            ["model"], registry=r)
        self.quota_used = Gauge("gemrag_quota_requests_today", "Requests counted against the daily limit",
                                ["model"], registry=r)
        self.jobs = Gauge("gemrag_jobs", "Ingest jobs by state (queued, running, done, failed)", ["state"], registry=r)
        self.budget_alerts = Counter(
            "gemrag_budget_alerts", "Budget alerts raised, by budget and threshold reached", ["scope", "threshold"],
            registry=r)
        self.job_queue = Gauge("gemrag_job_queue_depth", "Ingest jobs waiting in the queue", registry=r)
        self.workers = Gauge("gemrag_workers_alive", "Ingest workers whose heartbeat is within job_heartbeat_s",
                             registry=r)

    def watch(self, settings: Settings, ledger: Ledger) -> None:
        """Adds the figures read at scrape time (Standing), once per registry."""
        if not self.watching:
            self.registry.register(Standing(settings, ledger))
            if ledger.alerts is not None:
                ledger.alerts.observers.append(
                    lambda alert: self.budget_alerts.labels(alert.scope, f"{alert.threshold:g}").inc()
                )
            self.watching = True

    def charged(self, model: str, usage: Usage, kind: CallKind, cost_usd: float) -> None:
        for kind_of_token, n in (("prompt", usage.prompt_tokens), ("output", usage.output_tokens),
                                 ("cached", usage.cached_tokens), ("thinking", usage.thinking_tokens)):
            if n:
                self.tokens.labels(model, kind, kind_of_token).inc(n)
        self.cost.labels(model, kind).inc(cost_usd)
        self.calls.labels(model, kind).inc()


class Standing(Collector):
    """Read at each scrape, from the settings and the shared ledger, so every replica reports
    the same figures: configured models past their shutdown date (catalogue), and spending
    against the budgets (what the budget alerts in deploy/prometheus/alerts.yml watch)."""

    USES = ("flash_model", "pro_model", "lite_model", "embedding_model")

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger

    def collect(self) -> Iterator[GaugeMetricFamily]:
        today = datetime.now(UTC).date()
        retired = GaugeMetricFamily(
            "gemrag_model_retired", "1 when a configured model is past its shutdown date (catalogue)",
            labels=["model", "use"],
        )
        for use in self.USES:
            name = getattr(self.settings, use)
            row = self.settings.models.get(name)
            retired.add_metric([name, use.removesuffix("_model")], float(bool(row and row.retired_on(today))))
        yield retired
        spent = GaugeMetricFamily("gemrag_budget_spent_usd", "Money spent in the budget's period", labels=["scope"])
        limit = GaugeMetricFamily("gemrag_budget_limit_usd", "The budget of the period", labels=["scope"])
        budgets: tuple[tuple[Scope, float | None], ...] = (
            ("daily", self.settings.daily_budget_usd),
            ("monthly", self.settings.monthly_budget_usd),
        )
        try:
            for scope, usd in budgets:
                if usd is not None:
                    spent.add_metric([scope], self.ledger.spent_usd(scope))
                    limit.add_metric([scope], usd)
        except StoreUnavailable as exc:  # the other metrics are still served (see app.observe_stores)
            log.warning("/metrics: budget spending skipped: %s", exc)
        yield spent
        yield limit


class MeteredLedger(Ledger):
    """The chain's ledger, also counting every charge into the replica's metrics."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        super().__init__(settings)
        self.metrics = metrics

    def charged(self, call: Call, priced: Priced) -> None:
        self.metrics.charged(call.model, call.usage, call.kind, priced.cost_usd)
