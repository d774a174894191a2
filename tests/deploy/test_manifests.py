"""deploy/ checked statically, as far as this machine allows (it has a Docker client but no
daemon, so no image is built here): the Dockerfile passes hadolint, the compose file passes
the Compose specification's schema (and Prometheus's and Alertmanager's configs promtool and
amtool), the Kubernetes base and overlay render with kustomize and
every resource validates against the Kubernetes API schema, and every command the manifests
run is a module that exists."""

from __future__ import annotations

import importlib.util
import re
import shutil

import kubernetes_validate
import pytest
import yaml

from rag.settings import Settings
from tests.fakes.manifests import DEPLOY, rendered, run

K8S_VERSION = "1.32.0"


def test_dockerfile_passes_hadolint() -> None:
    result = run("hadolint", "--failure-threshold", "info", str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_exist_and_are_not_ignored() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text()
    sources = [m.group(1) for m in re.finditer(r"^COPY (?!--from)(\S+)", text, re.M)]
    assert sources, "the builder stage copies the project in"
    for source in (s for line in sources for s in line.split()):
        assert (DEPLOY.parent / source).exists(), source
        assert f"!{source.rstrip('/')}" in ignored.replace("/\n", "\n"), f"{source} is excluded by the dockerignore"


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert text.count("FROM ") >= 2, "multi-stage"


def test_compose_file_matches_the_compose_spec() -> None:
    result = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_servers_a_worker_and_persistent_redis() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    expected = {"server-1", "server-2", "worker", "redis", "chroma", "prometheus", "alertmanager", "grafana"}
    assert expected <= set(services)
    assert "--appendonly" in services["redis"]["command"], "the ledger must survive a Redis restart"


@pytest.mark.parametrize("kustomization", ["k8s/base", "k8s/overlays/production"])
def test_kubernetes_manifests_validate_against_the_api_schema(kustomization: str) -> None:
    docs = rendered(DEPLOY / kustomization)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"} <= kinds
    assert "Secret" not in kinds  # created from a keys file kept out of git (deploy/k8s/keys.env.example)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_server_deployment_has_probes_and_resources_and_the_hpa_scales_on_streams() -> None:
    docs = rendered(DEPLOY / "k8s/overlays/production")
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    server = by_name[("Deployment", "gemrag-server")]["spec"]["template"]["spec"]["containers"][0]
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["resources"]["requests"] and server["resources"]["limits"]
    hpa = by_name[("HorizontalPodAutoscaler", "gemrag-server")]["spec"]
    assert {m["type"] for m in hpa["metrics"]} == {"Resource", "Pods"}
    assert by_name[("Deployment", "gemrag-server")]["spec"]["replicas"] == 3  # the overlay's patch applied


def test_every_command_the_deployment_runs_is_a_module_that_exists() -> None:
    docs = rendered(DEPLOY / "k8s/base")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands = [
        c.get("args") or c.get("command")
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    commands += [s["command"] for s in compose["services"].values() if isinstance(s.get("command"), list)]
    commands.append(re.findall(r'"([^"]+)"', re.search(r"^CMD \[(.*)\]", (DEPLOY / "Dockerfile").read_text(), re.M)[1]))
    modules = {cmd[cmd.index("-m") + 1] for cmd in commands if cmd and cmd[0] == "python"}
    assert {"rag.server", "ingest.worker"} <= modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"{module} is run by deploy/ but does not exist"


def test_the_server_and_the_worker_share_one_data_dir() -> None:
    """An upload is staged in the data dir of the server pod that received it and ingested by
    a worker pod: with a volume of each pod's own (emptyDir), the worker finds no file and
    every upload job fails. Both mount one claim that many nodes may mount at once."""
    docs = rendered(DEPLOY / "k8s/overlays/production")
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    data_dir = by_name[("ConfigMap", "gemrag-config")]["data"]["GEMRAG_DATA_DIR"]
    claims = set()
    for name in ("gemrag-server", "gemrag-worker"):
        pod = by_name[("Deployment", name)]["spec"]["template"]["spec"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == data_dir)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert "persistentVolumeClaim" in volume, f"{name} keeps {data_dir} on a volume of its own"
        claims.add(volume["persistentVolumeClaim"]["claimName"])
    assert len(claims) == 1, claims
    claim = by_name[("PersistentVolumeClaim", claims.pop())]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_server_is_killed_only_after_its_drain() -> None:
    """SIGTERM lets open answers finish for `drain_s`; a kill deadline shorter than that (and,
    on Kubernetes, the preStop wait before it) cuts them mid-stream on every rolling update."""
    drain_s = Settings().drain_s
    docs = rendered(DEPLOY / "k8s/base")
    pod = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gemrag-server")
    spec = pod["spec"]["template"]["spec"]
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain_s
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("server-1", "server-2"):
        grace = compose["services"][name]["stop_grace_period"]
        assert int(grace.removesuffix("s")) > drain_s, f"{name}: docker kills it {grace} after SIGTERM"


@pytest.mark.parametrize("keys_file", ["deploy/.env", "deploy/k8s/keys.env"])
def test_the_files_that_hold_the_keys_are_never_committed(keys_file: str) -> None:
    """deploy/env.example (compose) and deploy/k8s/keys.env.example (the Kubernetes Secret) say
    to copy them with the Gemini key and the API key hashes in them: a `git add -A` in the
    checkout must not commit that. Kubernetes' keys.env was a tracked file the base generated
    its Secret from, filled in where it lay."""
    ignored = run("git", "-C", str(DEPLOY.parent), "check-ignore", "--quiet", "--no-index", keys_file)
    assert ignored.returncode == 0, f"{keys_file} is not in .gitignore"
    tracked = run("git", "-C", str(DEPLOY.parent), "ls-files", "deploy")
    assert not [f for f in tracked.stdout.split() if f.endswith(("keys.env", "/.env"))]


def test_compose_publishes_no_dashboard_with_a_default_login() -> None:
    """Grafana came up as admin/admin and Prometheus without any login, both on every
    interface of the host: anyone who reached it read (Grafana: edited) the spending and
    budget panels. The admin password comes from deploy/.env; both listen on this host only."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), "required from deploy/.env, never a literal"
    assert "GRAFANA_ADMIN_PASSWORD=" in (DEPLOY / "env.example").read_text()
    for name in ("grafana", "prometheus", "alertmanager"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name


def test_prometheus_sends_its_alerts_to_the_alertmanager_compose_runs() -> None:
    """The alert rules fired into Prometheus's own UI only: nobody was told. Prometheus's
    config is valid and names the compose service and the port Alertmanager listens on; the
    Alertmanager config it mounts passes amtool, with the receiver the README says to fill in."""
    promtool, amtool = shutil.which("promtool"), shutil.which("amtool")
    assert promtool and amtool, "promtool and amtool (Debian's prometheus, prometheus-alertmanager) from .ci/run"
    config = DEPLOY / "prometheus/prometheus.yml"
    checked = run(promtool, "check", "config", "--syntax-only", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    alertmanager = services["alertmanager"]
    targets = [t for a in yaml.safe_load(config.read_text())["alerting"]["alertmanagers"]
               for s in a["static_configs"] for t in s["targets"]]
    published = {port.rsplit(":", 1)[1] for port in alertmanager["ports"]}
    assert targets == [f"alertmanager:{p}" for p in published]
    mounted = {v.split(":")[1]: DEPLOY / v.split(":")[0] for v in alertmanager["volumes"] if v.startswith("./")}
    flag = next(a for a in alertmanager["command"] if a.startswith("--config.file="))
    source = mounted[flag.removeprefix("--config.file=")]
    checked = run(amtool, "check-config", str(source))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    receivers = [r["name"] for r in yaml.safe_load(source.read_text())["receivers"]]
    assert receivers == ["operator"]


def test_the_overlay_creates_the_namespace_it_puts_everything_in() -> None:
    """The overlay set `namespace: gemrag` but nothing created it: the documented first step
    (the keys Secret in that namespace) and `kubectl apply -k` failed on a fresh cluster."""
    docs = rendered(DEPLOY / "k8s/overlays/production")
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == ["gemrag"]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"gemrag"}
