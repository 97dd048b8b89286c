"""Issue 32, item 4: a send's request carries no earlier send's outcome, so a journey's
history grows linearly with its sends (it grew with their square: 50 sends, 112 KB); a
template that reads `context.steps` still gets them, from the ledger."""

from __future__ import annotations

from datetime import datetime

import httpx
from temporalio.client import Client

from journeys.schemas.enrollment import enrollment_workflow_id
from journeys.schemas.journey import Entry, ExitStep, JourneySpec, MessageContent, SendStep
from journeys.workflows.search_attributes import quoted
from tests.conftest import unique
from tests.helpers import customer, ended, event, get_json


def sends(n: int, body: str = "Hi") -> JourneySpec:
    """n in-app sends in a row."""
    steps = [
        SendStep(id=f"s{i}", channel="in_app", content=MessageContent(body=body), next=f"s{i + 1}")
        for i in range(n)
    ]
    return JourneySpec(
        id=unique(f"sends{n}"),
        name=f"{n} sends",
        entry=Entry(event=unique("go")),
        steps=[*steps, ExitStep(id=f"s{n}")],
    )


async def send_inputs(api: httpx.AsyncClient, client: Client, spec: JourneySpec) -> list[int]:
    """The bytes of each send's request in the enrollment's history, across its runs."""
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).is_success
    cid = await customer(api)
    await event(api, cid, spec.entry.event or "")
    assert (await ended(api, spec.id, cid, timeout=120))["status"] == "completed"
    workflow_id = enrollment_workflow_id(spec.id, cid)
    found: list[tuple[datetime, list[int]]] = []
    async for run in client.list_workflows(f"WorkflowId = {quoted(workflow_id)}"):  # every run
        history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        scheduled = [
            e.activity_task_scheduled_event_attributes.input.ByteSize()
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
        ]
        found.append((run.start_time, scheduled))
    return [size for _, sizes in sorted(found) for size in sizes]


async def test_fifty_sends_grow_the_history_linearly(
    api: httpx.AsyncClient, client: Client
) -> None:
    sizes = await send_inputs(api, client, sends(50))
    assert len(sizes) == 50
    assert max(sizes) - min(sizes) < 100, sizes  # the 50th request is the size of the first
    # (Each carried every earlier send's outcome: 836 bytes for the first, 58 more a send.)


async def test_a_template_that_reads_an_earlier_send_still_renders_it(
    api: httpx.AsyncClient,
) -> None:
    spec = sends(2)
    later = "last: {{ context.steps.s0.status }} on {{ context.steps.s0.channel }}"
    second = spec.steps[1].model_copy(update={"content": MessageContent(body=later)})
    spec = spec.model_copy(update={"steps": [spec.steps[0], second, spec.steps[2]]})
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).is_success
    cid = await customer(api)
    await event(api, cid, spec.entry.event or "")
    assert (await ended(api, spec.id, cid))["status"] == "completed"
    inbox = await get_json(api, f"/v1/customers/{cid}/inbox")
    bodies = sorted(item["body"] for item in inbox["items"])
    assert bodies == ["Hi", "last: sent on in_app"]
