"""Who may reach what in deploy/: /metrics wants a token that Prometheus sends, Redis a
password and Chroma a token that the server and the worker are given, all from Secret
objects (Kubernetes) or deploy/.env (compose), never from a value in the repository. The
environment variable each manifest sets is checked against the setting rag/settings.py
really reads from it."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client
import yaml
from pydantic import SecretStr

from rag.errors import ConfigError
from rag.kv import StoreUnavailable
from rag.settings import Settings, load_settings
from rag.store import chroma_client
from tests.fakes.manifests import DEPLOY, rendered, run

KEYS_SECRET = "gemrag-keys"  # created by the deployer from deploy/k8s/keys.env (keys.env.example)


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


@pytest.mark.parametrize("deployment", ["compose", "kubernetes"])
def test_a_deployed_server_with_a_blank_metrics_token_refuses_to_start(
        deployment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes checks only that the Secret's key exists: keys.env.example ships
    `GEMRAG_METRICS_TOKEN=`, and a server given that blank token served /metrics to anyone.
    With the environment a deployed server gets, a blank token now stops it at start."""
    if deployment == "compose":
        environment = compose()["services"]["server-1"]["environment"]
        fixed = {k: v for k, v in environment.items() if isinstance(v, str) and not v.startswith("${")}
    else:
        env = env_of(container(rendered(DEPLOY / "k8s/overlays/production"), "Deployment", "gemrag-server"))
        fixed = {k: v for k, v in env.items() if isinstance(v, str) and "$(" not in v}
    for name, value in fixed.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GEMRAG_METRICS_TOKEN", "")
    with pytest.raises(ConfigError, match=r"GEMRAG_METRICS_TOKEN is blank or unset.*/metrics open"):
        load_settings(api_key=None)
    monkeypatch.setenv("GEMRAG_METRICS_TOKEN", "scrape-me")
    assert load_settings(api_key=None).metrics_token is not None


def test_no_secret_value_is_committed_in_deploy() -> None:
    """Tokens and passwords come from the deployer's files; what deploy/ holds refers to them
    (a switch such as GEMRAG_METRICS_TOKEN_REQUIRED holds no secret)."""
    assignment = re.compile(r"(?im)^[ \t-]*[a-z_]*(?:token|password)[a-z_]*[ \t]*[:=][ \t]*(\S[^#\n]*)?")
    for path in (p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".example"}):
        for match in assignment.finditer(path.read_text()):
            value = (match.group(1) or "").strip()
            switch = value.strip("\"'").lower() in ("true", "false")
            assert not value or switch or value.startswith(("${", "$(")), f"{path.name}: {match.group(0).strip()}"


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_the_store_settings_are_read_from_the_variables_deploy_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:pw@gemrag-redis:6379/0")
    monkeypatch.setenv("GEMRAG_CHROMA_TOKEN", "chroma-token")
    settings = Settings()
    assert settings.redis_url == "redis://:pw@gemrag-redis:6379/0"
    assert settings.chroma_token is not None and settings.chroma_token.get_secret_value() == "chroma-token"
    assert settings.chroma_token_header == "Authorization"  # what the proxy checks, as "Bearer <token>"


def test_kubernetes_redis_wants_the_password_the_server_and_worker_send() -> None:
    """Redis (the ledger, budgets, queue and cache) took any connection in the namespace."""
    docs = rendered(DEPLOY / "k8s/overlays/production")
    redis = container(docs, "StatefulSet", "gemrag-redis")
    assert redis["args"][redis["args"].index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    password = secret_ref(redis, "REDIS_PASSWORD")
    assert password["name"] == KEYS_SECRET
    assert secret_ref(redis, "REDISCLI_AUTH") == password  # the probe authenticates ...
    assert "grep -q PONG" in " ".join(redis["readinessProbe"]["exec"]["command"])  # ... and NOAUTH fails it
    for name in ("gemrag-server", "gemrag-worker"):
        app = container(docs, "Deployment", name)
        names = [e["name"] for e in app["env"]]
        assert secret_ref(app, "REDIS_PASSWORD") == password
        assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL"), "$(REDIS_PASSWORD) expands only after it"
        assert env_of(app)["REDIS_URL"] == "redis://:$(REDIS_PASSWORD)@gemrag-redis:6379/0", name
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "gemrag-config")
    assert "REDIS_URL" not in config["data"], "a URL without the password, which the env entry would shadow"
    assert "REDIS_PASSWORD" in example_keys(DEPLOY / "k8s/keys.env.example")


def test_kubernetes_chroma_is_reached_only_through_its_token_check() -> None:
    """Chroma 1.x checks no credentials (CHROMA_SERVER_AUTHN_* are ignored by its server):
    Chroma listens on its pod's loopback, and the Service leads to the proxy that checks the
    token the server and the worker are given."""
    docs = rendered(DEPLOY / "k8s/overlays/production")
    chroma = container(docs, "StatefulSet", "gemrag-chroma", "chroma")
    proxy = container(docs, "StatefulSet", "gemrag-chroma", "auth-proxy")
    args = chroma["args"]
    assert args[args.index("--host") + 1] == "127.0.0.1" and "ports" not in chroma
    upstream = args[args.index("--port") + 1]
    template = (DEPLOY / "k8s/base/chroma-proxy.conf.template").read_text()
    assert re.findall(r"proxy_pass http://([^;]+);", template) == [f"127.0.0.1:{upstream}"] * 2
    listen = re.search(r"^\s*listen (\d+);", template, re.M)
    assert listen and [p["containerPort"] for p in proxy["ports"]] == [int(listen[1])]
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "gemrag-chroma")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [proxy["ports"][0]["name"]]

    token = secret_ref(proxy, "GEMRAG_CHROMA_TOKEN")
    assert token["name"] == KEYS_SECRET
    for name in ("gemrag-server", "gemrag-worker"):
        app = container(docs, "Deployment", name)
        assert secret_ref(app, "GEMRAG_CHROMA_TOKEN") == token, name
        assert "GEMRAG_CHROMA_TOKEN_HEADER" not in env_of(app)
    mounted = next(m for m in proxy["volumeMounts"] if m["mountPath"] == "/etc/nginx/templates")
    volume = next(v for v in pod(docs, "StatefulSet", "gemrag-chroma")["volumes"] if v["name"] == mounted["name"])
    generated = next(d for d in docs
                     if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"])
    assert generated["data"] == {"chroma-proxy.conf.template": template}
    assert "GEMRAG_CHROMA_TOKEN" in example_keys(DEPLOY / "k8s/keys.env.example")


def test_compose_redis_and_chroma_want_the_credentials_the_app_is_given() -> None:
    services = compose()["services"]
    redis = services["redis"]
    required = "${REDIS_PASSWORD:?"
    assert redis["command"][redis["command"].index("--requirepass") + 1].startswith(required)
    assert redis["environment"]["REDISCLI_AUTH"].startswith(required)
    assert "grep -q PONG" in " ".join(redis["healthcheck"]["test"])
    chroma, proxy = services["chroma"], services["chroma-auth"]
    command = chroma["command"]
    assert command[command.index("--host") + 1] == "127.0.0.1" and "ports" not in chroma
    assert proxy["network_mode"] == "service:chroma"  # the proxy answers at chroma:8000
    template = (DEPLOY / "k8s/base/chroma-proxy.conf.template").read_text()
    assert f"127.0.0.1:{command[command.index('--port') + 1]}" in template
    assert any(v.startswith("./k8s/base/chroma-proxy.conf.template:/etc/nginx/templates/") for v in proxy["volumes"])
    assert proxy["environment"]["GEMRAG_CHROMA_TOKEN"].startswith("${GEMRAG_CHROMA_TOKEN:?")
    for name in ("server-1", "server-2", "worker"):
        env = services[name]["environment"]
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/0", env["REDIS_URL"]), name
        assert env["CHROMA_URL"] == "http://chroma:8000"
        assert env["GEMRAG_CHROMA_TOKEN"].startswith("${GEMRAG_CHROMA_TOKEN:?"), name
    assert {"REDIS_PASSWORD", "GEMRAG_CHROMA_TOKEN"} <= example_keys(DEPLOY / "env.example")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url}")


@pytest.mark.slow
def test_redis_run_as_deployed_refuses_a_client_without_the_password(tmp_path: Path) -> None:
    """The manifest's Redis command, kubelet's $(REDIS_PASSWORD) filled in, on this machine;
    and its refusal of an empty password."""
    server = shutil.which("redis-server")
    assert server, "redis-server from .ci/run"
    docs = rendered(DEPLOY / "k8s/base")
    redis = container(docs, "StatefulSet", "gemrag-redis")
    url = env_of(container(docs, "Deployment", "gemrag-server"))["REDIS_URL"]
    # An empty password is no password to Redis: refused before the image's entrypoint starts it.
    assert redis["command"][2].endswith('exec docker-entrypoint.sh "$@"'), "the entrypoint drops root"
    guard = redis["command"][2].replace("docker-entrypoint.sh", "echo")
    empty = subprocess.run(["sh", "-c", guard, "sh", "started"], env={"REDIS_PASSWORD": ""},
                           capture_output=True, text=True, check=False)
    assert empty.returncode == 1 and "REDIS_PASSWORD is empty" in empty.stderr and "started" not in empty.stdout
    given = subprocess.run(["sh", "-c", guard, "sh", "started"], env={"REDIS_PASSWORD": "x y"},
                           capture_output=True, text=True, check=False)
    assert given.returncode == 0 and given.stdout == "started\n"
    port, password = free_port(), "a1b2c3d4e5"
    args = [a.replace("$(REDIS_PASSWORD)", password) for a in redis["args"][1:]]
    process = subprocess.Popen([server, *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL)
    try:
        url = url.replace("$(REDIS_PASSWORD)", password).replace("gemrag-redis:6379", f"127.0.0.1:{port}")
        deadline = time.monotonic() + 10
        while True:
            try:
                assert redis_client.Redis.from_url(url).ping()
                break
            except redis_client.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        with pytest.raises(redis_client.AuthenticationError):
            redis_client.Redis(port=port).ping()
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_chroma_behind_its_proxy_answers_only_the_token(tmp_path: Path) -> None:
    """The proxy's template filled in as the nginx image's entrypoint fills it, in front of
    `chroma run` with the manifest's arguments (other ports), and gemrag's own Chroma client
    with the right token, a wrong one and none; and the container command's refusal of an
    empty token, which any "Authorization: Bearer " would otherwise match."""
    nginx, chroma = shutil.which("nginx"), shutil.which("chroma")
    assert nginx, "nginx (Debian's nginx-light) from .ci/run"
    assert chroma, "chroma (chromadb's CLI) from the project's install"
    docs = rendered(DEPLOY / "k8s/base")
    proxy = container(docs, "StatefulSet", "gemrag-chroma", "auth-proxy")
    guard = proxy["command"][2].replace("/docker-entrypoint.sh", "echo")
    for refused in ("", 'a"b', "a b", "${x}"):
        ran = subprocess.run(["sh", "-c", guard, "sh", "started"], env={"GEMRAG_CHROMA_TOKEN": refused},
                             capture_output=True, text=True, check=False)
        assert ran.returncode == 1 and "started" not in ran.stdout, repr(refused)

    token, listen, upstream = "0123abcdef", free_port(), free_port()
    args = container(docs, "StatefulSet", "gemrag-chroma", "chroma")["args"]
    args = [str(upstream) if a == args[args.index("--port") + 1] else a for a in args]
    args[args.index("--path") + 1] = str(tmp_path / "chroma")
    template = (DEPLOY / "k8s/base/chroma-proxy.conf.template").read_text()
    conf = (template.replace("${GEMRAG_CHROMA_TOKEN}", token)
            .replace("listen 8000;", f"listen 127.0.0.1:{listen};")
            .replace("127.0.0.1:8001", f"127.0.0.1:{upstream}"))
    (tmp_path / "chroma.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/chroma.conf; }}\n")
    processes = [subprocess.Popen([chroma, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                 subprocess.Popen([nginx, "-c", f"{tmp_path}/nginx.conf", "-e", f"{tmp_path}/error.log"])]
    try:
        wait_for(f"http://127.0.0.1:{listen}/api/v2/heartbeat")  # the probe's path, without a token
        url = f"http://127.0.0.1:{listen}"
        base = Settings(data_dir=tmp_path / "data", chroma_url=url)
        client = chroma_client(base.model_copy(update={"chroma_token": SecretStr(token)}))
        assert client.get_or_create_collection("deploy-check").count() == 0
        for wrong in (SecretStr("not-it"), None):
            with pytest.raises(StoreUnavailable, match="refused"):
                chroma_client(base.model_copy(update={"chroma_token": wrong})).list_collections()
        request = urllib.request.Request(f"{url}/api/v2/tenants/default_tenant/databases/default_database/collections",
                                         headers={"Authorization": "Bearer "})
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(request, timeout=5)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) applied to a pod's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        held = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not held:
            return False
    return True


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod template the manifests run, by workload name."""
    return {d["metadata"]["name"]: d["spec"]["template"] for d in docs if d["kind"] in {"Deployment", "StatefulSet"}}


def admitted(docs: list[dict[str, Any]], target: str, port: int) -> set[str] | None:
    """The workloads whose pods the NetworkPolicies let connect to `target`'s pods on `port`;
    None: any source at all (no policy isolates the target, or a rule names no source)."""
    pods = workloads(docs)
    labels = pods[target]["metadata"]["labels"]
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy" and selects(d["spec"]["podSelector"], labels)]
    if not any("Ingress" in p.get("policyTypes", ["Ingress"]) for p in policies):
        return None
    sources: set[str] = set()
    for rule in (r for p in policies for r in p.get("ingress", [])):
        if rule.get("ports") and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP"
                                         for p in rule["ports"]):
            continue
        if not rule.get("from"):
            return None
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, f"{target}: a peer outside the namespace's pods ({peer})"
            sources |= {name for name, t in pods.items() if selects(peer["podSelector"], t["metadata"]["labels"])}
    return sources


def container_ports(template: dict[str, Any]) -> set[int]:
    return {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}


def test_only_the_server_and_the_worker_reach_redis_and_chroma() -> None:
    """Without a NetworkPolicy any pod in the cluster could connect to the stores; a store's
    password or token is then the only thing in the way."""
    docs = rendered(DEPLOY / "k8s/overlays/production")
    pods = workloads(docs)
    for store in ("gemrag-redis", "gemrag-chroma"):
        (port,) = container_ports(pods[store])  # the one port the store's pod serves (Chroma's: its proxy's)
        assert admitted(docs, store, port) == {"gemrag-server", "gemrag-worker"}, store
        assert admitted(docs, store, port + 1) == set(), f"{store}: other ports are closed too"


def test_the_server_takes_connections_on_its_port_only_and_the_worker_none() -> None:
    """Clients (through the Service or an ingress controller) and Prometheus reach the API's
    port from anywhere; no other port of it, and nothing of the worker's."""
    docs = rendered(DEPLOY / "k8s/overlays/production")
    pods = workloads(docs)
    (port,) = container_ports(pods["gemrag-server"])
    assert admitted(docs, "gemrag-server", port) is None, "the API (and /metrics) from anywhere"
    assert admitted(docs, "gemrag-server", port + 1) == set()
    assert admitted(docs, "gemrag-worker", port) == set()
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for policy in policies:
        assert any(selects(policy["spec"]["podSelector"], t["metadata"]["labels"]) for t in pods.values()), \
            f"{policy['metadata']['name']} selects no pod the manifests run"


def test_the_selector_reading_used_here_is_kubernetes_own() -> None:
    """The checks above are only as good as `selects`: In, matchLabels and an empty selector."""
    assert selects({}, {"a": "b"})
    assert selects({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"})
    assert not selects({"matchLabels": {"a": "b"}}, {"a": "c"})
    expression = {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}
    assert selects(expression, {"a": "y"}) and not selects(expression, {"a": "z"}) and not selects(expression, {})
