"""Customer erase: `DELETE /v1/customers/{id}` ends the customer's running enrollments,
removes their rows, and deletes every workflow run that names them; other customers keep
theirs."""

from __future__ import annotations

from datetime import timedelta

import httpx
from temporalio.service import RPCError, RPCStatusCode

from cli.embedded import Stack
from schemas.enrollment import enrollment_workflow_id
from schemas.journey import Entry, ExitStep, JourneySpec, MessageContent, SendStep, WaitStep
from tests.conftest import eventually, unique
from tests.helpers import customer, ended, event, journeys_ok, one_send, publish_copy, state


async def gone(stack: Stack, workflow_id: str) -> bool:
    try:
        await stack.client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


async def test_erase_ends_enrollments_and_removes_data_and_runs(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    waiting = JourneySpec(
        id=unique("erase-wait"),
        name="erase",
        entry=Entry(event=unique("go")),
        steps=[
            SendStep(
                id="hello", channel="in_app", content=MessageContent(body="hello"), next="wait"
            ),
            WaitStep(id="wait", duration=timedelta(days=30), next="end"),
            ExitStep(id="end"),
        ],
    )
    response = await api.post("/v1/journeys", json=waiting.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    done = await publish_copy(api, one_send("erase-done", body="done"))
    cid, other = await customer(api), await customer(api)
    for who in (cid, other):
        await event(api, who, str(waiting.entry.event))
        await event(api, who, done.entry)
        await ended(api, done.id, who)
        await eventually(lambda w=who: state(api, waiting.id, w), lambda s: s["step"] == "wait")

    response = await api.delete(f"/v1/customers/{cid}")
    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["enrollments_ended"] == 1 and erased["runs_deleted"] == 2
    assert erased["rows_deleted"]["profiles"] == 1
    assert erased["rows_deleted"]["deliveries"] == 2 and erased["rows_deleted"]["inbox"] == 2

    assert (await api.get(f"/v1/customers/{cid}")).status_code == 404
    assert (await api.get(f"/v1/customers/{cid}/deliveries")).json() == []
    assert (await api.get(f"/v1/customers/{cid}/inbox")).json() == []
    # Temporal deletes runs asynchronously: on the dev server they vanish after ~30 s.
    for journey_id in (waiting.id, done.id):
        workflow_id = enrollment_workflow_id(journey_id, cid)
        await eventually(lambda w=workflow_id: gone(stack, w), lambda g: g, timeout=60)
    query = f'CustomerId = "{cid}"'
    await eventually(
        lambda: stack.client.count_workflows(query), lambda c: c.count == 0, timeout=60
    )

    # The other customer keeps everything.
    assert (await api.get(f"/v1/customers/{other}")).status_code == 200
    assert len((await api.get(f"/v1/customers/{other}/deliveries")).json()) == 2
    assert (await state(api, waiting.id, other))["status"] == "active"
    out = await journeys_ok("erase", other, "--yes", "--api-url", str(api.base_url).rstrip("/"))
    assert f"{other}: 1 enrollments ended, 2 runs deleted" in out and "1 profiles" in out
    assert (await api.get(f"/v1/customers/{other}")).status_code == 404
