"""Migrating enrollments to a newer journey version by step-id mapping: the dry run says
what would happen and changes nothing; the real run moves the enrollment, which goes on
in the new version; refusals say why. One customer at a time, in bulk, and by the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from journeys.schemas.enrollment import enrollment_workflow_id
from journeys.schemas.journey import (
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitStep,
)
from journeys.stack.embedded import Stack
from tests.conftest import eventually, unique
from tests.helpers import customer, ended, event, journeys_ok, keep_history, state


def version(journey_id: str, entry: str, wait: str, days: int, body: str) -> JourneySpec:
    return JourneySpec(
        id=journey_id,
        name="migrations",
        entry=Entry(event=entry),
        steps=[
            WaitStep(id=wait, duration=timedelta(days=days), next="send"),
            SendStep(id="send", channel="in_app", content=MessageContent(body=body), next="end"),
            ExitStep(id="end"),
        ],
        time_scale=3600,  # a day is 24 s: v1's 30 days outlast the test, v2's hour is 1 s
    )


async def publish(api: httpx.AsyncClient, spec: JourneySpec) -> int:
    response = await api.post("/v1/journeys", json=spec.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    return int(response.json()["version"])


async def migrate(
    api: httpx.AsyncClient, url: str, status: int = 200, **body: Any
) -> dict[str, Any]:
    response = await api.post(url, json={"reason": "test", **body})
    assert response.status_code == status, response.text
    return response.json()


async def inbox(api: httpx.AsyncClient, cid: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]


async def setup(api: httpx.AsyncClient, customers: int) -> tuple[str, list[str]]:
    """v1 (wait 30 days, then send) with `customers` waiting in it, then v2 (its wait
    renamed `short-wait` and cut to 1/24 day)."""
    journey_id, entry = unique("migrate"), unique("go")
    assert await publish(api, version(journey_id, entry, "wait", 30, "v1 message")) == 1
    cids = [await customer(api) for _ in range(customers)]
    for cid in cids:
        await event(api, cid, entry)
    for cid in cids:
        await eventually(lambda c=cid: state(api, journey_id, c), lambda s: s["step"] == "wait")
    v2 = version(journey_id, entry, "short-wait", 1, "v2 message")
    v2.steps[0] = WaitStep(id="short-wait", duration=timedelta(hours=1), next="send")
    assert await publish(api, v2) == 2
    return journey_id, cids


async def test_dry_run_then_migrate_one_enrollment(api: httpx.AsyncClient, stack: Stack) -> None:
    journey_id, [cid] = await setup(api, 1)
    url = f"/v1/journeys/{journey_id}/enrollments/{cid}/migrate"
    workflow_id = enrollment_workflow_id(journey_id, cid)
    first_run = (await stack.client.get_workflow_handle(workflow_id).describe()).run_id

    unmapped = await migrate(api, url, 409, dry_run=True)
    why = unmapped["errors"][0]["msg"]
    assert "step 'wait' has no counterpart in v2: map it to one of short-wait, send, end" in why

    plan = await migrate(api, url, dry_run=True, mapping={"wait": "short-wait"})
    assert (plan["from_version"], plan["from_step"]) == (1, "wait")
    assert (plan["to_version"], plan["to_step"]) == (2, "short-wait")
    assert (
        plan["effect"]
        == "the wait at 'wait' ends now; the enrollment enters 'short-wait' of v2 anew"
    )
    unchanged = await state(api, journey_id, cid)
    assert (unchanged["version"], unchanged["step"]) == (1, "wait")

    assert await migrate(api, url, mapping={"wait": "short-wait"}) == plan
    moved = await state(api, journey_id, cid)
    assert (moved["version"], moved["status"]) == (2, "active")
    assert moved["step"] in ("short-wait", "send", None)
    final = await ended(api, journey_id, cid)
    assert final["status"] == "completed" and final["version"] == 2
    assert await inbox(api, cid) == ["v2 message"]
    outcomes = [(p["step"], p["outcome"]) for p in final["path"]]
    assert outcomes[0] == ("wait", "migrated to v2 by an operator: test")
    assert [s for s, _ in outcomes[-3:]] == ["short-wait", "send", "end"]
    # The run that took the migration, for the replay tests.
    await keep_history(stack.client.get_workflow_handle(workflow_id, run_id=first_run), "migrated")

    again = await migrate(api, url, 409, mapping={"wait": "short-wait"})
    assert "enrollment already completed" in again["errors"][0]["msg"]
    missing = await migrate(api, url, 404, to_version=9)
    assert "no such journey version" in missing["errors"][0]["msg"]


async def test_bulk_migration_with_a_dry_run_and_the_cli(api: httpx.AsyncClient) -> None:
    journey_id, cids = await setup(api, 3)
    url = f"/v1/journeys/{journey_id}/migrate"
    dry = await migrate(api, url, dry_run=True, mapping={"wait": "short-wait"})
    assert dry == {
        "to_version": 2,
        "dry_run": True,
        "matched": 3,
        "moved": {"v1 wait -> v2 short-wait": 3},
        "refused": {},
    }
    for cid in cids:
        assert (await state(api, journey_id, cid))["version"] == 1

    base = ("--api-url", str(api.base_url).rstrip("/"))
    out = await journeys_ok("migrate", journey_id, cids[0], "--map", "wait=short-wait", *base)
    assert f"{cids[0]} moved: v1 wait -> v2 short-wait" in out
    out = await journeys_ok(
        "migrate", journey_id, "--step", "wait", "--map", "wait=short-wait", *base
    )
    assert "2 of 2 enrollments moved to v2" in out and "2: v1 wait -> v2 short-wait" in out
    for cid in cids:
        assert (await ended(api, journey_id, cid))["version"] == 2
        assert await inbox(api, cid) == ["v2 message"]
    # Nothing is left on an older version.
    assert (await migrate(api, url, mapping={"wait": "short-wait"}))["matched"] == 0
