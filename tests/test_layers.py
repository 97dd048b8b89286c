"""Arrows point one way: each package imports only from the layers below it, so the domain
knows nothing of storage, the API or the wiring. Read from the source, not by importing."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import repo_root

LAYERS: list[set[str]] = [
    {"schemas"},  # contracts and pure rules: no I/O
    {"workflows"},  # deterministic
    {"storage", "clients"},
    {"activities", "services"},
    {"runtime", "examples", "usecases"},  # wiring; the example journeys; what the product does
    {"workers", "api"},
    {"stack"},  # the composition root
    {"cli", "testkit"},
]
LAYER = {package: i for i, layer in enumerate(LAYERS) for package in layer}
PACKAGE = repo_root() / "journeys"


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    """(package, file, tree) for every module under journeys/ (through its links)."""
    for package in sorted(LAYER):
        for path in sorted((PACKAGE / package).rglob("*.py")):
            yield package, path, ast.parse(path.read_text())


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_every_package_has_a_layer() -> None:
    linked = {p.name for p in PACKAGE.iterdir() if p.is_dir()} - {"__pycache__"}
    assert linked == set(LAYER)


def test_imports_go_down_the_layers_only() -> None:
    wrong = []
    for package, path, tree in modules():
        for line, module in imported(tree):
            parts = module.split(".")
            if parts[0] in LAYER:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module} (no journeys.)")
            if parts[0] != "journeys" or len(parts) < 2 or parts[1] == package:
                continue
            target = parts[1]
            if target not in LAYER or LAYER[target] >= LAYER[package]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert wrong == []


def test_no_route_module_imports_another() -> None:
    routes = PACKAGE / "api" / "routes"
    wrong = [
        f"{path.name}:{line} imports {module}"
        for path in routes.glob("*.py")
        for line, module in imported(ast.parse(path.read_text()))
        if module.startswith("journeys.api.routes")
    ]
    assert wrong == []


@pytest.mark.parametrize("library", ["httpx", "sqlalchemy", "sqlmodel", "random", "threading"])
def test_workflows_import_no_io_library(library: str) -> None:
    found = [
        f"{path.name}:{line}"
        for package, path, tree in modules()
        if package == "workflows"
        for line, module in imported(tree)
        if module.split(".")[0] == library
    ]
    assert found == []


def test_the_environment_is_read_only_by_settings() -> None:
    """`os.environ`/`os.getenv` appear in schemas/settings.py only: every knob is a field
    of `Settings`, documented and validated there."""
    found = []
    for _, path, tree in modules():
        if path.name == "settings.py" and path.parent.name == "schemas":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []
