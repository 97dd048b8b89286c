"""Replaying workflow histories against the current code: what an operator runs before a
deploy (and CI runs on `tests/histories/`) to know that running enrollments and audience
runs will carry on under it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from journeys.workers.sandbox import sandbox
from journeys.workflows.audience import AudienceEntryWorkflow
from journeys.workflows.journey import PATCH_SET, PATCH_SET_MEMBERS, JourneyWorkflow

PATCH = "core_patch"  # the marker `workflow.patched` records


@dataclass(frozen=True)
class Replayed:
    workflow_id: str
    failure: str | None
    """None when the history replays; else why it does not (a non-determinism error)."""
    patches: tuple[str, ...] = field(default=())
    """The patches (`workflow.patched` ids) the history recorded."""


def recorded_patches(history: WorkflowHistory, started: Payload | None = None) -> tuple[str, ...]:
    """The patch ids the run took: those in its `core_patch` markers, and `PATCH_SET`'s
    members when a marker or its input (`EnrollmentInput.patch_set`) names the set. It
    needs `patched` or `deprecate_patch` of each until it closes. `started`: its input,
    decoded (default: the history's own, unless encrypted)."""
    found: list[str] = []
    if _input_field(started or _first_input(history), "patch_set") == PATCH_SET:
        found.extend(PATCH_SET_MEMBERS)
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if (
            event.HasField("marker_recorded_event_attributes")
            and marker.marker_name == "core_patch"
        ):
            for payload in marker.details["patch-data"].payloads:
                patch = json.loads(payload.data)["id"]
                found.extend(PATCH_SET_MEMBERS if patch == PATCH_SET else [patch])
    return tuple(dict.fromkeys(found))


def _first_input(history: WorkflowHistory) -> Payload | None:
    started = history.events[0].workflow_execution_started_event_attributes
    return started.input.payloads[0] if started.input.payloads else None


def _input_field(payload: Payload | None, name: str) -> Any:
    """A top-level field of a JSON input payload (None: not JSON, or not there)."""
    if payload is None or payload.metadata.get("encoding") != b"json/plain":
        return None
    value = json.loads(payload.data)
    return value.get(name) if isinstance(value, dict) else None


async def from_files(paths: Iterable[Path]) -> AsyncIterator[WorkflowHistory]:
    """Histories exported as JSON (`temporal workflow show --output json`, the UI's
    download, or `tests/histories/`); the file name stands in for the workflow id."""
    for path in paths:
        yield WorkflowHistory.from_json(path.stem, path.read_text())


async def from_server(client: Client, query: str) -> AsyncIterator[WorkflowHistory]:
    """The histories of every workflow a visibility query lists."""
    async for history in client.list_workflows(query).map_histories():
        yield history


async def replay(
    histories: AsyncIterator[WorkflowHistory], converter: DataConverter = pydantic_data_converter
) -> AsyncIterator[Replayed]:
    """`converter` must decode the histories' payloads: the deployment's, when they are
    encrypted (`workers.codec.data_converter`)."""
    workflows = [JourneyWorkflow, AudienceEntryWorkflow]
    replayer = Replayer(
        workflows=workflows, data_converter=converter, workflow_runner=sandbox(strict=True)
    )
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            failure = result.replay_failure
            started = _first_input(result.history)
            if started is not None and converter.payload_codec is not None:
                [started] = await converter.payload_codec.decode([started])
            yield Replayed(
                result.history.workflow_id,
                None if failure is None else str(failure),
                recorded_patches(result.history, started),
            )
