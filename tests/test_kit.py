"""The authors' testing kit as the README shows it (the examples' own tests use it too:
test_examples.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import repo_root


def readme_tests() -> list[str]:
    """The README's Python code blocks that define a test."""
    text = (repo_root() / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if re.search(r"^(async )?def test_", b, flags=re.M)]


def test_the_readme_tests_run_as_is_in_an_empty_folder(tmp_path: Path) -> None:
    """Each README block that defines a test, copied into an empty folder and run with
    pytest there (its own dev server; the kit's plugin comes with the package)."""
    blocks = readme_tests()
    assert blocks, "the README shows a complete test"
    for i, block in enumerate(blocks):
        folder = tmp_path / f"block{i}"
        folder.mkdir()
        (folder / "test_readme.py").write_text(block)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme.py"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        )
        defined = len(re.findall(r"^(?:async )?def test_", block, flags=re.M))
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{defined} passed" in done.stdout, done.stdout
