"""Operator controls end to end through the API: pause, resume, skip the current wait and
exit, each a validated workflow update, one at a time and in bulk by journey and step."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client

from journeys.schemas.journey import (
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForEventStep,
    WaitStep,
)
from tests.conftest import eventually, unique
from tests.helpers import customer, ended, event, journeys_ok, state


def inbox_send(step_id: str, body: str) -> SendStep:
    return SendStep(id=step_id, channel="in_app", content=MessageContent(body=body), next="end")


async def publish(api: httpx.AsyncClient, *steps: Any, **changes: Any) -> tuple[str, str]:
    spec = JourneySpec(
        id=unique("controls"),
        name="controls",
        entry=Entry(event=unique("go")),
        steps=[*steps, ExitStep(id="end")],
        **changes,
    )
    response = await api.post("/v1/journeys", json=spec.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    return spec.id, str(spec.entry.event)


async def inbox(api: httpx.AsyncClient, cid: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]


async def control(
    api: httpx.AsyncClient, journey_id: str, cid: str, action: str, status: int = 200
) -> dict[str, Any]:
    url = f"/v1/journeys/{journey_id}/enrollments/{cid}/{action}"
    response = await api.post(url, json={"reason": "test"})
    assert response.status_code == status, response.text
    return response.json()


async def test_pause_holds_the_next_step_until_resume(api: httpx.AsyncClient) -> None:
    journey_id, entry = await publish(
        api,
        WaitStep(id="wait", duration=timedelta(hours=2), next="send"),  # two seconds
        inbox_send("send", "after the wait"),
        time_scale=3600,
    )
    cid = await customer(api)
    await event(api, cid, entry)
    paused = await control(api, journey_id, cid, "pause")
    assert paused["paused"] is True and paused["step"] == "wait"
    refused = await control(api, journey_id, cid, "pause", status=409)
    assert "already paused" in refused["errors"][0]["msg"]

    await asyncio.sleep(3)  # the wait ran out while paused: the send holds
    held = await state(api, journey_id, cid)
    assert (held["status"], held["paused"], held["step"]) == ("active", True, "send")
    assert [p["step"] for p in held["path"]] == ["wait"]
    assert await inbox(api, cid) == []

    resumed = await control(api, journey_id, cid, "resume")
    assert resumed["paused"] is False
    assert (await ended(api, journey_id, cid))["status"] == "completed"
    assert await inbox(api, cid) == ["after the wait"]
    refused = await control(api, journey_id, cid, "resume", status=409)
    assert "already completed" in refused["errors"][0]["msg"]


async def test_skip_ends_the_wait_by_its_timeout_edge(api: httpx.AsyncClient) -> None:
    journey_id, entry = await publish(
        api,
        WaitForEventStep(
            id="wait", event="never", timeout=timedelta(days=7), on_event="end", on_timeout="late"
        ),
        inbox_send("late", "no answer in a week"),
    )
    cid = await customer(api)
    await event(api, cid, entry)
    await eventually(lambda: state(api, journey_id, cid), lambda s: s["waiting"] is not None)
    await control(api, journey_id, cid, "skip")
    final = await ended(api, journey_id, cid)
    assert [(p["step"], p["outcome"]) for p in final["path"]][:2] == [
        ("wait", "skipped by an operator: test"),
        ("late", "sent"),
    ]
    assert await inbox(api, cid) == ["no answer in a week"]


async def test_skip_is_refused_between_steps_and_exit_ends_a_paused_run(
    api: httpx.AsyncClient,
) -> None:
    journey_id, entry = await publish(
        api,
        WaitStep(id="wait", duration=timedelta(hours=1), next="send"),  # one second
        inbox_send("send", "never sent"),
        time_scale=3600,
    )
    cid = await customer(api)
    await event(api, cid, entry)
    await control(api, journey_id, cid, "pause")
    await eventually(lambda: state(api, journey_id, cid), lambda s: s["waiting"] is None)
    refused = await control(api, journey_id, cid, "skip", status=409)
    assert "not at a wait step" in refused["errors"][0]["msg"]
    exited = await control(api, journey_id, cid, "exit")
    assert exited["status"] == "exited"
    assert await inbox(api, cid) == []
    missing = await api.post(f"/v1/journeys/{journey_id}/enrollments/nobody/pause")
    assert missing.status_code == 404


async def test_bulk_controls_by_journey_and_step(api: httpx.AsyncClient, client: Client) -> None:
    journey_id, entry = await publish(
        api,
        WaitForEventStep(
            id="wait", event="never", timeout=timedelta(days=7), on_event="end", on_timeout="late"
        ),
        inbox_send("late", "moved on"),
    )
    customers = [await customer(api) for _ in range(3)]
    for cid in customers:
        await event(api, cid, entry)
    query = f'JourneyId = "{journey_id}" AND JourneyStep = "wait"'
    await eventually(lambda: client.count_workflows(query), lambda c: c.count == 3)

    url = f"/v1/journeys/{journey_id}/controls"
    nobody = await api.post(f"{url}/resume", json={"step": "wait"})
    assert nobody.json() == {"matched": 3, "done": 0, "refused": {"enrollment is not paused": 3}}
    skipped = await api.post(f"{url}/skip", json={"step": "wait", "reason": "campaign over"})
    assert skipped.json() == {"matched": 3, "done": 3, "refused": {}}
    for cid in customers:
        assert (await ended(api, journey_id, cid))["status"] == "completed"
        assert await inbox(api, cid) == ["moved on"]


async def test_cli_controls_one_and_all(api: httpx.AsyncClient, client: Client) -> None:
    journey_id, entry = await publish(
        api,
        WaitForEventStep(
            id="wait", event="never", timeout=timedelta(days=7), on_event="end", on_timeout="end"
        ),
    )
    customers = [await customer(api) for _ in range(2)]
    for cid in customers:
        await event(api, cid, entry)
    await eventually(
        lambda: client.count_workflows(f'JourneyId = "{journey_id}"'), lambda c: c.count == 2
    )

    base = ("--api-url", str(api.base_url).rstrip("/"))

    async def journeys(*args: str) -> str:
        return await journeys_ok(*args, *base)

    assert "pause: 2 of 2 enrollments" in await journeys("control", "pause", journey_id)
    out = await journeys("control", "resume", journey_id, customers[0])
    assert f"{customers[0]}: active at wait" in out
    out = await journeys("control", "resume", journey_id, "--step", "wait")
    assert "resume: 1 of 2" in out and "refused by 1: enrollment is not paused" in out


async def test_the_path_says_what_ended_a_wait(api: httpx.AsyncClient) -> None:
    """Issue 14, item 8: a goal, an exit event or an operator's exit ends a wait; the path
    says which (not "timeout"), and an exit without a reason reads "operator"."""
    wait = WaitForEventStep(
        id="wait", event="never", timeout=timedelta(days=30), on_event="end", on_timeout="end"
    )
    goal, leave = unique("bought"), unique("left")
    journey_id, entry = await publish(
        api,
        wait,
        goal={"event": goal},
        exit_when=[{"event": leave}],
    )
    by_goal, by_exit, by_operator = [await customer(api) for _ in range(3)]
    for cid in (by_goal, by_exit, by_operator):
        await event(api, cid, entry)
    await event(api, by_goal, goal)
    await event(api, by_exit, leave)
    url = f"/v1/journeys/{journey_id}/enrollments/{by_operator}/exit"
    assert (await api.post(url)).status_code == 200
    outcomes = {}
    for cid in (by_goal, by_exit, by_operator):
        final = await ended(api, journey_id, cid)
        outcomes[cid] = (final["path"][0]["outcome"], final["ended_reason"])
    assert outcomes[by_goal] == (f"converted: goal {goal}", f"goal {goal}")
    assert outcomes[by_exit] == (f"exited: exit event {leave}", f"exit event {leave}")
    assert outcomes[by_operator] == ("exited: operator", "operator")
