"""`./dev bench`: scenario 1 enrollment throughput and event-to-delivery latency, each
beside a raw Temporal baseline on the same dev server in the same run.

- entry throughput: scenario 1 enrollments/s through the event router (signal-with-start
  of the pinned spec, search attributes, summary) vs signal-with-starts of a trivial
  workflow; rounds alternate so neither side always meets the emptier server;
- completion throughput: enrollments that send one in-app message and finish, vs trivial
  workflows that run one trivial activity and finish;
- event-to-delivery latency: HTTP event -> scenario 1's first send (in-app) done and its
  enrollment ended, vs a trivial workflow's signal-to-completion after one activity.

Each side's worker runs in a process of its own (`journeys worker`; bench/baseline.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import (
    backtest,
    bandit,
    ingestion,
    operations,
    pace,
    parked,
    reservations,
    services,
    sizing,
    tracking,
    versus,
)
from bench.baseline import TrivialWorkflow
from bench.stack import (
    Row,
    alternate,
    api_client,
    bench_stack,
    idle,
    pct,
    tag,
    worker_process,
)
from journeys.examples.onboarding_nudge import JOURNEY as ONBOARDING
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import Entry, ExitStep, JourneySpec, SendStep
from journeys.stack.embedded import Stack
from journeys.usecases.routing import EventRouter
from journeys.workflows import search_attributes as sa

console = Console()
RAW_QUEUE = "bench-raw"


async def publish(stack: Stack, router: EventRouter, spec: JourneySpec) -> tuple[JourneySpec, str]:
    """Publish under a fresh id and entry event, so only this journey enters; the spec
    and its entry event."""
    t = tag()
    spec = spec.model_copy(update={"id": f"bench-{t}", "entry": Entry(event=f"bench.{t}")})
    await stack.stores.journeys.publish(spec)
    router.invalidate()
    return spec, f"bench.{t}"


async def raw_start(
    stack: Stack, run: str, i: int, *, with_activity: bool, indexed: bool = False
) -> Any:
    """A trivial signal-with-start; `indexed` adds the five search attributes an
    enrollment starts with, to show what visibility indexing alone costs."""
    attributes = sa.at_start("bench", 1, f"c{i}", "first") if indexed else None
    return await stack.client.start_workflow(
        TrivialWorkflow.run,
        with_activity,
        id=f"bench-raw/{run}/{i}",
        task_queue=RAW_QUEUE,
        start_signal="event",
        start_signal_args=["go"],
        search_attributes=attributes,
    )


async def entry_throughput(
    stack: Stack, router: EventRouter, n: int, c: int, pids: list[int]
) -> list[Row]:
    spec, entry = await publish(stack, router, ONBOARDING)
    run = tag()

    async def ours(i: int) -> None:
        routed = await router.route(CustomerEvent.create(f"e{run}-{i}", entry))
        assert routed.entered == [spec.id], routed

    async def raw(i: int) -> None:
        await raw_start(stack, run, i, with_activity=False)

    async def raw_indexed(i: int) -> None:
        await raw_start(stack, f"{run}-sa", i, with_activity=False, indexed=True)

    sides = {"raw": raw, "ours": ours, "indexed": raw_indexed}
    rate = await alternate(n, c, sides, settle=lambda _: idle(pids))
    return [
        ("entry throughput (enrollments/s)", rate["ours"], rate["raw"], ">= 0.8x"),
        ("  vs raw + the same 5 search attributes", rate["ours"], rate["indexed"], "-"),
    ]


async def completion_throughput(
    stack: Stack, router: EventRouter, n: int, c: int, pids: list[int]
) -> Row:
    one_send = JourneySpec(
        id="one-send",
        name="Bench: one send",
        entry=Entry(event="unused"),
        steps=[
            SendStep(id="push", channel="in_app", template="come-back", next="end"),
            ExitStep(id="end"),
        ],
    )
    spec, entry = await publish(stack, router, one_send)
    run = tag()

    async def ours(i: int) -> None:
        cid = f"d{run}-{i}"
        await router.route(CustomerEvent.create(cid, entry))
        await stack.client.get_workflow_handle(f"journey/{spec.id}/{cid}").result()

    async def raw(i: int) -> None:
        await (await raw_start(stack, run, i, with_activity=True)).result()

    rate = await alternate(n, c, {"raw": raw, "ours": ours}, settle=lambda _: idle(pids))
    return ("completion throughput, one send (/s)", rate["ours"], rate["raw"], "-")


async def latency(
    stack: Stack, router: EventRouter, api: httpx.AsyncClient, n: int, c: int
) -> list[Row]:
    """Scenario 1's first send, entered directly (its waits removed: the send, then the
    end), from the HTTP event to the enrollment's end; the raw side from its signal-with-
    start to its end after one activity. Both wait on the workflow's result, so both keep
    the same number of runs in flight and neither polls."""
    push = ONBOARDING.steps[1].model_copy(update={"next": ONBOARDING.steps[-1].id})
    spec, entry = await publish(
        stack, router, ONBOARDING.model_copy(update={"steps": [push, ONBOARDING.steps[-1]]})
    )
    run = tag()
    ours_ms: list[float] = []
    raw_ms: list[float] = []

    async def ours(i: int) -> None:
        cid = f"l{run}-{i}"
        started = time.perf_counter()
        response = await api.post("/v1/events", json={"customer_id": cid, "name": entry})
        assert response.status_code == 202, response.text
        await stack.client.get_workflow_handle(f"journey/{spec.id}/{cid}").result()
        ours_ms.append((time.perf_counter() - started) * 1000)

    async def raw(i: int) -> None:
        started = time.perf_counter()
        await (await raw_start(stack, run, i, with_activity=True)).result()
        raw_ms.append((time.perf_counter() - started) * 1000)

    await alternate(n, c, {"raw": raw, "ours": ours})
    return [
        ("event-to-delivery p50 (ms)", statistics.median(ours_ms), statistics.median(raw_ms), "-"),
        ("event-to-delivery p99 (ms)", pct(ours_ms, 0.99), pct(raw_ms, 0.99), "<= 2x"),
    ]


async def measure(n: int, concurrency: int) -> list[Row]:
    """Each side's worker runs in a process of its own, as deployed (`journeys worker`, and
    bench/baseline.py's), so neither shares an event loop with the load or the API."""
    async with bench_stack(examples=True, worker=False) as (stack, base, server):
        router = EventRouter(
            stack.client, stack.stores.journeys, task_queue=stack.settings.task_queue
        )
        with (
            worker_process(stack.settings) as ours,
            worker_process(stack.settings, "bench.baseline", RAW_QUEUE) as raw,
        ):
            pids = [server, ours.pid, raw.pid]
            async with await api_client(stack.stores, base) as api:
                return await _measure(stack, router, api, n, concurrency, pids)


async def _measure(
    stack: Stack,
    router: EventRouter,
    api: httpx.AsyncClient,
    n: int,
    concurrency: int,
    pids: list[int],
) -> list[Row]:
    await entry_throughput(stack, router, 40, 10, pids)  # warm both paths (and workers) up
    console.print(f"n={n}, concurrency={concurrency}: entry throughput ...")
    rows = await entry_throughput(stack, router, n, concurrency, pids)
    console.print("completion throughput ...")
    rows.append(await completion_throughput(stack, router, n, concurrency, pids))
    console.print("event-to-delivery latency ...")
    rows += await latency(stack, router, api, n, 10)
    return rows


def report(rows: list[Row], markdown: Path | None) -> None:
    header = ("figure", "measured", "baseline", "ratio", "target")
    cells = [
        (f, f"{ours:.1f}", f"{raw:.1f}", f"{ours / raw:.2f}x" if raw else "-", t)
        for f, ours, raw, t in rows
    ]
    table = Table(title="measured beside a baseline in the same run")
    for name in header:
        table.add_column(name)
    for row in cells:
        table.add_row(*row)
    console.print(table)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|---|"]
        markdown.write_text("\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="./dev bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", type=int, default=400, help="enrollments per figure (default 400)")
    parser.add_argument("-c", "--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument(
        "--suite",
        choices=[
            "journeys",
            "reservations",
            "services",
            "ingestion",
            "operations",
            "sizing",
            "versus",
            "parked",
            "backtest",
            "tracking",
            "bandit",
            "pace",
            "all",
        ],
        default="all",
        help="journeys: scenario 1 vs raw Temporal; reservations: the guardrail reservation "
        "vs a bare insert, 50 concurrent senders, on SQLite and PostgreSQL; services: "
        "decision latency (200 offers) and send overhead per channel vs a bare provider call; "
        "ingestion: /v1/batch events/s vs raw signals, audience entry vs raw starts; "
        "operations: scenario 1 with tracing, metrics and the payload codec on vs off; "
        "sizing: CPU, history and billable actions per enrollment (deploy/README.md); "
        "versus: each example journey beside the same journey written by hand as a Temporal "
        "workflow (--journey: only those whose name contains it); "
        "parked: --audience N enrollments parked at a wait, the worker's and API's memory; "
        "backtest: --customers N (100,000) over 30 days simulated, beside -n of them in "
        "real Temporal; tracking: the tracked link and pixel vs a bare Starlette app, and a "
        "reaction's cost through the router; bandit: a bandit split's actions and latency "
        "to the first send vs a fixed split's; pace: --pace-audience N (100,000) through "
        "the providers' ceilings (not part of all: it takes as long as the ceilings say)",
    )
    parser.add_argument(
        "--audience", type=int, default=20_000, help="customers in the audience entry figure"
    )
    parser.add_argument(
        "--pace-audience", type=int, default=100_000, help="pace: customers in the audience"
    )
    parser.add_argument("--journey", help="versus: only the journeys whose name contains this")
    parser.add_argument(
        "--customers", type=int, default=100_000, help="backtest: customers simulated"
    )
    args = parser.parse_args()
    rows: list[Row] = []
    if args.suite in ("journeys", "all"):
        rows += asyncio.run(measure(args.n, args.concurrency))
    if args.suite in ("reservations", "all"):
        console.print("reservations vs bare inserts ...")
        rows += asyncio.run(reservations.measure(max(args.n, 1000), 50))
    if args.suite in ("services", "all"):
        rows += asyncio.run(services.measure(args.n, 10, console))
    if args.suite in ("ingestion", "all"):
        rows += asyncio.run(ingestion.measure(max(args.n, 2000), 4, args.audience, console))
    if args.suite in ("operations", "all"):
        rows += asyncio.run(operations.measure(args.n, args.concurrency, console))
    if args.suite in ("versus", "all"):
        rows += asyncio.run(versus.measure(args.n, args.concurrency, console, args.journey))
    if args.suite == "parked":  # (long: not part of "all")
        rows += asyncio.run(parked.measure(args.audience, console))
    if args.suite in ("backtest", "all"):
        rows += asyncio.run(backtest.measure(args.customers, args.n, console))
    if args.suite in ("tracking", "all"):
        rows += asyncio.run(tracking.measure(max(args.n, 2000), args.concurrency, console))
    if args.suite in ("bandit", "all"):
        rows += asyncio.run(bandit.measure(args.n, args.concurrency, console))
    if args.suite == "pace":  # (long: not part of "all")
        rows += asyncio.run(pace.measure(args.pace_audience, console))
    if args.suite in ("sizing", "all"):
        asyncio.run(sizing.measure(args.n, args.concurrency, console))
    if rows:
        report(rows, args.markdown)


if __name__ == "__main__":
    main()
