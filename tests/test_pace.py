"""Issue 32: sends at the pace providers and journeys allow, and the provider's door.

- a journey's pace spaces its sends across the cluster, and a send that would wait past
  its TTL is skipped `expired`;
- a provider's ceiling holds across two worker processes (the sandbox keeps it as the
  provider would, counting each request over it, and counts none);
- a 429 with Retry-After waits on a timer and costs no attempt;
- a send whose last attempt times out is settled `unknown`, not left `pending`;
- a push retry goes only to the devices that have not got it;
- an SMS retry after a timed-out request asks Twilio first, and sends nothing twice.

Provider sends run in virtual time (the dev server skips the retries' backoff and the
timers); the paced ones in real time, as the pace is a rate in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import WorkflowHandle
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from journeys.schemas.enrollment import (
    EnrollmentState,
)
from journeys.schemas.journey import JourneySpec
from journeys.schemas.pace import Pace
from journeys.schemas.profile import Profile
from journeys.stack.embedded import Stack, spawn
from journeys.workflows.journey import JourneyWorkflow
from tests.conftest import eventually, unique
from tests.helpers import journeys_ok, one_send, received, start_enrollment


def phone() -> str:
    return f"+1555{time.time_ns() // 1000 % 10_000_000:07d}"


async def in_virtual_time(
    stack: Stack, spec: JourneySpec, cid: str, **options: Any
) -> WorkflowHandle[JourneyWorkflow, EnrollmentState]:
    """Run one enrollment to its end with its clock skipping (backoffs, timers)."""
    skipper = TimeSkipper(stack.client, config=TimeSkippingConfig(enabled=True))
    handle = await start_enrollment(skipper.client, spec, cid, stack.settings.task_queue, **options)
    final = await asyncio.wait_for(handle.result(), 120)
    assert final.status == "completed", final
    return handle


async def fault(api: httpx.AsyncClient, **fault: Any) -> None:
    response = await api.post("/sandbox/faults", json=fault)
    assert response.status_code == 204, response.text


async def activities(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, int]]:
    """Each activity task started: (its activity type, its last attempt)."""
    scheduled: dict[int, str] = {}
    started = []
    for e in (await handle.fetch_history()).events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            scheduled[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        if e.HasField("activity_task_started_event_attributes"):
            a = e.activity_task_started_event_attributes
            started.append((scheduled[a.scheduled_event_id], a.attempt))
    return started


async def pollers(stack: Stack, queue: str) -> set[str]:
    """The identities of the workers polling `queue` for activities."""
    request = DescribeTaskQueueRequest(
        namespace=stack.client.namespace,
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    )
    described = await stack.client.workflow_service.describe_task_queue(request)
    return {p.identity for p in described.pollers}


async def test_a_429_with_retry_after_waits_on_a_timer_and_costs_no_attempt(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    to, cid = phone(), unique("throttled")
    await stack.stores.profiles.put(Profile(customer_id=cid, phone=to))
    await fault(api, provider="twilio", status=429, retry_after=120)
    spec = one_send(unique("throttled"), channel="sms", topic="transactional")
    handle = await in_virtual_time(stack, spec, cid)

    [row] = await stack.stores.ledger.for_customer(cid)
    assert row.status == "sent", row
    assert await activities(handle) == [("journeys.send", 1), ("journeys.send", 1)]
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in (await handle.fetch_history()).events
        if e.HasField("timer_started_event_attributes")
    ]
    assert any(timedelta(seconds=110) < t <= timedelta(seconds=120) for t in timers), timers
    assert len(await received(api, "twilio", to)) == 1  # the 429 took nothing


async def test_a_send_whose_last_attempt_times_out_is_settled_unknown(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    cid, token = unique("timeout"), unique("device")
    await stack.stores.profiles.put(Profile(customer_id=cid, push_tokens=[token]))
    # FCM answers each attempt after the enrollment has given up on all eight.
    await fault(api, provider="fcm", status=500, delay_seconds=60, times=8)
    spec = one_send(unique("timeout"), channel="push", topic="transactional")
    handle = await in_virtual_time(stack, spec, cid, send_timeout=1)

    [row] = await stack.stores.ledger.for_customer(cid)
    assert row.status == "unknown", row
    assert "gave up" in (row.reason or "") and "timeout" in (row.reason or "").lower()
    # (History keeps an activity's last attempt: the eighth.)
    assert await activities(handle) == [("journeys.send", 8), ("journeys.give_up_send", 1)]
    final = await handle.result()
    assert final.context["steps"]["send"]["status"] == "unknown"


async def test_a_push_retry_goes_only_to_the_devices_not_yet_reached(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    cid, first, second = unique("devices"), unique("phone"), unique("tablet")
    await stack.stores.profiles.put(Profile(customer_id=cid, push_tokens=[first, second]))
    await fault(api, provider="fcm", status=503, after=1)  # the second device's call fails
    spec = one_send(unique("devices"), channel="push", topic="transactional")
    handle = await in_virtual_time(stack, spec, cid)

    [row] = await stack.stores.ledger.for_customer(cid)
    assert row.status == "sent" and row.attempts == 2, row
    assert "2 of 2" in (row.provider_status or "")
    assert [len(await received(api, "fcm", t)) for t in (first, second)] == [1, 1]
    assert await activities(handle) == [("journeys.send", 2)]


async def test_an_sms_retry_after_a_timeout_asks_twilio_before_sending_again(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Twilio took the message but the answer came too late: the retry finds it in
    Twilio's list (this To, this From, this body, since the send began, no other ledger
    row's) and records it, instead of sending it twice."""
    to, cid = phone(), unique("lookup")
    await stack.stores.profiles.put(Profile(customer_id=cid, phone=to))
    await fault(api, provider="twilio", status=500, delay_seconds=3)
    spec = one_send(unique("lookup"), channel="sms", topic="transactional", body="Code 1234")
    await in_virtual_time(stack, spec, cid, send_timeout=1)

    [row] = await stack.stores.ledger.for_customer(cid)
    assert row.status == "sent" and row.attempts == 2, row
    [taken] = await received(api, "twilio", to)
    assert taken["form"]["Body"] == "Code 1234"
    assert row.provider_id and row.provider_id.startswith("SM")

    # A second send of the same body to the same number is its own message: the lookup
    # skips the sid the first one's ledger row holds.
    await fault(api, provider="twilio", status=500, delay_seconds=3)
    again = one_send(unique("lookup"), channel="sms", topic="transactional", body="Code 1234")
    await in_virtual_time(stack, again, cid, send_timeout=1)
    rows = await stack.stores.ledger.for_customer(cid)
    assert len(rows) == 2 and {r.status for r in rows} == {"sent"}
    assert len({r.provider_id for r in rows}) == 2
    assert len(await received(api, "twilio", to)) == 2


async def test_a_journeys_pace_spaces_its_sends_and_expires_the_stale(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """60 a minute is one a second across the cluster; with a TTL of 2.5 s the fourth of
    four simultaneous entrants would wait 3 s, so it is skipped, `expired`, at once."""
    spec = one_send(unique("paced")).model_copy(
        update={"pace": Pace(per_minute=60, ttl=timedelta(seconds=2.5))}
    )
    customers = [unique("paced") for _ in range(4)]
    for cid in customers:
        await stack.stores.profiles.put(Profile(customer_id=cid))
    handles = [
        await start_enrollment(stack.client, spec, c, stack.settings.task_queue) for c in customers
    ]
    view = await eventually(
        lambda: api.get("/v1/pace"),
        lambda r: any(
            q["bucket"] == f"journey:{spec.id}" and q["waiting"] >= 1 for q in r.json()["queues"]
        ),
        timeout=10,
        interval=0.1,
    )
    [queue] = [q for q in view.json()["queues"] if q["bucket"] == f"journey:{spec.id}"]
    assert queue["drain_seconds"] > 0
    await asyncio.gather(*(asyncio.wait_for(h.result(), 30) for h in handles))

    rows = [r for c in customers for r in await stack.stores.ledger.for_customer(c)]
    sent = sorted(r.updated_at for r in rows if r.status == "sent")
    expired = [r for r in rows if r.status == "suppressed"]
    assert len(sent) == 3 and len(expired) == 1, [(r.status, r.reason) for r in rows]
    assert (expired[0].reason or "").startswith("expired")
    gaps = [(b - a).total_seconds() for a, b in zip(sent, sent[1:], strict=False)]
    assert all(g >= 0.9 for g in gaps), gaps


@pytest.mark.slow
async def test_a_providers_ceiling_holds_across_two_worker_processes(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Two worker processes share one SMS number paced at 2 a second. The sandbox
    keeps that ceiling as Twilio does (over a number's rate its queue holds the message;
    one held longer than an interval is counted) and counts none over it; the twelve
    take at least 5.5 s from first to last (2 a second overall, whichever worker sent).
    The queue shows meanwhile, and both workers sent."""
    number, queue = phone(), unique("pace")
    settings = stack.settings.model_copy(
        update={
            "task_queue": queue,
            "sms_from": number,
            "pace_sms_per_second": 2.0,
            "tracing": False,
            "metrics_address": None,
        }
    )
    ceiling = await api.put("/sandbox/ceilings", json={"provider": "twilio", "per_second": 2})
    assert ceiling.status_code == 204, ceiling.text
    workers: list[subprocess.Popen[bytes]] = [spawn(settings), spawn(settings)]
    try:
        await eventually(
            lambda: pollers(stack, queue), lambda found: len(found) == 2, timeout=90, interval=0.5
        )
        spec = one_send(unique("pace"), channel="sms", topic="transactional")
        customers = [unique("pace") for _ in range(12)]
        for cid in customers:
            await stack.stores.profiles.put(Profile(customer_id=cid, phone=phone()))
        handles = [await start_enrollment(stack.client, spec, c, queue) for c in customers]
        await eventually(
            lambda: api.get("/v1/pace"),
            lambda r: any(
                q["bucket"] == f"sms:{number}" and q["waiting"] >= 1 for q in r.json()["queues"]
            ),
            timeout=60,
            interval=0.2,
        )
        await asyncio.gather(*(asyncio.wait_for(h.result(), 120) for h in handles))
        rows = [r for c in customers for r in await stack.stores.ledger.for_customer(c)]
        assert [r.status for r in rows] == ["sent"] * 12
        over = (await api.get("/sandbox/ceilings")).json()["over"]
        assert over.get(f"twilio:{number}", 0) == 0, over
        sent = sorted(
            datetime.fromisoformat(r["at"])
            for r in await received(api, "twilio")
            if r["form"]["From"] == number
        )
        assert len(sent) == 12
        # Slots are 0.5 s apart; an arrival may be late by the worker's wake-up (jitter).
        assert (sent[-1] - sent[0]).total_seconds() >= 5.5 - 0.2, sent
        identities = set()
        for h in handles:
            for e in (await h.fetch_history()).events:
                if e.HasField("activity_task_started_event_attributes"):
                    identities.add(e.activity_task_started_event_attributes.identity)
        assert len(identities) == 2, identities
    finally:
        await api.put("/sandbox/ceilings", json={"provider": "twilio", "per_second": None})
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)


async def test_an_operator_changes_a_ceiling_at_run_time(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """`journeys pace set` writes the bucket's ceiling where every worker's next booking
    reads it; `reset` puts the settings' (here, the journey's own pace) back. A bucket that
    is none of the kinds is a 422 naming the field, and is not echoed."""
    spec = one_send(unique("ceiling")).model_copy(update={"pace": Pace(per_minute=120)})
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).status_code == 201
    bucket = f"journey:{spec.id}"
    url = f"http://127.0.0.1:{stack.settings.api_port}"
    shown = await journeys_ok("pace", "set", bucket, "5", "--api-url", url)
    assert bucket in shown and "operator" in shown
    listed = json.loads(await journeys_ok("pace", "--json", "--api-url", url))
    [queue] = [q for q in listed["queues"] if q["bucket"] == bucket]
    assert (queue["per_second"], queue["limit_from"]) == (5.0, "operator")
    assert (
        await stack.stores.pace.book([bucket], lambda _: 2.0, poll=timedelta(seconds=1))
    ) is not None
    booked = await stack.stores.pace.book([bucket], lambda _: 2.0, poll=timedelta(seconds=1))
    assert booked is not None and booked.per_second == 5.0  # the operator's, not 2/s

    await journeys_ok("pace", "reset", bucket, "--api-url", url)
    listed = (await api.get("/v1/pace")).json()
    [queue] = [q for q in listed["queues"] if q["bucket"] == bucket]
    assert (queue["per_second"], queue["limit_from"]) == (2.0, "journey")

    bad = await api.put("/v1/pace", json={"bucket": "sms:<script>", "per_second": 1})
    assert bad.status_code == 422 and "<script>" not in bad.text
    assert bad.json()["errors"][0]["loc"][-1] == "bucket"


async def _worker_for(stack: Stack, queue: str) -> subprocess.Popen[bytes]:
    """A worker in its own process on `queue`, polling before this returns."""
    settings = stack.settings.model_copy(
        update={"task_queue": queue, "tracing": False, "metrics_address": None}
    )
    worker = spawn(settings)
    await eventually(
        lambda: pollers(stack, queue), lambda found: len(found) >= 1, timeout=90, interval=0.5
    )
    return worker


@contextlib.asynccontextmanager
async def killable_worker(stack: Stack, queue: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A worker process on `queue`; what it yields kills it (SIGKILL) and starts another.
    Every one started is killed at the end."""
    running = [await _worker_for(stack, queue)]

    async def kill_and_replace() -> None:
        running[-1].kill()
        running[-1].wait(10)
        running.append(await _worker_for(stack, queue))

    try:
        yield kill_and_replace
    finally:
        for worker in running:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)


async def settled_once_retried(stack: Stack, handle: WorkflowHandle[Any, Any], cid: str) -> None:
    """The enrollment ended, its one send `sent` on its second attempt."""
    final = await asyncio.wait_for(handle.result(), 60)
    assert final.status == "completed"
    [row] = await stack.stores.ledger.for_customer(cid)
    assert row.status == "sent" and row.attempts == 2, row


@pytest.mark.slow
async def test_a_worker_killed_after_twilio_took_the_sms_sends_nothing_twice(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """The worker dies (SIGKILL) while Twilio, which has the message, is slow to answer.
    The send's attempt times out on the server; another worker's retry asks Twilio's
    list first, finds the message and records it: one message, the ledger row `sent`."""
    to, cid, queue = phone(), unique("killed"), unique("killed")
    await stack.stores.profiles.put(Profile(customer_id=cid, phone=to))
    async with killable_worker(stack, queue) as kill_and_replace:
        await fault(api, provider="twilio", status=500, delay_seconds=30)
        spec = one_send(unique("killed"), channel="sms", topic="transactional", body="Code 42")
        handle = await start_enrollment(stack.client, spec, cid, queue, send_timeout=3)
        await eventually(lambda: received(api, "twilio", to), lambda r: len(r) == 1, timeout=30)
        await kill_and_replace()
        await settled_once_retried(stack, handle, cid)
    assert len(await received(api, "twilio", to)) == 1


@pytest.mark.slow
async def test_a_worker_killed_mid_push_sends_again_only_to_the_devices_not_reached(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Two devices; FCM accepts the first, and is slow to answer for the second, when the
    worker dies (SIGKILL). The retry on another worker skips the first device (its
    acceptance was recorded before the second call): it got the message once."""
    cid, phone_token, tablet = unique("killed"), unique("phone"), unique("tablet")
    queue = unique("killed")
    await stack.stores.profiles.put(Profile(customer_id=cid, push_tokens=[phone_token, tablet]))
    async with killable_worker(stack, queue) as kill_and_replace:
        await fault(api, provider="fcm", status=500, delay_seconds=30, after=1)
        spec = one_send(unique("killed"), channel="push", topic="transactional")
        handle = await start_enrollment(stack.client, spec, cid, queue, send_timeout=3)
        await eventually(lambda: received(api, "fcm", tablet), lambda r: len(r) == 1, timeout=30)
        await kill_and_replace()
        await settled_once_retried(stack, handle, cid)
    assert len(await received(api, "fcm", phone_token)) == 1
