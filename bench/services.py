"""Services over HTTP (issue 3): decision latency and send overhead per channel.

- decision latency: `POST /v1/decisions` against a 200-offer catalogue (eligibility
  predicates, live windows, caps on some offers, formula ranking), one request at a time as
  one activity makes it, beside `GET /healthz` on the same API (the HTTP floor);
- send overhead: the send activity (reservation, template, provider call, ledger settle)
  run by a workflow, beside a bare activity that only makes the same provider call
  (`channel.deliver` with a pre-rendered message; for in-app, one inbox insert), per
  channel, each on the embedded default's built-in services and sandboxes.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio import activity, workflow
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.stack import Row, api_client, bench_stack
from journeys.activities.channels import Outbound, channels_for
from journeys.activities.delivery import DeliveryActivities
from journeys.activities.egress import shared_client
from journeys.schemas.decision import Offer
from journeys.schemas.delivery import SendRequest
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import MessageContent
from journeys.schemas.profile import Profile
from journeys.stack.embedded import Stack
from journeys.storage.db import sessions

QUEUE = "bench-services"
CHANNELS = ("in_app", "email", "sms", "whatsapp", "push", "webhook")


@workflow.defn(name="BenchOneActivity")
class OneActivity:
    """Runs one activity by name: the same workflow around both sides of a comparison."""

    @workflow.run
    async def run(self, name: str, arg: Any) -> Any:
        return await workflow.execute_activity(
            name, arg, start_to_close_timeout=timedelta(seconds=30)
        )


class Bare:
    """The provider call alone, through the same channel objects the send activity uses;
    and the send activity, timed the same way. Each returns its own duration in ms."""

    def __init__(self, stack: Stack, channels: dict[str, Any], delivery: DeliveryActivities):
        self._stack = stack
        self._channels = channels
        self._delivery = delivery

    @activity.defn(name="bench.timed_send")
    async def timed_send(self, request: SendRequest) -> float:
        started = time.perf_counter()
        result = await self._delivery.send(request)
        assert result.status == "sent", result
        return (time.perf_counter() - started) * 1000

    @activity.defn(name="bench.bare_send")
    async def send(self, arg: dict[str, Any]) -> float:
        started = time.perf_counter()
        channel = arg["channel"]
        message = Outbound(
            key=arg["key"],
            customer_id=arg["customer_id"],
            journey_id="bench",
            step_id="send",
            addresses=arg["addresses"],
            content={"subject": "Hi", "title": "Hi", "body": "Hello there"},
        )
        delivered = await self._channels[channel].deliver(message)
        if channel == "in_app":  # the in-app delivery is the inbox write itself
            async with sessions(self._stack.stores.engine)() as session:
                session.add_all(delivered.rows)
                await session.commit()
        return (time.perf_counter() - started) * 1000


def _catalogue(placement: str) -> list[Offer]:
    start = datetime.now(UTC) - timedelta(days=1)
    offers = []
    for i in range(200):
        eligibility: Any = None
        if i % 3 == 1:
            eligibility = {
                "field": "profile.attributes.tier",
                "op": "in",
                "value": ["gold", "silver"],
            }
        elif i % 3 == 2:
            eligibility = {
                "all": [
                    {"field": "profile.attributes.age", "op": "gte", "value": 18},
                    {"field": "context.cart_total", "op": "gt", "value": i},
                ]
            }
        offers.append(
            Offer(
                id=f"bench-{placement}-{i}",
                name=f"Offer {i}",
                placements=[placement],
                priority=i % 17,
                score=(i * 37 % 100) / 100,
                fields={"margin": i % 11, "title": f"Offer {i}"},
                eligibility=eligibility,
                starts_at=start if i % 5 == 0 else None,
                cap_per_customer=3 if i % 4 == 0 else None,
                cap_total=100_000 if i % 10 == 0 else None,
            )
        )
    return offers


async def decision_latency(stack: Stack, api: httpx.AsyncClient, n: int) -> list[Row]:
    placement = uuid.uuid4().hex[:8]
    for offer in _catalogue(placement):
        await stack.stores.offers.put(offer)
    customers = [f"dc-{placement}-{i}" for i in range(50)]
    for i, cid in enumerate(customers):
        tier = ("gold", "silver", "bronze")[i % 3]
        await stack.stores.profiles.put(
            Profile(customer_id=cid, attributes={"tier": tier, "age": 20 + i})
        )
    ranking = {"by": "formula", "formula": "offer.fields.margin * 2 + offer.score"}
    ours: list[float] = []
    floor: list[float] = []
    for i in range(n + 20):
        body = {
            "customer_id": customers[i % len(customers)],
            "placement": placement,
            "limit": 3,
            "ranking": ranking,
            "context": {"cart_total": 120},
            "key": f"{placement}-{i}",
        }
        started = time.perf_counter()
        response = await api.post("/v1/decisions", json=body)
        took = (time.perf_counter() - started) * 1000
        assert response.status_code == 200 and response.json()["offers"], response.text
        started = time.perf_counter()
        await api.get("/healthz")
        bare = (time.perf_counter() - started) * 1000
        if i >= 20:  # warm-up excluded
            ours.append(took)
            floor.append(bare)
    return [
        ("decision p50, 200 offers (ms)", statistics.median(ours), statistics.median(floor), "-"),
        ("decision p99, 200 offers (ms)", _pct(ours, 0.99), _pct(floor, 0.99), "< 20 ms"),
    ]


async def send_overhead(stack: Stack, n: int, concurrency: int) -> list[Row]:
    settings = stack.settings
    http = shared_client(settings)
    channels = {
        c.name: c
        for c in channels_for(
            settings,
            http,
            stack.stores.profiles.forget_push_tokens,
            stack.stores.devices,
            stack.stores.ledger.claimed,
        )
    }
    delivery = DeliveryActivities(
        ledger=stack.stores.ledger,
        templates=stack.stores.templates,
        channels=channels.values(),
        settings=settings,
    )
    bare = Bare(stack, channels, delivery)
    worker = Worker(
        stack.client,
        task_queue=QUEUE,
        workflows=[OneActivity],
        activities=[bare.timed_send, bare.send],
        max_concurrent_activities=200,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
        ),
    )
    async with worker:
        rows = [
            row
            for channel in CHANNELS
            for row in await _channel_overhead(stack, channel, n, concurrency)
        ]
    await http.aclose()
    return rows


async def _channel_overhead(stack: Stack, channel: str, n: int, concurrency: int) -> list[Row]:
    run = uuid.uuid4().hex[:8]
    profile = Profile(
        customer_id="", email="bench@example.com", phone="+15551231234", push_tokens=["bench-tok"]
    )
    # Per side: round trips and the activity's own time, both in ms.
    times: dict[str, tuple[list[float], list[float]]] = {"ours": ([], []), "bare": ([], [])}

    async def timed(side: str, activity_name: str, arg: Any, i: int) -> None:
        started = time.perf_counter()
        took = await stack.client.execute_workflow(
            OneActivity.run,
            args=[activity_name, arg],
            id=f"bench-{side}/{run}/{i}",
            task_queue=QUEUE,
        )
        times[side][0].append((time.perf_counter() - started) * 1000)
        times[side][1].append(took)

    async def ours(i: int) -> None:
        cid = f"so-{run}-{i}"
        await stack.stores.profiles.put(profile.model_copy(update={"customer_id": cid}))
        request = SendRequest(
            idempotency_key=f"bench/{run}/{i}",
            journey_id="bench",
            version=1,
            step_id="send",
            customer_id=cid,
            channel=channel,  # type: ignore[arg-type]
            content=MessageContent(
                subject="Hi", title="Hi", body="Hello {{ profile.customer_id }}"
            ),
            event=CustomerEvent.create(cid, "bench"),
            topic="transactional",
        )
        await timed("ours", "bench.timed_send", request, i)

    async def plain(i: int) -> None:
        address = profile.addresses(channel) or [f"sb-{run}-{i}"]
        arg = {"channel": channel, "key": f"bench-bare/{run}/{i}", "addresses": address}
        await timed("bare", "bench.bare_send", arg | {"customer_id": f"sb-{run}-{i}"}, i)

    for k, side in enumerate((plain, ours, plain, ours)):  # alternate: neither always first
        await _bounded(n // 2, concurrency, side, offset=(k // 2) * n)
    (ours_trip, ours_alone), (bare_trip, bare_alone) = times["ours"], times["bare"]
    med = statistics.median
    return [
        (
            f"send {channel}: workflow round trip p50 (ms)",
            med(ours_trip),
            med(bare_trip),
            "<= 1.5x",
        ),
        (f"  {channel}: the activity alone p50 (ms)", med(ours_alone), med(bare_alone), "-"),
    ]


async def _bounded(n: int, concurrency: int, one: Any, offset: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(offset + i)

    async def drain() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    await asyncio.gather(*(drain() for _ in range(concurrency)))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(n: int, concurrency: int, console: Any) -> list[Row]:
    async with bench_stack() as (stack, base, _):
        async with await api_client(stack.stores, base, 30) as api:
            console.print(f"decision latency, 200 offers, n={n} ...")
            rows = await decision_latency(stack, api, n)
        console.print(f"send overhead per channel, n={n}, concurrency={concurrency} ...")
        rows += await send_overhead(stack, n, concurrency)
        return rows
