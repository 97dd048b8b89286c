"""Small helpers for driving the API like a backend would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from journeys.schemas.enrollment import (
    EnrollmentInput,
    EnrollmentOptions,
    EnrollmentState,
    enrollment_workflow_id,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import (
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForEventStep,
)
from journeys.workflows.journey import JourneyWorkflow
from tests.conftest import API_KEYS, eventually, repo_root, unique

HISTORIES = repo_root() / "tests" / "histories"


async def keep_history(handle: WorkflowHandle, name: str) -> None:
    """With JOURNEYS_RECORD_HISTORIES=1, save the run's history for the replay tests (from
    the plain-payload SQLite stack only: CI replays them without the test key)."""
    if os.environ.get("JOURNEYS_RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        if any(p.metadata.get("encoding") == b"binary/encrypted" for p in started.input.payloads):
            return
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())


def one_send(
    journey_id: str,
    *,
    entry: str = "go",
    body: str = "Hi",
    subject: str | None = None,
    url: str | None = None,
    **step: Any,
) -> JourneySpec:
    """A journey that sends one message (in-app unless `channel` says otherwise) and ends;
    `step` sets the send step's other fields."""
    send = {"id": "send", "channel": "in_app", **step}
    content = MessageContent(subject=subject, body=body, url=url)
    return JourneySpec(
        id=journey_id,
        name=f"One send: {journey_id}",
        entry=Entry(event=entry),
        steps=[SendStep(content=content, next="end", **send), ExitStep(id="end")],
    )


def wait_then_end(
    event: str = "never.happens", timeout: timedelta = timedelta(days=30)
) -> list[Any]:
    """A `wait` step for `event` that ends the journey either way, and the `end` step."""
    wait = WaitForEventStep(
        id="wait", event=event, timeout=timeout, on_event="end", on_timeout="end"
    )
    return [wait, ExitStep(id="end")]


@dataclass(frozen=True)
class Copy:
    id: str
    entry: str


async def publish_copy(api: httpx.AsyncClient, spec: JourneySpec, **changes: Any) -> Copy:
    """Publish `spec` under a fresh id and a fresh entry event name (so journeys published
    by other tests never enter on this test's events), plus `changes`."""
    body = spec.model_dump(mode="json")
    entry = unique(spec.entry.event)
    body.update(id=unique(spec.id[:40]), entry={**body["entry"], "event": entry}, **changes)
    response = await api.post("/v1/journeys", json=body)
    assert response.status_code == 201, response.text
    return Copy(str(body["id"]), entry)


async def event(api: httpx.AsyncClient, customer_id: str, name: str, **kw: Any) -> dict[str, Any]:
    response = await api.post("/v1/events", json={"customer_id": customer_id, "name": name, **kw})
    assert response.status_code == 202, response.text
    return response.json()["results"][0]


async def get_json(api: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await api.get(url)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def state(api: httpx.AsyncClient, journey_id: str, customer_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/journeys/{journey_id}/enrollments/{customer_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def ended(
    api: httpx.AsyncClient, journey_id: str, customer_id: str, *, timeout: float = 30.0
) -> dict[str, Any]:
    return await eventually(
        lambda: state(api, journey_id, customer_id),
        lambda s: s["status"] != "active",
        timeout=timeout,
    )


async def deliveries(api: httpx.AsyncClient, customer_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/customers/{customer_id}/deliveries")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def customer(api: httpx.AsyncClient, **profile: Any) -> str:
    customer_id = unique("cust")
    profile.setdefault("email", f"{customer_id}@test.example")
    response = await api.put(f"/v1/customers/{customer_id}", json=profile)
    assert response.status_code == 200, response.text
    return customer_id


async def received(
    api: httpx.AsyncClient, provider: str, to: str | None = None
) -> list[dict[str, Any]]:
    """What a provider sandbox (twilio, fcm, webhooks) received, oldest first; `to` keeps
    one recipient (a Twilio `To`, an FCM token)."""
    response = await api.get(f"/sandbox/{provider}/received", params={"to": to} if to else {})
    assert response.status_code == 200, response.text
    return response.json()


def journeys_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The `journeys` command as a user runs it, in its own process (a wide terminal, so
    lines are not wrapped); `env` adds variables."""
    if "--api-url" in args and "JOURNEYS_API_KEY" not in env:  # the stack's key
        env["JOURNEYS_API_KEY"] = API_KEYS[args[args.index("--api-url") + 1]]
    return subprocess.run(
        [sys.executable, "-m", "journeys.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=180,
    )


async def journeys_ok(*args: str, **env: str) -> str:
    """`journeys_cli` off the event loop; its output, after checking it succeeded."""
    done = await asyncio.to_thread(journeys_cli, *args, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def start_enrollment(
    client: Client, spec: JourneySpec, cid: str, task_queue: str, **options: Any
) -> WorkflowHandle[JourneyWorkflow, EnrollmentState]:
    """An enrollment of `cid` in `spec` (version 1, entered on a `go` event), started
    straight in Temporal on `task_queue`; `options` are its `EnrollmentOptions`."""
    return await client.start_workflow(
        JourneyWorkflow.run,
        EnrollmentInput(
            journey=spec,
            version=1,
            customer_id=cid,
            trigger=CustomerEvent.create(cid, "go"),
            options=EnrollmentOptions(**options),
        ),
        id=enrollment_workflow_id(spec.id, cid),
        task_queue=task_queue,
    )
