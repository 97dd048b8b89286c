"""Scenario 1 (onboarding nudge) end to end through the HTTP API, waits shortened with
`time_scale`: P1D runs as 2 s and P2D as 4 s."""

from __future__ import annotations

import httpx

from journeys.examples.onboarding_nudge import JOURNEY
from journeys.services.mailbox import Mailbox
from tests.conftest import eventually
from tests.helpers import customer, deliveries, ended, event, publish_copy, state

SCALE = 43200


async def test_reminder_then_email(api: httpx.AsyncClient, mailbox: tuple[Mailbox, int]) -> None:
    journey = await publish_copy(api, JOURNEY, time_scale=SCALE)
    cid = await customer(api, attributes={"first_name": "Ana"})

    routed = await event(api, cid, journey.entry)
    assert routed["entered"] == [journey.id]

    final = await ended(api, journey.id, cid)
    assert final["status"] == "completed"
    assert [p["step"] for p in final["path"]] == ["wait-club", "push", "wait-more", "email", "done"]
    assert [p["outcome"] for p in final["path"]][:4] == ["timeout", "sent", "timeout", "sent"]

    sent = await deliveries(api, cid)
    assert [(d["step_id"], d["channel"], d["status"]) for d in sent] == [
        ("push", "in_app", "sent"),
        ("email", "email", "sent"),
    ]
    inbox = (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]
    assert len(inbox) == 1 and inbox[0]["body"].startswith("Ana, add your clubs")
    emails = mailbox[0].to(f"{cid}@test.example")
    assert len(emails) == 1
    assert emails[0].subject == "Ana, your bag is waiting"
    assert "not added any clubs" in emails[0].text()


async def test_adding_clubs_converts(api: httpx.AsyncClient, mailbox: tuple[Mailbox, int]) -> None:
    journey = await publish_copy(api, JOURNEY, time_scale=SCALE)
    cid = await customer(api)
    await event(api, cid, journey.entry)

    # The reminder arrives after the first (scaled) day; then the customer adds clubs.
    waiting = await eventually(
        lambda: state(api, journey.id, cid), lambda s: s["step"] == "wait-more"
    )
    assert waiting["waiting"]["event"] == "bag.club_added"
    assert [(d["step_id"], d["status"]) for d in await deliveries(api, cid)] == [("push", "sent")]

    routed = await event(api, cid, "bag.club_added", properties={"club": "driver"})
    assert routed["signalled"] == [journey.id]
    final = await ended(api, journey.id, cid)
    assert final["status"] == "converted"
    assert final["ended_reason"] == "goal bag.club_added"
    assert [d["step_id"] for d in await deliveries(api, cid)] == ["push"]
    assert mailbox[0].to(f"{cid}@test.example") == []


async def test_unsubscribe_exits(api: httpx.AsyncClient) -> None:
    journey = await publish_copy(api, JOURNEY, time_scale=SCALE)
    cid = await customer(api)
    await event(api, cid, journey.entry)
    await event(api, cid, "unsubscribed")
    final = await ended(api, journey.id, cid)
    assert final["status"] == "exited"
    assert final["ended_reason"] == "exit event unsubscribed"
    assert await deliveries(api, cid) == []


async def test_operator_exit(api: httpx.AsyncClient) -> None:
    journey = await publish_copy(api, JOURNEY)  # real-time: it sits in its first wait
    cid = await customer(api)
    await event(api, cid, journey.entry)
    response = await api.post(
        f"/v1/journeys/{journey.id}/enrollments/{cid}/exit", json={"reason": "test"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "exited"
    assert response.json()["ended_reason"] == "operator: test"
    again = await api.post(f"/v1/journeys/{journey.id}/enrollments/{cid}/exit")
    assert again.status_code == 409
    missing = await api.get(f"/v1/journeys/{journey.id}/enrollments/nobody")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["loc"] == ["path", "customer_id"]
