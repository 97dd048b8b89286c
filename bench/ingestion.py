"""Entry at scale (issue 5): Segment batch ingestion and audience entry, each beside raw
Temporal in the same run on the same dev server.

- events/s through `/v1/batch` (Segment track calls, 100 per request, signalled to running
  enrollments that listen for them, with the message-id log and the profile's activity
  learning), beside the same events signalled straight to as many running hand-written
  waits for them (`bench.baseline.ListenerWorkflow`), 100 at a time, with the same number
  of batches in flight; a round ends when its side's worker and the dev server are idle
  again (the signals' workflow tasks have run);
- audience entry: an uploaded list enrolled by `AudienceEntryWorkflow` (unthrottled) into a
  journey that waits a day, beside raw starts of a trivial workflow that sleeps a day, with
  as many starts in flight as the run's activity keeps (500). Each side's clock stops when
  its worker has picked up every workflow task (the task queue's backlog is empty), not
  when the server accepted the starts; wall time, rate, and each side's worker process's
  and the dev server's memory and CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from bench.baseline import ListenerWorkflow, TrivialWorkflow
from bench.stack import (
    Row,
    alternate,
    api_client,
    bench_stack,
    cpu_seconds,
    drained,
    idle,
    rss_mb,
    tag,
    worker_process,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import (
    Audience,
    Entry,
    ExitStep,
    JourneySpec,
    WaitForEventStep,
    WaitStep,
)
from journeys.schemas.predicates import Comparison
from journeys.stack.embedded import Stack

RAW_QUEUE = "bench-raw-ingestion"
BATCH = 100
CUSTOMERS = 200
IN_FLIGHT_STARTS = 500


async def events_per_second(
    stack: Stack, api: httpx.AsyncClient, n: int, c: int, pids: dict[str, list[int]]
) -> Row:
    """`pids`: the processes each side's work lands in (its worker, the dev server). A
    signal is answered once the server has it, and its workflow task runs after: a round
    ends when those processes are idle again, so no side's backlog is run, and counted, in
    the other's round."""
    run = tag()
    spec = JourneySpec(
        id=f"bench-ingest-{run}",
        name="bench ingestion",
        entry=Entry(event=f"bench.enter.{run}"),
        steps=[
            WaitForEventStep(
                id="listen",
                event=f"bench.ping.{run}",
                where=Comparison(field="event.stop", op="eq", value=True),  # never matches
                timeout=timedelta(days=30),
                on_event="end",
                on_timeout="end",
            ),
            ExitStep(id="end"),
        ],
    )
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).status_code == 201
    customers = [f"i{run}-{k}" for k in range(CUSTOMERS)]
    entries = [{"customer_id": cid, "name": f"bench.enter.{run}"} for cid in customers]
    assert (await api.post("/v1/events", json={"events": entries})).status_code == 202
    raw = [
        await stack.client.start_workflow(
            ListenerWorkflow.run, 30, id=f"raw-ingest-{run}-{k}", task_queue=RAW_QUEUE
        )
        for k in range(CUSTOMERS)
    ]
    batches = n // BATCH

    async def ours(b: int) -> None:
        messages = [
            {
                "type": "track",
                "userId": customers[(b * BATCH + k) % CUSTOMERS],
                "event": f"bench.ping.{run}",
                "properties": {"k": k},
                "messageId": f"{run}-{b}-{k}",
            }
            for k in range(BATCH)
        ]
        response = await api.post("/v1/batch", json={"batch": messages})
        assert response.status_code == 200, response.text

    async def baseline(b: int) -> None:
        def ping(k: int) -> CustomerEvent:
            customer = customers[(b * BATCH + k) % CUSTOMERS]
            return CustomerEvent.create(customer, f"bench.ping.{run}", {"k": k})

        await asyncio.gather(
            *(raw[(b * BATCH + k) % CUSTOMERS].signal("event", ping(k)) for k in range(BATCH))
        )

    rate = await alternate(
        batches, c, {"raw": baseline, "ours": ours}, settle=lambda side: idle(pids[side])
    )
    return (
        "/v1/batch events/s vs signals to hand-written waits",
        rate["ours"] * BATCH,
        rate["raw"] * BATCH,
        ">= 0.9x",
    )


async def audience_journey(
    api: httpx.AsyncClient, n: int, rate: float, wait: timedelta
) -> JourneySpec:
    """An uploaded list of `n` customers and a journey that enrols it at `rate` and waits
    `wait`, published."""
    run = tag()
    list_id = f"bench-{run}"
    ids = [f"a{run}-{k:07d}" for k in range(n)]
    for i in range(0, n, 10_000):
        added = await api.post(
            f"/v1/audiences/{list_id}/members", json={"customer_ids": ids[i : i + 10_000]}
        )
        assert added.status_code == 200, added.text
    spec = JourneySpec(
        id=f"bench-audience-{run}",
        name="bench audience",
        entry=Entry(audience=Audience(list=list_id, rate_per_second=rate)),
        steps=[WaitStep(id="wait", duration=wait, next="end"), ExitStep(id="end")],
    )
    assert (await api.post("/v1/journeys", json=spec.model_dump(mode="json"))).status_code == 201
    return spec


async def run_audience(
    api: httpx.AsyncClient, spec: JourneySpec, n: int, every: Callable[[int], None]
) -> None:
    """Start the journey's audience run and follow it to the end (every `n` entered);
    `every(done)` is called on each look (twice a second)."""
    started = await api.post(f"/v1/journeys/{spec.id}/audience-runs", json={})
    assert started.status_code == 202, started.text
    name = started.json()["run"]
    while True:
        progress = (await api.get(f"/v1/journeys/{spec.id}/audience-runs/{name}")).json()
        p = progress["progress"]
        every(p["done"])
        if p["status"] == "completed":
            assert p["entered"] == n, p
            return
        await asyncio.sleep(0.5)


async def audience_entry(
    stack: Stack, api: httpx.AsyncClient, n: int, server_pid: int, workers: dict[str, int]
) -> list[Row]:
    """`workers`: the pid of each side's worker process (empty: a warm-up, no figures)."""
    run = tag()
    spec = await audience_journey(api, n, 10_000, timedelta(days=1))

    figures: dict[str, dict[str, float]] = {}
    peak = {"worker": 0.0, "server": 0.0}

    async def sample(worker: int | str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            peak["worker"] = max(peak["worker"], rss_mb(worker))
            peak["server"] = max(peak["server"], rss_mb(server_pid))
            await asyncio.sleep(0.5)

    async def measured(name: str, work: Any) -> None:
        worker = workers.get(name, "self")
        stop = asyncio.Event()
        peak.update(worker=0.0, server=0.0)
        sampler = asyncio.create_task(sample(worker, stop))
        before = {
            "worker": rss_mb(worker),
            "cpu": cpu_seconds(worker),
            "server_cpu": cpu_seconds(server_pid),
        }
        started = time.perf_counter()
        await work()
        wall = time.perf_counter() - started
        stop.set()
        await sampler
        figures[name] = {
            "wall": wall,
            "rate": n / wall,
            "worker_before": before["worker"],
            "worker_after": rss_mb(worker),
            "worker_peak": peak["worker"],
            "server_peak": peak["server"],
            "cpu": cpu_seconds(worker) - before["cpu"],
            "server_cpu": cpu_seconds(server_pid) - before["server_cpu"],
        }

    async def ours() -> None:
        shown = [0]

        def tell(done: int) -> None:
            if done >= shown[0] + 50_000:
                shown[0] = done - done % 50_000
                print(f"  audience: {done:,}/{n:,}")

        await run_audience(api, spec, n, tell)
        await drained(stack.client, stack.settings.task_queue)

    async def raw() -> None:
        queue = iter(range(n))

        async def starter() -> None:
            for k in queue:
                await stack.client.start_workflow(
                    TrivialWorkflow.run, False, id=f"raw-aud-{run}-{k}", task_queue=RAW_QUEUE
                )

        await asyncio.gather(*(starter() for _ in range(IN_FLIGHT_STARTS)))
        await drained(stack.client, RAW_QUEUE)

    if not workers:
        await ours()
        return []
    await measured("raw", raw)
    await measured("ours", ours)
    o, r = figures["ours"], figures["raw"]
    return [
        (f"audience entry of {n:,}: enrollments/s", o["rate"], r["rate"], ">= 0.8x"),
        (f"audience entry of {n:,}: wall s", o["wall"], r["wall"], "-"),
        ("  worker process RSS before (MB)", o["worker_before"], r["worker_before"], "-"),
        ("  worker process RSS peak (MB)", o["worker_peak"], r["worker_peak"], "< 300 MB"),
        ("  worker process RSS after (MB)", o["worker_after"], r["worker_after"], "flat"),
        ("  worker process CPU s", o["cpu"], r["cpu"], "-"),
        ("  dev server RSS peak (MB)", o["server_peak"], r["server_peak"], "-"),
        ("  dev server CPU s", o["server_cpu"], r["server_cpu"], "-"),
    ]


async def measure(n: int, concurrency: int, audience_n: int, console: Any) -> list[Row]:
    """The API in this process; the journey worker and the raw worker each in their own,
    as deployed, so each side's memory and CPU are measured apart."""
    async with bench_stack(worker=False) as (stack, base, server_pid):
        with (
            worker_process(stack.settings, "journeys.cli.main", "worker") as journey_worker,
            worker_process(stack.settings, "bench.baseline", RAW_QUEUE) as raw_worker,
        ):
            async with await api_client(stack.stores, base) as api:
                await stack.client.execute_workflow(  # the raw worker is polling
                    TrivialWorkflow.run, True, id=f"raw-ready-{tag()}", task_queue=RAW_QUEUE
                )
                await audience_entry(stack, api, 200, server_pid, {})  # and ours, warmed up
                console.print(f"events through /v1/batch, n={n}, {concurrency} batches in flight")
                pids = {"ours": journey_worker.pid, "raw": raw_worker.pid}
                sides = {side: [pid, server_pid] for side, pid in pids.items()}
                rows = [await events_per_second(stack, api, n, concurrency, sides)]
                console.print(f"audience entry of {audience_n:,} ...")
                rows += await audience_entry(stack, api, audience_n, server_pid, pids)
                return rows
