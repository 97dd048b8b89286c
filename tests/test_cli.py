"""The CLI in scripts: a failure is one line on stderr and exit status 1 (the traceback
with --debug), reading commands answer JSON with --json, and piped tables keep every
column whole."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from journeys.schemas.journey import ExitStep, SendStep
from journeys.stack.embedded import Stack
from tests.conftest import free_port, unique
from tests.helpers import journeys_cli, one_send


def api_url(stack: Stack) -> str:
    return f"http://{stack.settings.api_host}:{stack.settings.api_port}"


async def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, off the event loop (the stack's API runs on it)."""
    return await asyncio.to_thread(journeys_cli, *args, **env)


async def one_line_failure(*args: str, **env: str) -> str:
    done = await run(*args, **env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("journeys: ")
    return line.removeprefix("journeys: ")


async def test_failures_are_one_line(stack: Stack, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x", "name": "x", "entry": {"event": "e"}, "steps": []}))
    nobody = f"http://127.0.0.1:{free_port()}"
    # Independent processes: run together.
    absent, unknown, invalid, unreachable, missing, debug = await asyncio.gather(
        one_line_failure("publish", str(tmp_path / "absent.json")),
        one_line_failure("publish", "no_such_module:JOURNEY"),
        one_line_failure("publish", str(bad)),
        one_line_failure("funnel", "x", "--api-url", nobody, JOURNEYS_API_KEY="k"),
        one_line_failure("funnel", unique("nope"), "--api-url", api_url(stack)),
        run("--debug", "funnel", "x", "--api-url", nobody, JOURNEYS_API_KEY="k"),
    )
    assert absent == f"no such file: {tmp_path / 'absent.json'}"
    assert unknown.startswith("no module 'no_such_module'")
    assert invalid.startswith(f"{bad} is not a valid journey: ")
    assert unreachable == f"cannot reach the API at {nobody} (ConnectError); is it running?"
    assert missing.startswith("HTTP 404 Not Found: ")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize("width", ["80", "200"])
async def test_reading_commands_answer_json_and_piped_tables_stay_whole(
    stack: Stack, tmp_path: Path, width: str
) -> None:
    long_step = "a-step-whose-name-is-long-enough-to-be-cut-in-an-eighty-column-table"
    spec = one_send(unique("cli"), id=long_step)
    spec = spec.model_copy(
        update={"steps": [spec.steps[0].model_copy(update={"id": long_step}), spec.steps[1]]}
    )
    assert isinstance(spec.steps[0], SendStep) and isinstance(spec.steps[1], ExitStep)
    source = tmp_path / "journey.json"
    source.write_text(spec.model_dump_json())
    url = api_url(stack)

    published = await run("publish", str(source), "--json", "--api-url", url, COLUMNS=width)
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {"id": spec.id, "version": 1}
    funnel = await run("funnel", spec.id, "--json", "--api-url", url)
    assert [s["id"] for s in json.loads(funnel.stdout)["steps"]] == [long_step, "end"]
    table = await run("funnel", spec.id, "--api-url", url, COLUMNS=width)
    assert long_step in table.stdout  # not cut to the terminal's width
    valid = await run("validate", str(source), "--json")
    assert json.loads(valid.stdout) == {"valid": True, "problems": []}
    audit = await run("audit", "--json", "--limit", "5", "--api-url", url)
    entries = json.loads(audit.stdout)["items"]
    assert entries and {"id", "action", "key_name"} <= set(entries[0])


async def test_a_refused_publish_says_why_in_one_line(
    api: httpx.AsyncClient, stack: Stack, tmp_path: Path
) -> None:
    body = one_send(unique("cli")).model_dump(mode="json", exclude_none=True)
    del body["steps"][0]["content"]
    body["steps"][0]["template"] = "no-such-template"  # valid in form, refused by the API
    source = tmp_path / "journey.json"
    source.write_text(json.dumps(body))
    why = await one_line_failure("publish", str(source), "--api-url", api_url(stack))
    assert why.startswith("HTTP 422 Unprocessable Entity: ")


async def test_suppressions_from_the_command_line(stack: Stack) -> None:
    address = f"{unique('cli')}@Example.com"
    url = ("--api-url", api_url(stack))
    added = await run("suppressions", "add", address, "--detail", "asked by phone", *url)
    assert added.returncode == 0, added.stderr
    listed = await run(
        "suppressions", "list", "--channel", "email", "--limit", "1000", "--json", *url
    )
    items = json.loads(listed.stdout)["items"]
    [mine] = [i for i in items if i["address"] == address.lower()]
    assert (mine["reason"], mine["source"], mine["detail"]) == (
        "manual",
        "operator",
        "asked by phone",
    )
    removed = await run("suppressions", "remove", address, *url)
    assert removed.returncode == 0, removed.stderr
    assert await one_line_failure("suppressions", "remove", address, *url)
