"""A small kustomize (`kubectl kustomize`), enough for deploy/k8s: resources (files and
folders), strategic-merge patches (lists of named items merged by name on built-in kinds,
replaced on custom resources, as kustomize does) and `images`. Docker and kubectl are not
on the test machines; the overlays use nothing more than this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BUILT_IN = ("v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1")


def build(folder: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = folder / resource
        docs += build(path) if path.is_dir() else _load(path)
    for patch in spec.get("patches", []):
        for change in _load(folder / patch["path"]):
            target = next(
                d
                for d in docs
                if (d["kind"], d["metadata"]["name"])
                == (change["kind"], change["metadata"]["name"])
            )
            _merge(target, change, by_name=change["apiVersion"] in BUILT_IN)
    for image in spec.get("images", []):
        for container in containers(docs):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return docs


def containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every container and init container of every pod template."""
    found: list[dict[str, Any]] = []
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        found += pod.get("initContainers", []) + pod.get("containers", [])
    return found


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _merge(base: dict[str, Any], patch: dict[str, Any], *, by_name: bool) -> None:
    for key, value in patch.items():
        present = base.get(key)
        if isinstance(value, dict) and isinstance(present, dict):
            _merge(present, value, by_name=by_name)
        elif by_name and isinstance(value, list) and isinstance(present, list) and _named(value):
            for item in reversed(value):  # new items go first, as kustomize puts them
                same = next((p for p in present if p.get("name") == item["name"]), None)
                if same is None:
                    present.insert(0, item)
                else:
                    _merge(same, item, by_name=by_name)
        else:
            base[key] = value


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)
