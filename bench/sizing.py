"""`./dev bench --suite sizing`: what one enrollment costs, the figures deploy/README.md
sizes a deployment from. Each journey runs to its end in a deployment as in production
(the API and the worker each in a process of their own, guardrails at their defaults but
quiet hours, which would hold sends for hours), with its days shortened (`time_scale`):

- worker and API CPU milliseconds per enrollment (from /proc, over the whole run; the
  API's is a profile PUT and the entry event);
- history events and history bytes per enrollment (every run, continue-as-new included);
- billable actions per enrollment, counted from the histories by Temporal Cloud's rules:
  a start (signal-with-start once), timers, search-attribute upserts (TemporalChangeVersion
  alone exempt), signals, updates, activity attempts, local activities once per workflow
  task, child starts, external signals.

A one-send journey is measured beside it in the same run: the smallest enrollment there
is, what every enrollment pays at least.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.operations import ONE_SEND, Side, publish, side
from bench.stack import bench_stack, bounded, cpu_seconds, product_guardrails, tag
from journeys.examples.onboarding_nudge import JOURNEY as ONBOARDING
from journeys.schemas.journey import JourneySpec

DAY = 86_400.0


@dataclass
class Cost:
    enrollments: int
    seconds: float
    worker_cpu_ms: float
    api_cpu_ms: float
    events: float
    history_bytes: float
    actions: float


def actions(events: list[HistoryEvent]) -> int:
    """Billable actions in one run's history (Temporal Cloud's "Actions" page)."""
    counted = 0
    local_tasks: set[int] = set()
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            counted += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            # the signal of a signal-with-start is part of its one action
            counted += 0 if event.event_id == 2 else 1
        elif kind in (
            EventType.EVENT_TYPE_TIMER_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        ):
            counted += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes
            names = set(fields.search_attributes.indexed_fields)
            counted += 0 if names <= {"TemporalChangeVersion"} else 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            counted += event.activity_task_started_event_attributes.attempt
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            attributes = event.marker_recorded_event_attributes
            if attributes.marker_name == "core_local_activity":
                local_tasks.add(attributes.workflow_task_completed_event_id)
    return counted + len(local_tasks)


async def histories(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    """Every run of the enrollment, the first one first."""
    runs: list[list[HistoryEvent]] = []
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        history = await client.get_workflow_handle(
            workflow_id, run_id=execution.run_id
        ).fetch_history()
        runs.append(list(history.events))
    return runs


async def cost(s: Side, spec: JourneySpec, n: int, c: int) -> Cost:
    journey, entry = await publish(s.api, spec)
    run = tag()
    cpu = [cpu_seconds(pid) for pid in s.pids]
    started = time.monotonic()

    async def one(i: int) -> None:
        cid = f"size-{run}-{i}"
        put = await s.api.put(f"/v1/customers/{cid}", json={"email": f"{cid}@example.com"})
        assert put.status_code == 200, put.text
        sent = await s.api.post("/v1/events", json={"customer_id": cid, "name": entry})
        assert sent.status_code == 202, sent.text
        await s.client.get_workflow_handle(f"journey/{journey}/{cid}").result()

    await bounded(n, c, one)
    seconds = time.monotonic() - started
    api_cpu, worker_cpu = (
        cpu_seconds(pid) - before for pid, before in zip(s.pids, cpu, strict=True)
    )
    runs: list[list[HistoryEvent]] = []
    sample = range(0, n, max(1, n // 20))  # 20 enrollments' histories
    for i in sample:
        runs += await histories(s.client, f"journey/{journey}/size-{run}-{i}")
    sampled = len(sample)
    return Cost(
        enrollments=n,
        seconds=seconds,
        worker_cpu_ms=1000 * worker_cpu / n,
        api_cpu_ms=1000 * api_cpu / n,
        events=sum(len(r) for r in runs) / sampled,
        history_bytes=sum(e.ByteSize() for r in runs for e in r) / sampled,
        actions=sum(actions(r) for r in runs) / sampled,
    )


async def measure(n: int, c: int, console: Console) -> dict[str, Cost]:
    scenario = ONBOARDING.model_copy(update={"time_scale": DAY})  # a day lasts a second
    guardrails = product_guardrails()
    async with bench_stack(worker=False, examples=True, **guardrails) as (stack, _, _pid):
        with tempfile.TemporaryDirectory() as scratch:
            async with side(stack.settings, "sizing", False, Path(scratch)) as s:
                costs = {}
                for name, spec in (
                    ("scenario 1 (onboarding nudge)", scenario),
                    ("one send", ONE_SEND),
                ):
                    console.print(f"{name}: {n} enrollments to their end, {c} at once ...")
                    costs[name] = await cost(s, spec, n, c)
    table = Table(title="What one enrollment costs (sizing: deploy/README.md)")
    for column in (
        "journey",
        "worker CPU ms",
        "API CPU ms",
        "history events",
        "history KB",
        "actions",
    ):
        table.add_column(column, justify="right")
    for name, k in costs.items():
        table.add_row(
            name,
            f"{k.worker_cpu_ms:.1f}",
            f"{k.api_cpu_ms:.1f}",
            f"{k.events:.1f}",
            f"{k.history_bytes / 1024:.1f}",
            f"{k.actions:.1f}",
        )
    console.print(table)
    return costs
