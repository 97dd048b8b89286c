"""What a bandit assignment costs (issue 31): one journey whose first step is a split and
whose arms each send one in-app message, run with a fixed split and with a bandit split,
side by side on one stack in the same run (rounds alternate). Per enrollment: billable
actions (Temporal Cloud's rules, from the histories) and event-to-first-send latency, p50
and p99. The bandit asks one activity for its weights (the arms' visibility counts, read
at most once a minute per worker; the default `bandit_refresh_seconds`).
Target: at most one extra action, and at most 1.2x the fixed split's p99."""

from __future__ import annotations

import statistics
import time

from rich.console import Console

from bench.sizing import actions, histories
from bench.stack import Row, alternate, bench_stack, pct, tag
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import (
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    SplitPath,
    SplitStep,
)
from journeys.stack.embedded import Stack
from journeys.usecases.routing import EventRouter


def journey(mode: str) -> JourneySpec:
    t = tag()
    return JourneySpec(
        id=f"bench-{mode}-{t}",
        name=f"Bench: {mode} split",
        entry=Entry(event=f"bench.{mode}.{t}"),
        goal=EventCondition(event="bench.bought"),
        steps=[
            SplitStep(
                id="split",
                mode=mode,  # type: ignore[arg-type]
                paths=[SplitPath(name=arm, weight=1, next=arm) for arm in ("a", "b")],
            ),
            SendStep(id="a", channel="in_app", content=MessageContent(body="A"), next="end"),
            SendStep(id="b", channel="in_app", content=MessageContent(body="B"), next="end"),
            ExitStep(id="end"),
        ],
    )  # fmt: skip


async def measure(n: int, concurrency: int, console: Console) -> list[Row]:
    async with bench_stack() as (stack, _, _):
        return await _measure(stack, n, concurrency, console)


async def _measure(stack: Stack, n: int, concurrency: int, console: Console) -> list[Row]:
    router = EventRouter(stack.client, stack.stores.journeys, task_queue=stack.settings.task_queue)
    specs = {mode: journey(mode) for mode in ("fixed", "bandit")}
    for spec in specs.values():
        await stack.stores.journeys.publish(spec)
    router.invalidate()
    latencies: dict[str, list[float]] = {mode: [] for mode in specs}
    ids: dict[str, list[str]] = {mode: [] for mode in specs}

    def side(mode: str):  # type: ignore[no-untyped-def]
        spec = specs[mode]

        async def one(i: int) -> None:
            cid = f"{mode}-{i}"
            started = time.perf_counter()
            await router.route(CustomerEvent.create(cid, spec.entry.event or ""))
            handle = stack.client.get_workflow_handle(f"journey/{spec.id}/{cid}")
            await handle.result()
            latencies[mode].append((time.perf_counter() - started) * 1000)
            ids[mode].append(handle.id)

        return one

    console.print(f"bandit: {n} enrollments per side, {concurrency} in flight ...")
    await alternate(n, concurrency, {mode: side(mode) for mode in specs})
    per: dict[str, float] = {}
    for mode, workflow_ids in ids.items():
        sample = workflow_ids[:: max(1, len(workflow_ids) // 50)]
        counted = [sum(actions(run) for run in await histories(stack.client, w)) for w in sample]
        per[mode] = statistics.mean(counted)
    fixed, bandit = latencies["fixed"], latencies["bandit"]
    p50 = statistics.median(bandit), statistics.median(fixed)
    return [
        ("bandit split: actions per enrollment", per["bandit"], per["fixed"], "<= fixed + 1"),
        ("bandit split: event-to-send p50 (ms)", *p50, "-"),
        ("bandit split: event-to-send p99 (ms)", pct(bandit, 0.99), pct(fixed, 0.99), "<= 1.2x"),
    ]
