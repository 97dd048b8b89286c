"""Recorded histories of the example journeys replay against the current workflow code, so
a change that would break running enrollments fails CI. Re-record (only when a break is
intended and versioned) with JOURNEYS_RECORD_HISTORIES=1 pytest tests/test_virtual_time.py."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from journeys.schemas.settings import Settings
from journeys.stack.embedded import Stack
from journeys.workers.replay import from_files, recorded_patches, replay
from journeys.workers.sandbox import runner
from journeys.workflows.journey import JourneyWorkflow
from tests.conftest import eventually
from tests.helpers import customer, ended, event, journeys_cli, one_send, publish_copy

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_production_runs_the_interpreter_unsandboxed_and_ci_polices_it() -> None:
    """Production runs `workflows/` outside the sandbox; the tests (and `journeys replay`)
    re-import and police it on every run, which is where nondeterministic code fails."""
    assert Settings().workflow_sandbox == "off"
    assert isinstance(runner(Settings()), UnsandboxedWorkflowRunner)
    strict = runner(Settings(workflow_sandbox="strict"), packages=["journeys.workflows"])
    once = runner(Settings(workflow_sandbox="passthrough"), packages=["journeys.workflows"])
    assert isinstance(strict, SandboxedWorkflowRunner)
    assert isinstance(once, SandboxedWorkflowRunner)
    assert "journeys.workflows" not in strict.restrictions.passthrough_modules
    assert "journeys.workflows" in once.restrictions.passthrough_modules


def test_histories_are_recorded() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "onboarding-reminder-email",
        "onboarding-converted",
        "welcome-split",
        "migrated",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    [result] = [r async for r in replay(from_files([path]))]
    assert result.failure is None, result.failure


async def test_a_changed_workflow_fails_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard itself works: altering what the interpreter does on a send breaks replay."""
    path = next(p for p in HISTORIES if p.stem == "onboarding-reminder-email")
    history = WorkflowHistory.from_json("journey/changed", path.read_text())
    original = JourneyWorkflow._send

    async def send_twice(self: JourneyWorkflow, step: object) -> str:
        await original(self, step)  # type: ignore[arg-type]
        return await original(self, step)  # type: ignore[arg-type]

    monkeypatch.setattr(JourneyWorkflow, "_send", send_twice)
    # Unsandboxed, so the replay sees the patched class rather than a fresh import.
    replayer = Replayer(
        workflows=[JourneyWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None


def journeys(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return journeys_cli("replay", *args, **env)


def test_cli_replays_files_and_names_what_breaks(tmp_path: Path) -> None:
    good = journeys(*map(str, HISTORIES))
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"{len(HISTORIES)} of {len(HISTORIES)} replay" in good.stdout
    # The patch policy's evidence: which recorded histories took each patched branch.
    recorded = sum(
        "events-between-waits" in recorded_patches(WorkflowHistory.from_json(p.stem, p.read_text()))
        for p in HISTORIES
    )
    assert recorded >= 1, "a recorded history went through a patched branch"
    assert (
        f"patch events-between-waits (added 2026-11-25): recorded by {recorded} of "
        f"{len(HISTORIES)}; kept"
    ) in good.stdout

    # A history whose send was a different activity: the current code would schedule
    # `journeys.send` where the history has something else, so it must not replay.
    source = next(p for p in HISTORIES if p.stem == "onboarding-reminder-email").read_text()
    assert '"journeys.send"' in source
    broken = tmp_path / "broken.json"
    broken.write_text(source.replace('"journeys.send"', '"journeys.other"'))
    bad = journeys(str(broken))
    assert bad.returncode == 1
    assert "breaks broken" in bad.stdout and "0 of 1 replay" in bad.stdout


async def test_cli_replays_from_the_server(api: httpx.AsyncClient, stack: Stack) -> None:
    copy = await publish_copy(api, one_send("replayed", body="hi"))
    cid = await customer(api)
    await event(api, cid, copy.entry)
    await ended(api, copy.id, cid)
    query = f'JourneyId = "{copy.id}"'
    await eventually(lambda: stack.client.count_workflows(query), lambda c: c.count == 1)
    # The stack's settings, its payload key included where its payloads are encrypted.
    env = stack.settings.as_environment()
    done = await asyncio.to_thread(journeys, "--query", query, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok journey/{copy.id}/{cid}" in done.stdout
