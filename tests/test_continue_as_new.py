"""A looping journey outlives its history: the dev server suggests continue-as-new every
~50 events (see conftest), and the enrollment carries position, context and its de-dup
window into the next run."""

from __future__ import annotations

from datetime import timedelta

import httpx
from temporalio.client import Client

from schemas.enrollment import enrollment_workflow_id
from schemas.events import CustomerEvent
from schemas.journey import Entry, ExitStep, JourneySpec, MessageContent, SendStep, WaitForEventStep
from tests.conftest import eventually
from tests.helpers import customer, event, publish_copy, state

LOOP = JourneySpec(
    id="loop",
    name="Reply to every ping",
    entry=Entry(event="loop.start"),
    steps=[
        WaitForEventStep(
            id="listen",
            event="ping",
            timeout=timedelta(days=30),
            on_event="reply",
            on_timeout="end",
        ),
        SendStep(
            id="reply",
            channel="in_app",
            content=MessageContent(body="pong {{ last_event.n }}"),
            next="listen",
        ),
        ExitStep(id="end"),
    ],
)


async def test_long_loop_continues_as_new_without_losing_anything(
    api: httpx.AsyncClient, client: Client
) -> None:
    journey = await publish_copy(api, LOOP)
    cid = await customer(api)
    await event(api, cid, journey.entry)
    handle = client.get_workflow_handle(enrollment_workflow_id(journey.id, cid))
    first_run = (await handle.describe()).run_id

    async def inbox() -> list[str]:
        return [m["body"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]

    for n in range(1, 13):
        await eventually(
            lambda: state(api, journey.id, cid),
            lambda s: s["step"] == "listen" and s["waiting"] is not None,
        )
        await event(api, cid, "ping", message_id=f"{cid}-ping-{n}", properties={"n": n})
        await eventually(inbox, lambda got, n=n: len(got) == n)

    assert (await handle.describe()).run_id != first_run
    assert await inbox() == [f"pong {n}" for n in range(12, 0, -1)]

    # The de-dup window crossed the continue-as-new: an old message id is still ignored.
    # (Signalled directly: the API would drop the repeat before it reached the workflow.)
    await eventually(lambda: state(api, journey.id, cid), lambda s: s["waiting"] is not None)
    repeat = CustomerEvent.create(cid, "ping", {"n": 1}, message_id=f"{cid}-ping-1")
    await handle.signal("event", repeat)
    await event(api, cid, "ping", message_id=f"{cid}-ping-13", properties={"n": 13})
    got = await eventually(inbox, lambda got: len(got) >= 13)
    assert got[0] == "pong 13" and len(got) == 13
    now = await state(api, journey.id, cid)
    assert now["status"] == "active"
    steps = [p["step"] for p in now["path"]]
    assert steps == ["listen", "reply"] * 13 + ["listen"]  # the whole path, across runs
