"""Backtest speed (issue 29): 100,000 customers over 30 days of recorded events (a seeded
generator, below), simulated by the step engine with nothing sent, against the onboarding
journey; its peak memory; and beside it in the same run, a sample of the same enrollments
run for real in Temporal (the journey's clock sped up so its three days pass in seconds).

The ratio is the point: what the simulation does per second of wall time against what the
real interpreter does, with every timer, activity and history event it takes.
"""

from __future__ import annotations

import asyncio
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import insert

from bench.stack import Row, bench_stack
from journeys.examples.onboarding_nudge import JOURNEY as ONBOARDING
from journeys.schemas.events import CustomerEvent
from journeys.schemas.send_decision import Rules
from journeys.schemas.settings import Settings
from journeys.storage.stores import Stores
from journeys.storage.tables import ProfileRow, RecordedEventRow
from journeys.usecases.backtest import backtest, recorded
from journeys.usecases.routing import EventRouter

DAYS = 30
SEED = 29


def generate(
    customers: int, days: int = DAYS, seed: int = SEED
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(profiles, events) of `customers` over `days`: each registers once, at a random
    time; a third add clubs within four days; everyone opens the app about five times."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Jakarta", "Asia/Tokyo"]
    profiles: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for i in range(customers):
        cid = f"c{i:06d}"
        data: dict[str, Any] = {"email": f"{cid}@example.com", "timezone": rng.choice(zones)}
        if rng.random() < 0.5:
            data["push_tokens"] = [f"token-{cid}"]
        profiles.append({"customer_id": cid, "data": data, "updated_at": start})
        signed_up = start + timedelta(seconds=rng.uniform(0, days * 86400))

        def add(name: str, at: datetime, cid: str = cid) -> None:
            if at < start + timedelta(days=days):
                events.append(
                    {
                        "customer_id": cid, "name": name, "properties": {}, "timestamp": at,
                        "message_id": f"{cid}-{len(events)}", "received_at": at,
                    }
                )  # fmt: skip

        add("registration.completed", signed_up)
        if rng.random() < 1 / 3:
            add("bag.club_added", signed_up + timedelta(seconds=rng.uniform(0, 4 * 86400)))
        for _ in range(rng.randint(3, 7)):
            add("app.opened", signed_up + timedelta(seconds=rng.uniform(0, 10 * 86400)))
    return profiles, events


async def simulated(customers: int, console: Console) -> tuple[float, float, int, float]:
    """(seconds, customers per second, enrollments, MB the process's peak grew by) of a
    30-day backtest: reading the range and simulating it."""
    with tempfile.TemporaryDirectory() as data:
        stores = await Stores.open(f"sqlite+aiosqlite:///{Path(data) / 'b.db'}", channels=[])
        try:
            console.print(f"backtest: generating {customers:,} customers over {DAYS} days ...")
            profiles, events = generate(customers)
            async with stores.engine.begin() as connection:
                for start in range(0, len(profiles), 10_000):
                    await connection.execute(insert(ProfileRow), profiles[start : start + 10_000])
                for start in range(0, len(events), 10_000):
                    chunk = events[start : start + 10_000]
                    await connection.execute(insert(RecordedEventRow), chunk)
            console.print(f"backtest: {len(events):,} events recorded; simulating ...")
            since = datetime(2026, 11, 1, tzinfo=UTC)
            until = since + timedelta(days=DAYS)
            before = _rss_mb()
            started = time.perf_counter()
            found = await recorded(stores, since, until)
            report = await backtest(
                stores, ONBOARDING, found, since, until, rules=Rules.of(Settings())
            )
            seconds = time.perf_counter() - started
            peak = _rss_mb() - before  # the process's peak grew by what the backtest held
        finally:
            await stores.close()
    console.print(
        f"backtest: {report.enrolled:,} enrollments in {seconds:.1f} s; sent "
        f"{report.messages}; by status {report.by_status}"
    )
    return seconds, customers / seconds, report.enrolled, peak


def _rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def real(n: int, console: Console) -> float:
    """Enrollments per second through the real interpreter in Temporal: `n` customers
    enter the onboarding journey (its three days in about 3 s of wall time) and run to
    their end; a third add clubs, as in the generated traffic."""
    console.print(f"backtest: {n} of the same enrollments in real Temporal ...")
    async with bench_stack(examples=True) as (stack, _, _):
        spec = ONBOARDING.model_copy(update={"id": "bt-onboarding", "time_scale": 86_400.0})
        await stack.stores.journeys.publish(spec)
        router = EventRouter(
            stack.client, stack.stores.journeys, task_queue=stack.settings.task_queue
        )
        await stack.stores.profiles.change(
            [(f"r{i}", {"email": f"r{i}@example.com"}) for i in range(n)]
        )
        started = time.perf_counter()
        gate = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with gate:
                await router.route(CustomerEvent.create(f"r{i}", "registration.completed"))
            if i % 3 == 0:
                await asyncio.sleep(0.5)  # half a day in
                await router.route(CustomerEvent.create(f"r{i}", "bag.club_added"))
            handle = stack.client.get_workflow_handle(f"journey/{spec.id}/r{i}")
            await handle.result()

        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)


async def measure(customers: int, n: int, console: Console) -> list[Row]:
    seconds, rate, enrolled, peak = await simulated(customers, console)
    temporal = await real(n, console)
    rss = _rss_mb()
    console.print(
        f"backtest: {customers:,} customers in {seconds:.1f} s (target 120 s), memory "
        f"{peak:.0f} MB over the process's peak before it (peak RSS {rss:.0f} MB); real Temporal: "
        f"{temporal:.1f} enrollments/s, so the same {enrolled:,} enrollments take "
        f"{enrolled / temporal / 60:.0f} min of a worker"
    )
    return [
        (
            f"backtest, {customers:,} customers x {DAYS} days (customers/s)",
            rate,
            temporal,
            "<= 120 s",
        ),
        ("backtest memory, peak RSS growth (MB)", peak, 0.0, "-"),
    ]
