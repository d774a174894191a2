"""Who may reach what in deploy/: /metrics wants a token that Prometheus sends, Redis a
password and Chroma a token that the server and the worker are given, all from Secret
objects (Kubernetes) or deploy/.env (compose), never from a value in the repository. The
environment variable each manifest sets is checked against the setting rag/settings.py
really reads from it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rag.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KEYS_SECRET = "gemrag-keys"  # created by the deployer from deploy/k8s/keys.env (keys.env.example)


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def rendered(kustomization: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render deploy/k8s"
    result = run(kubectl, "kustomize", str(kustomization))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def pod(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
    spec: dict[str, Any] = found["spec"]["template"]["spec"]
    return spec


def container(docs: list[dict[str, Any]], kind: str, name: str, container_name: str | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod(docs, kind, name)["containers"]
    return containers[0] if container_name is None else next(c for c in containers if c["name"] == container_name)


def secret_ref(c: dict[str, Any], variable: str) -> dict[str, Any]:
    """The required Secret key a container's variable comes from: named in `env` (envFrom alone
    would start the pod without it, the service then running open)."""
    entry = next((e for e in c.get("env", []) if e["name"] == variable), None)
    assert entry is not None, f"{c['name']} does not name {variable} in env"
    ref: dict[str, Any] = entry["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional", False), f"{c['name']}: {variable} is optional, so a missing key runs it open"
    return ref


def example_keys(path: Path) -> set[str]:
    """The variables an example env file lists, each empty: the filled-in copy stays out of git."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert all(line.endswith("=") for line in lines), f"{path.name} ships a value"
    return {line.removesuffix("=") for line in lines}


def test_the_metrics_token_setting_is_read_from_the_variable_deploy_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMRAG_METRICS_TOKEN", "scrape-me")
    token = Settings().metrics_token
    assert token is not None and token.get_secret_value() == "scrape-me"


def test_compose_servers_require_a_metrics_token_and_prometheus_sends_it() -> None:
    """/metrics names routes, models, budgets and spending, and compose served it to anyone on
    the network; now the servers refuse to start without the token, and Prometheus's scrape job
    sends it from a secret file compose makes of the same variable."""
    spec = compose()
    services = spec["services"]
    for name in ("server-1", "server-2"):
        value = services[name]["environment"]["GEMRAG_METRICS_TOKEN"]
        assert value.startswith("${GEMRAG_METRICS_TOKEN:?"), f"{name}: required from deploy/.env, never a literal"
    assert "GEMRAG_METRICS_TOKEN" in example_keys(DEPLOY / "env.example")

    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "gemrag")
    authorization = job["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"  # the server reads "Authorization: Bearer <token>"
    assert "credentials" not in authorization, "the token is read from a file, never written in prometheus.yml"
    mounted = {
        (f"/run/secrets/{s}" if isinstance(s, str) else s.get("target", f"/run/secrets/{s['source']}")):
            (s if isinstance(s, str) else s["source"])
        for s in services["prometheus"].get("secrets", [])
    }
    secret = mounted.get(authorization["credentials_file"])
    assert secret, f"Prometheus mounts nothing at {authorization['credentials_file']}"
    assert spec["secrets"][secret] == {"environment": "GEMRAG_METRICS_TOKEN"}, "the servers' token, not another"


def test_prometheus_config_with_the_token_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus) from .ci/run"
    checked = run(promtool, "check", "config", "--syntax-only", str(DEPLOY / "prometheus/prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_kubernetes_server_reads_its_metrics_token_from_the_keys_secret() -> None:
    docs = rendered(DEPLOY / "k8s/overlays/production")
    ref = secret_ref(container(docs, "Deployment", "gemrag-server"), "GEMRAG_METRICS_TOKEN")
    assert ref == {"name": KEYS_SECRET, "key": "GEMRAG_METRICS_TOKEN"}
    assert "GEMRAG_METRICS_TOKEN" in example_keys(DEPLOY / "k8s/keys.env.example")


def test_no_secret_value_is_committed_in_deploy() -> None:
    """Tokens and passwords come from the deployer's files; what deploy/ holds refers to them."""
    assignment = re.compile(r"(?im)^[ \t-]*[a-z_]*(?:token|password)[a-z_]*[ \t]*[:=][ \t]*(\S[^#\n]*)?")
    for path in (p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".example"}):
        for match in assignment.finditer(path.read_text()):
            value = (match.group(1) or "").strip()
            assert not value or value.startswith(("${", "$(")), f"{path.name}: {match.group(0).strip()}"
