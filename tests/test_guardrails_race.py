"""The reservation under contention, on SQLite and PostgreSQL: many sends race for one
customer's cap at once; the cap is never exceeded and journey priority decides who wins."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from journeys.schemas.delivery import SendRequest, SendResult
from journeys.schemas.events import CustomerEvent
from journeys.schemas.guardrails import FrequencyCap
from journeys.schemas.journey import JourneySpec, MessageContent
from journeys.schemas.profile import Profile
from journeys.schemas.send_decision import Rules
from journeys.stack.embedded import Stack
from journeys.storage.ledger import DeliveryLedger
from tests.conftest import unique
from tests.helpers import one_send

pytestmark = pytest.mark.both_databases

WEEK = FrequencyCap(limit=3, window=timedelta(days=7))


def request(cid: str, journey: str, priority: int, at: datetime, **kw: object) -> SendRequest:
    kw.setdefault("event", CustomerEvent.create(cid, "go", timestamp=at))
    return SendRequest(
        idempotency_key=f"journey/{journey}/{cid}/run/send/1",
        journey_id=journey,
        version=1,
        step_id="send",
        customer_id=cid,
        channel="in_app",
        content=MessageContent(body="hello"),
        priority=priority,
        at=at,
        **kw,  # type: ignore[arg-type]
    )


async def send(ledger: DeliveryLedger, req: SendRequest, rules: Rules) -> SendResult:
    """What the send activity does with a reservation, without a channel."""
    reservation = await ledger.reserve(req, rules)
    while reservation.kind == "contend":
        await asyncio.sleep(rules.arbitration.total_seconds())
        reservation = await ledger.arbitrate(req, rules)
    if reservation.kind == "granted":
        return await ledger.settle(req.idempotency_key, SendResult(status="sent"))
    assert reservation.result is not None
    return reservation.result


async def test_twenty_journeys_racing_never_exceed_the_cap_and_priority_wins(
    stack: Stack,
) -> None:
    cid = unique("race")
    await stack.stores.profiles.put(Profile(customer_id=cid))
    now = datetime.now(UTC)
    rules = Rules(caps=[WEEK], arbitration=timedelta(seconds=1.5))
    priorities = list(range(1, 21))
    random.Random(7).shuffle(priorities)  # arrival order unrelated to priority
    requests = [request(cid, f"j{p:02d}", p, now) for p in priorities]
    results = await asyncio.gather(*(send(stack.stores.ledger, r, rules) for r in requests))

    won = sorted(
        r.journey_id for r, res in zip(requests, results, strict=True) if res.status == "sent"
    )
    assert won == ["j18", "j19", "j20"]
    assert {res.reason for res in results if res.status != "sent"} == {"capped"}
    ledger = await stack.stores.ledger.for_customer(cid)
    assert sorted(d.status for d in ledger) == ["sent"] * 3 + ["suppressed"] * 17


async def test_a_send_no_journey_can_outrank_skips_the_window(stack: Stack) -> None:
    """A send of the top priority any marketing journey has cannot lose a slot to a rival,
    so it is granted at once; a lower one still waits the window to be ranked, and counts
    the one granted. Without a known top priority every capped send waits."""
    cid = unique("top")
    await stack.stores.profiles.put(Profile(customer_id=cid))
    ledger, now = stack.stores.ledger, datetime.now(UTC)
    rules = Rules(caps=[FrequencyCap(limit=1, window=timedelta(days=7))], top_priority=5)
    rules = replace(rules, arbitration=timedelta(seconds=30))
    low = await ledger.reserve(request(cid, "low", 4, now), rules)
    assert low.kind == "contend"
    top = await ledger.reserve(request(cid, "top", 5, now), rules)
    assert top.kind == "granted"  # the low one arrived first but is outranked
    assert (await ledger.arbitrate(request(cid, "low", 4, now), rules)).kind == "final"
    unknown = replace(rules, top_priority=None)
    assert (await ledger.reserve(request(unique("c"), "top", 5, now), unknown)).kind == "contend"


async def test_a_send_whose_event_reached_no_other_sender_skips_the_window(
    stack: Stack,
) -> None:
    """A rival's send races this one only from a common cause: an event that reached both
    journeys. The event a send's timing comes from decides: the last one its enrollment
    waited for, else the one it entered on."""
    cid = unique("alone")
    await stack.stores.profiles.put(Profile(customer_id=cid))
    ledger, now = stack.stores.ledger, datetime.now(UTC)
    rules = Rules(caps=[WEEK], arbitration=timedelta(seconds=30), top_priority=9)
    alone = CustomerEvent.create(cid, "go").model_copy(update={"contested": False})
    shared = CustomerEvent.create(cid, "go")
    entered_alone = request(cid, "a", 1, now, event=alone)
    assert (await ledger.reserve(entered_alone, rules)).kind == "granted"
    then_shared = request(cid, "b", 1, now, event=alone, last_event=shared)
    assert (await ledger.reserve(then_shared, rules)).kind == "contend"
    then_alone = request(cid, "c", 1, now, event=shared, last_event=alone)
    assert (await ledger.reserve(then_alone, rules)).kind == "granted"


async def test_the_router_marks_an_event_that_reached_one_sender_uncontested(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    """The event an enrollment enters on says whether another journey that sends
    marketing messages took it too (a transactional journey is no rival)."""

    async def entered_on(journey: str, cid: str) -> CustomerEvent:
        handle = stack.client.get_workflow_handle(f"journey/{journey}/{cid}")
        async for e in handle.fetch_history_events():
            if e.HasField("workflow_execution_signaled_event_attributes"):
                payloads = e.workflow_execution_signaled_event_attributes.input.payloads
                [event] = await stack.client.data_converter.decode(payloads, [CustomerEvent])
                return event  # type: ignore[no-any-return]
        raise AssertionError("no event signalled")

    async def publish(spec: JourneySpec) -> None:
        answer = await api.post("/v1/journeys", json=spec.model_dump(mode="json"))
        assert answer.status_code == 201, answer.text

    alone, shared = unique("alone"), unique("shared")
    lone, first, second, service = (unique(n) for n in ("lone", "first", "second", "service"))
    await publish(one_send(lone, entry=alone))
    await publish(one_send(service, entry=alone, topic="transactional"))
    await publish(one_send(first, entry=shared))
    await publish(one_send(second, entry=shared))
    cid = unique("c")
    for name in (alone, shared):
        answer = await api.post("/v1/events", json={"customer_id": cid, "name": name})
        assert answer.status_code == 202, answer.text
    assert (await entered_on(lone, cid)).contested is False
    assert (await entered_on(service, cid)).contested is False
    assert (await entered_on(first, cid)).contested is True
    assert (await entered_on(second, cid)).contested is True


async def test_the_top_priority_counts_only_journeys_that_send_marketing(stack: Stack) -> None:
    journeys = stack.stores.journeys
    before = await journeys.top_marketing_priority() or 0
    service = one_send(unique("service"), topic="transactional")
    await journeys.publish(service.model_copy(update={"priority": before + 10}))
    assert await journeys.top_marketing_priority() == before
    marketing = one_send(unique("marketing")).model_copy(update={"priority": before + 1})
    await journeys.publish(marketing)
    assert await journeys.top_marketing_priority() == before + 1


async def test_fifty_concurrent_senders_first_come_never_exceed_the_cap(stack: Stack) -> None:
    """Without an arbitration window it is first come, first served: still never more than
    the cap, whatever the interleaving, and the per-channel cap holds beside the total."""
    cid = unique("race")
    await stack.stores.profiles.put(Profile(customer_id=cid))
    now = datetime.now(UTC)
    rules = Rules(caps=[FrequencyCap(limit=5, window=timedelta(days=1))])
    requests = [request(cid, f"j{i}", 0, now + timedelta(milliseconds=i)) for i in range(50)]
    results = await asyncio.gather(*(send(stack.stores.ledger, r, rules) for r in requests))
    assert sum(r.status == "sent" for r in results) == 5
    assert sum(r.reason == "capped" for r in results) == 45


async def test_the_window_rolls_and_deferral_waits_for_it(stack: Stack) -> None:
    cid = unique("roll")
    await stack.stores.profiles.put(Profile(customer_id=cid))
    ledger = stack.stores.ledger
    rules = Rules(caps=[WEEK])
    start = datetime(2026, 11, 2, 10, tzinfo=UTC)
    for day in range(3):
        sent = await send(ledger, request(cid, f"a{day}", 0, start + timedelta(days=day)), rules)
        assert sent.status == "sent"
    day3 = start + timedelta(days=3)
    suppressed = await send(ledger, request(cid, "b", 0, day3), rules)
    assert (suppressed.status, suppressed.reason) == ("suppressed", "capped")

    deferring = request(cid, "c", 0, day3, when_capped="defer", deadline=day3 + timedelta(days=7))
    deferred = await send(ledger, deferring, rules)
    # The oldest of the three leaves the window seven days after it was sent.
    assert (deferred.status, deferred.reason, deferred.until) == (
        "deferred",
        "capped",
        start + timedelta(days=7),
    )
    retried = deferring.model_copy(update={"at": start + timedelta(days=7)})
    assert (await send(ledger, retried, rules)).status == "sent"
    again = await send(ledger, retried, rules)  # the same key: its first outcome, not a 2nd send
    assert again.status == "sent"
    rows = [d for d in await ledger.for_customer(cid) if d.journey_id == "c"]
    assert len(rows) == 1 and rows[0].attempts == 2  # deferred, then sent; a reread is no attempt

    late = request(cid, "d", 0, day3, when_capped="defer", deadline=day3 + timedelta(hours=1))
    expired = await send(ledger, late, rules)
    assert (expired.status, expired.reason) == ("suppressed", "capped")
