"""Schemathesis against `/openapi.json` with an admin key: every check, on a stack of its
own (its own database and task queue, so what it publishes, erases or revokes touches no
other test), bounded and deterministic so CI gives the same answer each run. The README
says how to run a long one."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from journeys.runtime.codec import new_key
from journeys.schemas.settings import Settings
from journeys.stack.embedded import running_stack
from tests.conftest import own_settings, repo_root

pytestmark = pytest.mark.slow

CONFIG = repo_root() / "tests" / "schemathesis.toml"
EXAMPLES = int(os.environ.get("JOURNEYS_FUZZ_EXAMPLES", "6"))
"""Examples per operation: a few in CI; JOURNEYS_FUZZ_EXAMPLES=500 for a long run."""
SHORT_RUN = """
# A short run: the coverage phase leaves out the two operations that take a whole journey
# (its boundary cases there were 230 of the fuzz's 270 s in CI); their examples and fuzzing
# stay, and a long run (JOURNEYS_FUZZ_EXAMPLES, or the README's) covers them too.
[[operations]]
include-path-regex = "^/v1/journeys(/backtests)?$"
include-method = "POST"
phases.coverage.enabled = false
"""


def config(into: Path, examples: int = EXAMPLES) -> Path:
    """tests/schemathesis.toml, and for a short run `SHORT_RUN`."""
    if examples > 6:
        return CONFIG
    path = into / "schemathesis.toml"
    path.write_text(CONFIG.read_text() + SHORT_RUN)
    return path


def command(base: str, key: str, report: Path, examples: int = EXAMPLES) -> list[str]:
    """The `st run` the test makes (and the README's long run, with more examples)."""
    return [
        str(Path(sys.executable).parent / "st"),
        "--config-file", str(config(report.parent, examples)),
        "run", f"{base}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--checks", "all",
        "--exclude-path-regex", "^/sandbox/",  # stand-ins for providers, in their formats
        "--max-examples", str(examples),
        "--max-failures", "100",
        "--generation-deterministic",
        "--workers", "1",  # (2 threads raced in CPython 3.11's ast.parse, inside Hypothesis)
        "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
    ]  # fmt: skip


async def test_schemathesis_finds_no_server_error_or_schema_violation(
    settings: Settings, tmp_path: Path
) -> None:
    own = own_settings(
        settings,
        tmp_path,
        # Payloads encrypted, so the codec routes are fuzzed doing their work (issue 34).
        payload_key=settings.payload_key or SecretStr(new_key()),
        payload_key_id=settings.payload_key_id,
        # The fuzz is one address sending thousands of cases, bad keys among them.
        auth_failures_per_minute=0,
        anonymous_rate_limit_per_second=0,
        read_rate_limit_per_second=0,
    )
    async with running_stack(own) as stack:
        key = (await stack.stores.keys.create("schemathesis", ["admin"])).token
        run = await asyncio.create_subprocess_exec(
            *command(own.public_url, key, tmp_path / "junit.xml"),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(run.communicate(), timeout=600)
    text = out.decode()
    summary = text[text.rfind("SUMMARY") :]
    print(summary)
    assert run.returncode == 0, text[-20000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts is not None and counts[1] == counts[2] and int(counts[1]) > 1000, summary
