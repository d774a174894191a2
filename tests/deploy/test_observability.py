"""The dashboard and the alert rules against what the server really exports: the dashboard
JSON has the shape Grafana provisions, every metric a panel or a rule queries is one the API
serves at /metrics, and every alert fires (and stays quiet) as promtool's unit tests say."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient

from rag.server.app import create_app
from rag.settings import Settings
from rag.types import Usage

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana/dashboards/gemrag.json"
ALERTS = DEPLOY / "prometheus/alerts.yml"
HPA = DEPLOY / "k8s/base/hpa.yaml"  # scales on a per-pod metric, through a custom-metrics adapter

# What Grafana's file provisioning needs of a dashboard, and what each panel needs to draw.
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
                "properties": {
                    "type": {"enum": ["timeseries", "stat", "gauge", "bargauge", "table", "heatmap"]},
                    "gridPos": {
                        "type": "object",
                        "required": ["x", "y", "w", "h"],
                        "properties": {"w": {"type": "integer", "minimum": 1, "maximum": 24}},
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "required": ["refId", "expr"]},
                    },
                },
            },
        },
    },
}
_METRIC = re.compile(r"\bgemrag_[a-z0-9_]+")


def exported_series(settings: Settings) -> set[str]:
    """Every sample name the server's /metrics can carry: counters as `_total`, histograms as
    `_bucket`/`_sum`/`_count`, read from the TYPE lines (labelled families show them even
    before their first sample)."""
    app = create_app(settings.model_copy(update={"api_keys": ""}), mounts=[])
    with TestClient(app) as client:
        text = client.get("/metrics").text
    names: set[str] = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}
        names |= {family.removesuffix("_total") + s for s in suffixes.get(kind, [""])}
    return names


def queried(text: str) -> set[str]:
    return set(_METRIC.findall(text))


def test_dashboard_matches_grafanas_shape() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dashboard, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"


def test_every_queried_metric_is_exported(settings: Settings) -> None:
    """Panels, alert rules and the autoscaler: a metric that is not exported draws nothing,
    never fires, or (the HPA) leaves the pods unscaled, all silently."""
    exported = exported_series(settings)
    dashboard = json.loads(DASHBOARD.read_text())
    panel_queries = {t["expr"] for p in dashboard["panels"] for t in p["targets"]}
    wanted = queried("\n".join(panel_queries)) | queried(ALERTS.read_text()) | queried(HPA.read_text())
    missing = wanted - exported
    assert not missing, f"queried but not exported by /metrics: {sorted(missing)}"


@pytest.mark.parametrize(
    "topic",
    [
        "request_duration", "first_token", "errors", "tokens", "cost_usd", "cache", "routes", "ratelimit", "quota",
        "jobs", "budget",
    ],
)
def test_dashboard_covers(topic: str) -> None:
    queries = " ".join(t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"])
    assert topic in queries


def test_alert_rules_fire_as_their_unit_tests_say() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is installed by .ci/run"
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=ALERTS.parent, capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_standing_figures_are_read_at_scrape_time(settings: Settings) -> None:
    """A retired model still configured reads 1 (the alert's input); the daily spend and its
    budget come from the shared ledger."""
    retired = settings.model_copy(update={"flash_model": "gemini-2.5-flash", "api_keys": "", "daily_budget_usd": 7.5})
    app = create_app(retired, mounts=[])
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert 'gemrag_model_retired{model="gemini-2.5-flash",use="flash"} 1.0' in text
    assert f'gemrag_model_retired{{model="{settings.pro_model}",use="pro"}} 0.0' in text
    assert 'gemrag_budget_limit_usd{scope="daily"} 7.5' in text
    assert 'gemrag_budget_spent_usd{scope="daily"} 0.0' in text


def test_budget_alerts_are_counted_and_monthly_spending_reported(settings: Settings) -> None:
    monthly = settings.model_copy(update={"api_keys": "", "daily_budget_usd": 1.0, "monthly_budget_usd": 20.0})
    app = create_app(monthly, mounts=[])
    ledger = app.state.services.backend.ledger
    ledger.record("alice/s1", "gemini-3.8-flash", Usage(prompt_tokens=100), "answer", 0.85)
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert 'gemrag_budget_alerts_total{scope="daily",threshold="0.5"} 1.0' in text
    assert 'gemrag_budget_alerts_total{scope="daily",threshold="0.8"} 1.0' in text
    assert 'gemrag_budget_spent_usd{scope="monthly"} 0.85' in text
    assert 'gemrag_budget_limit_usd{scope="monthly"} 20.0' in text
