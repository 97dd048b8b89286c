"""Repeated entry events, repeated message ids and re-entry rules change nothing they
should not."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client

from journeys.schemas.enrollment import enrollment_workflow_id
from journeys.schemas.journey import (
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForEventStep,
)
from tests.conftest import eventually, unique
from tests.helpers import customer, deliveries, ended, event, one_send, publish_copy, state

pytestmark = pytest.mark.both_databases

PINGS = JourneySpec(
    id="pings",
    name="Two pings",
    entry=Entry(event="pings.start"),
    steps=[
        WaitForEventStep(
            id="first", event="ping", timeout=timedelta(days=1), on_event="one", on_timeout="bye"
        ),
        SendStep(id="one", channel="in_app", content=MessageContent(body="one"), next="second"),
        WaitForEventStep(
            id="second", event="ping", timeout=timedelta(days=1), on_event="two", on_timeout="bye"
        ),
        SendStep(id="two", channel="in_app", content=MessageContent(body="two"), next="bye"),
        ExitStep(id="bye"),
    ],
)


async def inbox(api: httpx.AsyncClient, cid: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]


async def test_repeated_entry_event_keeps_one_enrollment(
    api: httpx.AsyncClient, client: Client
) -> None:
    journey = await publish_copy(api, PINGS)
    cid = await customer(api)
    entry = unique("entry")
    await event(api, cid, journey.entry, message_id=entry)
    handle = client.get_workflow_handle(enrollment_workflow_id(journey.id, cid))
    first_run = (await handle.describe()).run_id

    again = await event(api, cid, journey.entry, message_id=entry)
    other = await event(api, cid, journey.entry, message_id=unique("entry"))
    assert again["duplicate"] and again["entered"] == []  # never routed a second time
    assert other["entered"] == [journey.id]  # the running enrollment got it
    assert (await handle.describe()).run_id == first_run
    now = await state(api, journey.id, cid)
    assert now["step"] == "first" and len(now["path"]) == 1


async def test_duplicate_message_id_is_ignored(api: httpx.AsyncClient) -> None:
    journey = await publish_copy(api, PINGS)
    cid = await customer(api)
    await event(api, cid, journey.entry)
    await event(api, cid, "ping", message_id=f"{cid}-p1")
    await eventually(lambda: state(api, journey.id, cid), lambda s: s["step"] == "second")
    await event(api, cid, "ping", message_id=f"{cid}-p1")  # a client retry of the same event
    batch = await api.post(
        "/v1/events",
        json={
            "events": [
                {"customer_id": cid, "name": "ping", "message_id": f"{cid}-p1"},
                {"customer_id": cid, "name": "ping", "message_id": f"{cid}-p1"},
            ]
        },
    )
    assert batch.status_code == 202
    assert (await state(api, journey.id, cid))["step"] == "second"
    assert await inbox(api, cid) == ["one"]

    await event(api, cid, "ping", message_id=f"{cid}-p2")
    final = await ended(api, journey.id, cid)
    assert final["status"] == "completed"
    assert await inbox(api, cid) == ["two", "one"]
    assert [d["status"] for d in await deliveries(api, cid)] == ["sent", "sent"]


async def test_reentry_never_and_after_exit(api: httpx.AsyncClient) -> None:
    never = await publish_copy(api, PINGS)
    again = await publish_copy(api, PINGS, reentry="after_exit")
    cid = await customer(api)
    for journey in (never, again):
        await event(api, cid, journey.entry)
        await api.post(f"/v1/journeys/{journey.id}/enrollments/{cid}/exit")
        await ended(api, journey.id, cid)

    refused = await event(api, cid, never.entry)
    assert refused["entered"] == [] and refused["not_reentered"] == [never.id]
    assert (await state(api, never.id, cid))["status"] == "exited"

    allowed = await event(api, cid, again.entry)
    assert allowed["entered"] == [again.id]
    assert (await state(api, again.id, cid))["status"] == "active"


async def test_events_for_nobody_are_accepted(api: httpx.AsyncClient) -> None:
    routed = await event(api, "someone-without-journeys", "page.viewed")
    assert routed == {
        "message_id": routed["message_id"],
        "entered": [],
        "signalled": [],
        "not_reentered": [],
        "duplicate": False,
    }


async def test_publish_with_the_same_idempotency_key_makes_one_version(
    api: httpx.AsyncClient,
) -> None:
    """Issue 14, item 12: a publish retried after a lost answer (same key, same body) gets
    the version the first made; the same key with another body is refused, naming it."""
    spec = one_send(unique("idem-publish")).model_dump(mode="json")
    key = {"Idempotency-Key": unique("publish")}
    first = await api.post("/v1/journeys", json=spec, headers=key)
    again = await api.post("/v1/journeys", json=spec, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() == {"id": spec["id"], "version": 1}
    other = await api.post("/v1/journeys", json={**spec, "name": "Changed"}, headers=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["loc"] == ["header", "idempotency-key"]
    fresh = await api.post("/v1/journeys", json=spec, headers={"Idempotency-Key": unique("p")})
    assert fresh.json()["version"] == 2
    versions = (await api.get(f"/v1/journeys/{spec['id']}")).json()
    assert versions["versions"] == [1, 2]
