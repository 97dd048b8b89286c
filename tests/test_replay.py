"""Recorded histories of the example journeys replay against the current workflow code, so
a change that would break running enrollments fails CI. Re-record (only when a break is
intended and versioned) with JOURNEYS_RECORD_HISTORIES=1 pytest tests/test_virtual_time.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from workflows.journey import JourneyWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"onboarding-reminder-email", "onboarding-converted", "welcome-split"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"journey/{path.stem}", path.read_text())
    replayer = Replayer(workflows=[JourneyWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


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
