"""Guardrails in running journeys: unsubscribe (API, event and the List-Unsubscribe link)
ends marketing journeys; quiet hours defer a send across a DST night in two time zones, in
virtual time, and it is sent once; send-time optimisation learns from events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from temporalio.testing import TimeSkipper

from journeys.schemas.events import CustomerEvent
from journeys.schemas.guardrails import QuietHours
from journeys.schemas.journey import (
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForEventStep,
    WaitStep,
)
from journeys.schemas.profile import Profile
from journeys.services.mailbox import Mailbox
from journeys.stack.embedded import Stack
from journeys.workflows.journey import JourneyWorkflow
from tests.conftest import eventually, unique
from tests.helpers import customer, deliveries, ended, event, one_send, publish_copy
from tests.test_virtual_time import enroll, keep_history

EMAIL = MessageContent(subject="News", body="Hello. Unsubscribe: {{ unsubscribe_url }}")


def two_emails(exit_event: str) -> JourneySpec:
    return JourneySpec(
        id="two-emails",
        name="Two marketing emails",
        entry=Entry(event="two.start"),
        exit_when=[EventCondition(event=exit_event)],
        time_scale=3600,
        steps=[
            SendStep(id="first", channel="email", content=EMAIL, next="pause"),
            WaitForEventStep(
                id="pause",
                event="never",
                timeout=timedelta(hours=4),
                on_event="end",
                on_timeout="second",
            ),
            SendStep(id="second", channel="email", content=EMAIL, next="end"),
            ExitStep(id="end"),
        ],
    )


async def test_list_unsubscribe_link_ends_the_journey_and_stops_marketing(
    api: httpx.AsyncClient, stack: Stack, mailbox: tuple[Mailbox, int]
) -> None:
    journey = await publish_copy(api, two_emails(stack.settings.unsubscribe_event))
    cid = await customer(api)
    await event(api, cid, journey.entry)
    received = await eventually(lambda: _received(mailbox, cid), lambda m: len(m) == 1)
    email = received[0].message
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # As written on the wire: the literal <https://...> one-click unsubscribe needs (issue
    # 14, item 9), never an RFC 2047 encoded-word.
    [header] = [h for h in received[0].raw.split(b"\r\n") if h.startswith(b"List-Unsubscribe:")]
    assert re.fullmatch(rb"List-Unsubscribe: <https?://[^\s<>]+>", header), header
    link = str(email["List-Unsubscribe"]).strip("<>")
    assert link in received[0].text()  # the template can show it too

    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(link)  # a link scanner's GET changes nothing
        assert page.status_code == 200 and "<form" in page.text
        assert (await api.get(f"/v1/customers/{cid}")).json()["unsubscribed"] == []
        forged = await browser.post(link[:-3] + "AAA", data={"List-Unsubscribe": "One-Click"})
        assert forged.status_code == 404
        done = await browser.post(link, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200

    assert (await api.get(f"/v1/customers/{cid}")).json()["unsubscribed"] == ["email"]
    final = await ended(api, journey.id, cid)
    assert final["status"] == "exited"
    assert final["ended_reason"] == f"exit event {stack.settings.unsubscribe_event}"
    assert [(d["step_id"], d["status"]) for d in await deliveries(api, cid)] == [("first", "sent")]
    assert len(_inbox(mailbox, cid)) == 1


async def test_unsubscribe_event_stops_marketing_but_not_transactional(
    api: httpx.AsyncClient, stack: Stack, mailbox: tuple[Mailbox, int]
) -> None:
    cid = await customer(api)
    await event(api, cid, stack.settings.unsubscribe_event)  # from a backend: every channel
    assert (await api.get(f"/v1/customers/{cid}")).json()["unsubscribed"] == ["all"]

    marketing = await publish_copy(
        api,
        one_send(
            "one-marketing", channel="email", subject="News", body=EMAIL.body, topic="marketing"
        ),
    )
    receipts = await publish_copy(
        api,
        one_send(
            "one-receipt", channel="email", subject="News", body=EMAIL.body, topic="transactional"
        ),
    )
    await event(api, cid, marketing.entry)
    await event(api, cid, receipts.entry)
    await ended(api, marketing.id, cid)
    await ended(api, receipts.id, cid)
    outcomes = {d["journey_id"]: (d["status"], d["reason"]) for d in await deliveries(api, cid)}
    assert outcomes == {
        marketing.id: ("suppressed", "unsubscribed"),
        receipts.id: ("sent", None),
    }
    assert len(_inbox(mailbox, cid)) == 1
    email = _inbox(mailbox, cid)[0].message
    assert email["List-Unsubscribe"] is None  # transactional mail carries no unsubscribe


async def test_api_unsubscribe_on_one_channel(api: httpx.AsyncClient) -> None:
    cid = await customer(api)
    response = await api.post(f"/v1/customers/{cid}/unsubscribe", json={"channel": "sms"})
    assert response.status_code == 200 and response.json()["unsubscribed"] == ["sms"]
    bad = await api.post(f"/v1/customers/{cid}/unsubscribe", json={"channel": "pigeon"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "channel"


def _inbox(mailbox: tuple[Mailbox, int], cid: str) -> list[Any]:
    return mailbox[0].to(f"{cid}@test.example")


async def _received(mailbox: tuple[Mailbox, int], cid: str) -> list[Any]:
    return _inbox(mailbox, cid)


NIGHT = QuietHours(start=time(21), end=time(8), channels=["in_app", "email", "push"])


async def test_quiet_hours_defer_across_a_dst_night_in_two_zones(
    stack: Stack, skipper: TimeSkipper
) -> None:
    """The send falls due late on the evening before the clocks change; it waits (durably,
    in virtual time) until 08:00 local, which that morning is an hour earlier in UTC, and is
    delivered once."""
    cases = [
        # zone, when the send falls due (UTC), when the quiet hours end (UTC)
        (
            "Europe/Berlin",
            datetime(2027, 3, 27, 21, tzinfo=UTC),
            datetime(2027, 3, 28, 6, tzinfo=UTC),
        ),
        (
            "America/New_York",
            datetime(2027, 3, 14, 4, 30, tzinfo=UTC),
            datetime(2027, 3, 14, 12, tzinfo=UTC),
        ),
    ]
    for zone, due, morning in cases:
        cid = unique("quiet")
        await stack.stores.profiles.put(Profile(customer_id=cid, timezone=zone))
        spec = JourneySpec(
            id=unique("quiet"),
            name="Night-time send",
            entry=Entry(event="quiet.start"),
            quiet_hours=NIGHT,
            steps=[
                WaitStep(id="until-due", duration=due - datetime.now(UTC), next="nudge"),
                SendStep(
                    id="nudge", channel="in_app", content=MessageContent(body="Hi"), next="end"
                ),
                ExitStep(id="end"),
            ],
        )
        handle = await enroll(stack, skipper, spec, cid)
        await skipper.fast_forward(handle, due - datetime.now(UTC) + timedelta(minutes=1))
        rows = await eventually(
            lambda c=cid: stack.stores.ledger.for_customer(c),
            lambda r: len(r) == 1 and r[0].status == "deferred",
        )
        assert rows[0].reason == "quiet_hours" and rows[0].until == morning
        state = await handle.query(JourneyWorkflow.state)
        assert state.waiting is not None and state.waiting.reason == "send deferred: quiet_hours"

        await skipper.fast_forward(handle, morning - due + timedelta(minutes=1))
        final = await handle.result()
        assert final.status == "completed"
        rows = await stack.stores.ledger.for_customer(cid)
        assert [(r.status, r.attempts) for r in rows] == [("sent", 2)]
        assert rows[0].reserved_at is not None
        assert morning <= rows[0].reserved_at < morning + timedelta(minutes=2)
        assert len(await stack.stores.inbox.for_customer(cid)) == 1
        if zone == "Europe/Berlin":
            await keep_history(handle, "quiet-hours-deferral")


async def test_send_time_optimisation_learns_the_active_hour(
    api: httpx.AsyncClient, stack: Stack, skipper: TimeSkipper
) -> None:
    cid = await customer(api)
    evening = 19
    for day in range(1, 7):  # the customer is usually around at 19:xx UTC
        stamp = datetime(2026, 11, day, evening, 5 * day, tzinfo=UTC).isoformat()
        await event(api, cid, "app.opened", timestamp=stamp)
    profile = (await api.get(f"/v1/customers/{cid}")).json()
    assert profile["active_hours"][evening] == 6 and sum(profile["active_hours"]) == 6

    spec = one_send(unique("best-time"), id="nudge", send_at="best_time")
    started = datetime.now(UTC)
    handle = await enroll(stack, skipper, spec, cid)
    # The first instant within a day that falls in the 19:00 UTC hour.
    expected = started.replace(hour=evening, minute=0, second=0, microsecond=0)
    if started.hour == evening:
        expected = started
    elif started.hour > evening:
        expected += timedelta(days=1)
    await skipper.fast_forward(handle, expected - started + timedelta(minutes=1))
    await handle.result()
    rows = await stack.stores.ledger.for_customer(cid)
    assert rows[0].status == "sent" and rows[0].reserved_at is not None
    assert abs(rows[0].reserved_at - expected) < timedelta(minutes=2)


async def test_quiet_hours_leave_in_app_alone_by_default(api: httpx.AsyncClient) -> None:
    """Issue 14, item 13: an in-app message waits in the inbox until the app is opened, so
    quiet hours hold it only when a journey names `in_app`; email still waits."""
    all_day = {"start": "00:00:00", "end": "23:59:00"}  # quiet all day but a minute
    spec = JourneySpec(
        id=unique("quiet-inapp"),
        name="Quiet in-app",
        entry=Entry(event=unique("go")),
        steps=[
            SendStep(id="inbox", channel="in_app", content=MessageContent(body="Hi"), next="mail"),
            SendStep(
                id="mail",
                channel="email",
                content=MessageContent(subject="Hi", body="Hi"),
                next="end",
            ),
            ExitStep(id="end"),
        ],
    ).model_dump(mode="json")
    response = await api.post("/v1/journeys", json={**spec, "quiet_hours": all_day})
    assert response.status_code == 201, response.text
    cid = await customer(api)
    await event(api, cid, spec["entry"]["event"])
    rows = await eventually(lambda: deliveries(api, cid), lambda r: len(r) == 2)
    if datetime.now(UTC).time() < time(23, 58):  # not in the one loud minute
        assert [(r["step_id"], r["status"]) for r in rows] == [
            ("inbox", "sent"),
            ("mail", "deferred"),
        ]
        assert rows[1]["reason"] == "quiet_hours"


async def test_an_event_during_a_held_send_counts_for_the_next_wait(
    stack: Stack, skipper: TimeSkipper
) -> None:
    """Issue 14, item 1: the reminder falls due at night and waits out quiet hours; the
    customer walks into the store meanwhile. The next wait_for_event sees that event and
    the store offer goes out, instead of waiting a day for an event already gone."""
    cid = unique("held")
    await stack.stores.profiles.put(Profile(customer_id=cid, timezone="UTC"))
    now = datetime.now(UTC)
    due = datetime.combine(now.date() + timedelta(days=1), time(23), tzinfo=UTC)
    spec = JourneySpec(
        id=unique("held"),
        name="Reminder, then store offer",
        entry=Entry(event="held.start"),
        quiet_hours=NIGHT,
        steps=[
            WaitStep(id="until-night", duration=due - now, next="reminder"),
            SendStep(
                id="reminder", channel="in_app", content=MessageContent(body="Hi"), next="near"
            ),
            WaitForEventStep(
                id="near",
                event="geofence.entered",
                timeout=timedelta(days=1),
                on_event="offer",
                on_timeout="end",
            ),
            SendStep(
                id="offer", channel="in_app", content=MessageContent(body="10% off"), next="end"
            ),
            ExitStep(id="end"),
        ],
    )
    handle = await enroll(stack, skipper, spec, cid)
    await skipper.fast_forward(handle, due - now + timedelta(minutes=1))
    await eventually(
        lambda: stack.stores.ledger.for_customer(cid),
        lambda r: len(r) == 1 and r[0].status == "deferred",
    )
    await handle.signal(JourneyWorkflow.event, CustomerEvent.create(cid, "geofence.entered"))
    await skipper.fast_forward(handle, timedelta(days=1, hours=10))
    final = await handle.result()
    assert [(p.step, p.outcome) for p in final.path][1:] == [
        ("reminder", "sent"),
        ("near", "event geofence.entered"),
        ("offer", "sent"),
        ("end", "exit"),
    ]
    await keep_history(handle, "event-during-held-send")
