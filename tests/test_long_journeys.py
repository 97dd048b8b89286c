"""Journeys longer than one history run to their end: a 1,000-step journey with long step
ids (its list of steps reached outgrew Temporal's 2 KB search-attribute limit, and the run
was terminated at step 37) and a wait looped through 10,000 times (300 in CI), across
continue-as-new.

Their clocks run sped up by the journey's `time_scale` (each one-minute wait is a 1 ms
timer): the dev server's per-workflow time skipping moves one timer a second, too slow for
10,000 of them."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from journeys.schemas.enrollment import enrollment_workflow_id
from journeys.schemas.journey import (
    BranchCase,
    BranchStep,
    Entry,
    ExitStep,
    JourneySpec,
    WaitForEventStep,
    WaitStep,
)
from journeys.schemas.predicates import Comparison
from journeys.workflows import search_attributes as sa
from tests.conftest import eventually, unique
from tests.helpers import ended, event, publish_copy

# Storage plays no part here: the SQLite stack alone.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("settings", ["sqlite"], indirect=True),
]
STEPS = 1000
LOOPS = int(os.environ.get("JOURNEYS_TEST_LOOPS", "300"))
"""10,000 ran in 579 s here (~58 ms a loop, mostly the dev server's task dispatch):
CI runs 300 (about 30 continue-as-new runs); `JOURNEYS_TEST_LOOPS=10000` runs the full count."""
FAST = 60_000  # a minute of the journey's time is a millisecond


async def start(api: httpx.AsyncClient, spec: JourneySpec) -> tuple[str, str]:
    """(journey id, customer id): a copy of `spec` published and one customer entered."""
    journey = await publish_copy(api, spec)
    customer_id = unique("long")
    await event(api, customer_id, journey.entry)
    return journey.id, customer_id


async def test_a_thousand_steps_with_long_ids_run_to_the_end(
    api: httpx.AsyncClient, client: Client
) -> None:
    ids = [f"step-{i:04d}-" + "x" * 42 for i in range(STEPS - 1)]  # 52 characters each
    never = Comparison(field="context.never", op="exists")
    steps: list[Any] = [
        # Every 20th step waits (a workflow task of its own); the rest branch at once.
        WaitStep(id=i, duration=timedelta(minutes=1), next=n)
        if k % 20 == 19
        else BranchStep(id=i, cases=[BranchCase(when=never, next="end")], default=n)
        for k, (i, n) in enumerate(zip(ids, [*ids[1:], "end"], strict=True))
    ]
    spec = JourneySpec(
        id="long",
        name="A thousand steps",
        entry=Entry(event="long.start"),
        time_scale=FAST,
        steps=[*steps, ExitStep(id="end")],
    )
    journey_id, cid = await start(api, spec)
    final = await ended(api, journey_id, cid, timeout=600)
    assert final["status"] == "completed" and final["steps_taken"] == STEPS

    handle = client.get_workflow_handle(enrollment_workflow_id(journey_id, cid))
    listed = (await handle.describe()).typed_search_attributes.get(sa.JOURNEY_REACHED) or []
    assert listed[-1] == sa.MORE and listed[:3] == ids[:3]
    assert sa.reached(list(listed), ["more"]) is None  # full, and within Temporal's limit

    async def funnel() -> dict[str, Any]:
        return (await api.get(f"/v1/journeys/{journey_id}/funnel")).json()

    counts = await eventually(funnel, lambda f: f["completed"] == 1)
    assert counts["unlisted"] == 1
    reached = [s["reached"] for s in counts["steps"]]
    assert reached[: len(listed) - 1] == [1] * (len(listed) - 1)  # listed: counted
    assert reached[len(listed) - 1 : -1] == [0] * (STEPS - len(listed))  # after: unlisted


async def test_a_wait_looped_ten_thousand_times_ends_on_its_event(
    api: httpx.AsyncClient, client: Client
) -> None:
    spec = JourneySpec(
        id="loop",
        name="A wait looped through",
        entry=Entry(event="loop.start"),
        time_scale=FAST,
        steps=[
            WaitForEventStep(
                id="listen",
                event="done",
                timeout=timedelta(minutes=1),
                on_event="end",
                on_timeout="listen",
            ),
            ExitStep(id="end"),
        ],
    )
    journey_id, cid = await start(api, spec)
    handle = client.get_workflow_handle(enrollment_workflow_id(journey_id, cid))
    first = (await handle.describe()).run_id

    async def steps_taken() -> int:
        return int((await handle.query("state"))["steps_taken"])

    await eventually(steps_taken, lambda n: n > LOOPS, timeout=1800, interval=1.0)
    await event(api, cid, "done")
    final = await ended(api, journey_id, cid)
    assert final["status"] == "completed" and final["steps_taken"] > LOOPS + 1
    assert [(p["step"], p["outcome"]) for p in final["path"][-2:]] == [
        ("listen", "event done"),
        ("end", "exit"),
    ]
    runs = [r async for r in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) > LOOPS // 10 and runs[0].run_id != first
    assert sum(r.status == WorkflowExecutionStatus.CONTINUED_AS_NEW for r in runs) == len(runs) - 1
