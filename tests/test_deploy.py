"""The deploy manifests stay in step with the code: settings they set exist, commands they
run exist, the image holds every package, and the search attributes match the workflow's.
(Docker cannot run on the test machines; these checks catch the drift that breaks a deploy.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import httpx
import yaml
from typer.main import get_command

from cli.main import app
from schemas.settings import Settings
from workflows import search_attributes as sa

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"


def documents() -> list[dict[str, Any]]:
    found = [yaml.safe_load((DEPLOY / "compose.yaml").read_text())]
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def journeys_variables(node: Any) -> set[str]:
    """Every JOURNEYS_* name set anywhere in a manifest (maps, env lists, ConfigMap data)."""
    if isinstance(node, dict):
        names = {k for k in node if isinstance(k, str) and k.startswith("JOURNEYS_")}
        if isinstance(node.get("name"), str) and node["name"].startswith("JOURNEYS_"):
            names.add(node["name"])
        return names.union(*(journeys_variables(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(journeys_variables(v) for v in node))
    return set()


def test_every_variable_the_manifests_set_is_a_setting() -> None:
    settings = {f"JOURNEYS_{name.upper()}" for name in Settings.model_fields}
    named = set().union(*(journeys_variables(d) for d in documents()))
    named |= set(re.findall(r"JOURNEYS_[A-Z_]+", (DEPLOY / "k8s" / "worker.yaml").read_text()))
    named |= set(re.findall(r"JOURNEYS_[A-Z_]+", (DEPLOY / "Dockerfile").read_text()))
    assert "JOURNEYS_TEMPORAL_ADDRESS" in named
    assert named <= settings, named - settings


def test_the_commands_the_manifests_run_exist() -> None:
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    compose = documents()[0]
    used = {
        s["command"][0] for s in compose["services"].values() if s.get("image") == "journeys:latest"
    }
    for doc in documents()[1:]:
        if doc["kind"] == "Deployment":
            used |= {c["args"][0] for c in doc["spec"]["template"]["spec"]["containers"]}
    assert used == {"worker", "api"}
    assert used <= commands


def test_the_image_holds_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    copied = set(re.findall(r"^COPY (\w+) \1$", (DEPLOY / "Dockerfile").read_text(), re.M))
    assert copied == packages


def test_compose_registers_the_workflows_search_attributes() -> None:
    setup = documents()[0]["services"]["temporal-setup"]["command"][0]
    registered = dict(re.findall(r"--name (\w+) --type (\w+)", setup))
    kinds = {"KEYWORD": "Keyword", "INT": "Int", "KEYWORD_LIST": "KeywordList"}
    expected = {key.name: kinds[key.indexed_value_type.name] for key in sa.ALL}
    assert registered == expected


async def test_the_api_serves_its_probe_path(api: httpx.AsyncClient) -> None:
    deployment = next(
        d
        for d in documents()[1:]
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("api")
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        response = await api.get(container[probe]["httpGet"]["path"])
        assert response.status_code == 200, probe
