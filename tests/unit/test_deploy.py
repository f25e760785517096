"""The scale-out files (docker-compose.yml, deploy/): valid against the Kubernetes and Compose schemas (offline,
from kubernetes-validate and check-jsonschema), consistent with each other, and loadable by the proxy's own
settings loader, so a typo in a key cannot ship."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from argoproxy.config.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
KUBE_VERSION = "1.30.0"  # the oldest Kubernetes still commonly run; the manifests use nothing newer


def manifests() -> dict[str, dict]:
    docs = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


@pytest.mark.parametrize("name", sorted(manifests()))
def test_kubernetes_manifest_is_valid(name: str):
    kubernetes_validate.validate(manifests()[name], KUBE_VERSION, strict=True)  # unknown fields are errors too


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")


def test_kubernetes_pieces_fit_together(tmp_path):
    docs = manifests()
    deploy = docs["Deployment/cot-proxy"]
    pod = deploy["spec"]["template"]
    container = pod["spec"]["containers"][0]
    labels = pod["metadata"]["labels"]
    assert deploy["spec"]["replicas"] >= 2
    assert docs["Service/cot-proxy"]["spec"]["selector"].items() <= labels.items()
    assert docs["HorizontalPodAutoscaler/cot-proxy"]["spec"]["scaleTargetRef"]["name"] == "cot-proxy"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # The config the pods mount loads with the proxy's own loader, and the pod waits long enough for streams.
    config = tmp_path / "config.yaml"
    config.write_text(docs["ConfigMap/cot-proxy-config"]["data"]["config.yaml"])
    secret = docs["Secret/cot-proxy-keys"]["stringData"]
    settings = load_settings(environ={"CONFIG_PATH": str(config), **secret})
    assert settings.enable_auth and settings.api_key_secret and settings.sse_keepalive > 0
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] >= sleep + settings.graceful_timeout
    assert container["env"][0] == {"name": "CONFIG_PATH", "value": "/etc/cot_proxy/config.yaml"}
    assert container["envFrom"][0]["secretRef"]["name"] == "cot-proxy-keys"
    scrape = yaml.safe_load(docs["ConfigMap/cot-proxy-prometheus"]["data"]["prometheus.yml"])
    assert scrape["scrape_configs"][0]["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_replicas_share_one_redis():
    """Kubernetes and compose: every replica's REDIS_URL names the Redis service the files define."""
    docs = manifests()
    env = {e["name"]: e.get("value") for e in docs["Deployment/cot-proxy"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    service = docs["Service/cot-proxy-redis"]
    assert env["REDIS_URL"] == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    assert service["spec"]["selector"].items() <= \
        docs["StatefulSet/cot-proxy-redis"]["spec"]["template"]["metadata"]["labels"].items()
    services = compose()["services"]
    assert services["proxy"]["environment"]["REDIS_URL"] == "redis://redis:6379/0" and "redis" in services
    assert load_settings(environ={"REDIS_URL": env["REDIS_URL"], "TARGET_BASE_URL": "http://x/v1"}).redis_url


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid():
    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
                        .read_text())
    jsonschema.validate(compose(), schema)


def test_compose_runs_replicas_behind_nginx_with_prometheus(tmp_path):
    services = compose()["services"]
    proxy = services["proxy"]
    assert proxy["deploy"]["replicas"] >= 2 and "ports" not in proxy  # reached through nginx only
    mounted = {v.split(":")[0] for v in services["nginx"]["volumes"] + services["prometheus"]["volumes"]}
    assert {"./deploy/nginx/cot_proxy.conf", "./deploy/prometheus/prometheus.yml"} <= mounted
    for path in mounted - {"prometheus-data"}:
        assert (ROOT / path).is_file(), path
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["dns_sd_configs"][0]["names"] == ["proxy"]
    # Its environment loads with the proxy's own loader (placeholders filled in as `.env` would).
    def filled(name: str, value: str) -> str:
        return re.sub(r"\$\{(\w+)(:-([^}]*))?[^}]*\}",
                      lambda m: m.group(3) if m.group(2) is not None else "http://llm:8000/v1" if name == "TARGET_BASE_URL"
                      else "k1", value)

    env = {k: filled(k, str(v)) for k, v in proxy["environment"].items()}
    (tmp_path / "empty.yaml").write_text("{}\n")  # the image has no config.yaml: environment only
    settings = load_settings(environ={**env, "CONFIG_PATH": str(tmp_path / "empty.yaml")})
    assert settings.enable_auth and settings.metrics_public
    grace = int(proxy["stop_grace_period"].rstrip("s"))
    assert grace >= settings.graceful_timeout


def compose_environment(dotenv: dict[str, str]) -> dict[str, str]:
    """The proxy container's environment as `docker compose up` makes it from this `.env`: its env_file
    entries (the .env itself), then `environment:` with ${VAR:-default} / ${VAR:?message} filled from .env;
    a required variable that .env lacks is compose refusing to start."""
    proxy = compose()["services"]["proxy"]
    env: dict[str, str] = {}
    for entry in proxy.get("env_file", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        assert path == ".env"
        env.update(dotenv)

    def fill(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if op == ":?":
            assert dotenv.get(name), f"compose refuses to start without {name}: {arg}"
            return dotenv[name]
        return dotenv.get(name) or (arg if op == ":-" else "")

    for key, value in proxy["environment"].items():
        env[key] = re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", fill, str(value))
    return env


def test_compose_serves_what_env_says(tmp_path):
    """.env is where the compose file says settings go: each of them reaches the replicas."""
    env = compose_environment({"TARGET_BASE_URL": "http://llm:8000/v1", "API_KEY_SECRET": "k1",
                               "THINK_MODE": "reasoning", "PORT": "8000", "HOST": "127.0.0.1"})
    (tmp_path / "empty.yaml").write_text("{}\n")
    settings = load_settings(environ={**env, "CONFIG_PATH": str(tmp_path / "empty.yaml")})
    assert settings.target_base_url == "http://llm:8000/v1/" and settings.think_mode == "reasoning"
    assert settings.api_key_secret == ("k1",)
    # A .env written for `python cot_proxy.py` (seed 003's PORT=8000) must not move the replicas off the port
    # nginx, the healthcheck and Prometheus use.
    assert (settings.host, settings.port) == ("0.0.0.0", 5000)


def test_compose_serves_a_mounted_seed_argo_config(tmp_path):
    """The compose file's own advice, a config.yaml mounted instead of the environment: an argo-openai-proxy
    config (no backend: key) must run ARGO, not meet a BACKEND=openai default nor a required TARGET_BASE_URL."""
    env = compose_environment({"API_KEY_SECRET": "k1"})
    config = tmp_path / "config.yaml"
    config.write_text('argo_url: "https://apps.inside.anl.gov/argoapi/api/v1/resource/chat/"\nuser: "carol"\n')
    settings = load_settings(environ={**env, "CONFIG_PATH": str(config)})
    assert settings.backend == "argo" and settings.user == "carol"
