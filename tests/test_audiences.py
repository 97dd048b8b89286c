"""Audience entry: scenario 4 (direct-debit prompt) enrolled from a profile predicate,
uploaded lists, progress, idempotent re-runs, cancelling, and scheduled entry."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError

from journeys.examples import direct_debit
from journeys.schemas.journey import Audience, Entry, ExitStep, JourneySpec, Schedule, WaitStep
from journeys.schemas.predicates import AllOf, Comparison
from journeys.stack.embedded import Stack, spawn
from journeys.usecases.audience_runs import schedule_id, start_run
from tests.conftest import eventually, unique
from tests.helpers import customer, ended, event, journeys_ok, one_send, state

pytestmark = pytest.mark.both_databases


async def inbox(api: httpx.AsyncClient, cid: str) -> list[str]:
    return [m["title"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]


async def publish(api: httpx.AsyncClient, spec: Any) -> str:
    response = await api.post("/v1/journeys", json=spec.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    return str(spec.id)


async def run(api: httpx.AsyncClient, journey_id: str, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/v1/journeys/{journey_id}/audience-runs", json=body)
    assert response.status_code == 202, response.text
    return response.json()


async def finished(api: httpx.AsyncClient, journey_id: str, name: str) -> dict[str, Any]:
    async def progress() -> dict[str, Any]:
        response = await api.get(f"/v1/journeys/{journey_id}/audience-runs/{name}")
        assert response.status_code == 200, response.text
        return response.json()["progress"]

    return await eventually(
        progress, lambda p: p["status"] in ("completed", "cancelled"), timeout=60
    )


async def test_direct_debit_prompt_enrols_card_holders_without_a_direct_debit(
    api: httpx.AsyncClient,
) -> None:
    bank = unique("bank")  # keeps this test's customers apart from every other test's
    audience = direct_debit.AUDIENCE.model_copy(
        update={
            "where": AllOf(
                all=[
                    direct_debit.AUDIENCE.where,  # type: ignore[list-item]
                    Comparison(field="profile.attributes.bank", op="eq", value=bank),
                ]
            ),
            "rate_per_second": 40,
        }
    )
    spec = direct_debit.JOURNEY.model_copy(
        update={"id": unique("direct-debit"), "entry": Entry(audience=audience)}
    )
    journey_id = await publish(api, spec)

    async def profile(products: list[str], direct_debit: bool) -> str:
        attributes = {"bank": bank, "products": products, "direct_debit": direct_debit}
        return await customer(api, attributes=attributes)

    prompted = [await profile(["credit_card", "savings"], False) for _ in range(24)]
    has_debit = [await profile(["credit_card"], True) for _ in range(3)]
    no_card = [await profile(["savings"], False) for _ in range(3)]

    started = await run(api, journey_id)
    assert started["run"] == "v1"
    progress = await finished(api, journey_id, "v1")
    assert (progress["status"], progress["total"], progress["done"]) == ("completed", 24, 24)
    assert progress["entered"] == 24 and progress["rate_per_second"] > 0
    assert progress["eta_seconds"] == 0

    for cid in prompted:
        await eventually(lambda c=cid: inbox(api, c), lambda t: t == ["Never miss a card payment"])
    for cid in has_debit + no_card:
        assert await inbox(api, cid) == []
        assert (await api.get(f"/v1/journeys/{journey_id}/enrollments/{cid}")).status_code == 404

    await event(api, prompted[0], "direct_debit.set_up")
    assert (await ended(api, journey_id, prompted[0]))["status"] == "converted"
    assert (await state(api, journey_id, prompted[1]))["step"] == "wait"

    # Starting the run again returns the same run; a new run enrols nobody twice.
    assert (await run(api, journey_id))["progress"]["entered"] == 24
    await run(api, journey_id, run="again")
    again = await finished(api, journey_id, "again")
    assert (again["done"], again["entered"], again["already"]) == (24, 0, 24)
    assert await inbox(api, prompted[1]) == ["Never miss a card payment"]


async def test_uploaded_list_run_can_be_cancelled(api: httpx.AsyncClient) -> None:
    list_id = unique("list")
    members = [unique("member") for _ in range(400)]
    added = await api.post(f"/v1/audiences/{list_id}/members", json={"customer_ids": members})
    assert added.json() == {"id": list_id, "size": 400}
    again = await api.post(f"/v1/audiences/{list_id}/members", json={"customer_ids": members[:5]})
    assert again.json()["size"] == 400

    spec = one_send(unique("listed"), body="hello").model_copy(
        update={"entry": Entry(audience=Audience(list=list_id, rate_per_second=25))}
    )
    journey_id = await publish(api, spec)
    await run(api, journey_id, run="slow")

    async def progress() -> dict[str, Any]:
        return (await api.get(f"/v1/journeys/{journey_id}/audience-runs/slow")).json()["progress"]

    await eventually(progress, lambda p: p["done"] >= 1, timeout=60)
    cancelled = await api.post(f"/v1/journeys/{journey_id}/audience-runs/slow/cancel")
    assert cancelled.status_code == 200, cancelled.text
    final = cancelled.json()["progress"]
    assert final["status"] == "cancelled" and 0 < final["done"] < 400
    assert final["total"] == 400
    refused = await api.post(f"/v1/journeys/{journey_id}/audience-runs/slow/cancel")
    assert refused.status_code == 409


async def test_scheduled_audience_entry_runs_on_a_temporal_schedule(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    list_id = unique("list")
    members = [unique("member") for _ in range(3)]
    await api.post(f"/v1/audiences/{list_id}/members", json={"customer_ids": members})
    entry = Entry(audience=Audience(list=list_id), schedule=Schedule(every=timedelta(seconds=2)))
    spec = one_send(unique("scheduled"), body="on schedule").model_copy(update={"entry": entry})
    spec = spec.model_copy(update={"reentry": "after_exit"})
    journey_id = await publish(api, spec)
    handle = stack.client.get_schedule_handle(schedule_id(journey_id))
    described = await handle.describe()
    assert described.schedule.spec.intervals[0].every == timedelta(seconds=2)

    for cid in members:
        await eventually(
            lambda c=cid: api.get(f"/v1/customers/{c}/inbox"),
            lambda r: len(r.json()["items"]) >= 1,
            timeout=60,
        )

    unscheduled = spec.model_copy(update={"entry": Entry(audience=Audience(list=list_id))})
    await publish(api, unscheduled)
    try:
        await handle.describe()
        raise AssertionError("the schedule should be gone")
    except RPCError:
        pass
    await asyncio.sleep(0)


async def test_audience_predicates_must_select_profiles(api: httpx.AsyncClient) -> None:
    spec = one_send(unique("bad-audience")).model_dump(mode="json")
    spec["entry"] = {"audience": {"where": {"field": "event.total", "op": "gt", "value": 1}}}
    response = await api.post("/v1/journeys", json=spec)
    assert response.status_code == 422
    [problem] = response.json()["errors"]
    assert problem["loc"] == ["body", "entry", "audience", "where"]
    assert "profile." in problem["msg"]
    both = one_send(unique("both")).model_dump(mode="json")
    both["entry"]["audience"] = {"list": "x"}
    assert (await api.post("/v1/journeys", json=both)).status_code == 422


async def test_cli_uploads_a_list_and_follows_the_run(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    list_id = unique("list")
    members = [unique("member") for _ in range(30)]
    source = tmp_path / "ids.csv"
    source.write_text("customer_id,name\n" + "".join(f"{m},x\n" for m in members))
    spec = one_send(unique("cli"), body="hi").model_copy(
        update={"entry": Entry(audience=Audience(list=list_id, rate_per_second=50))}
    )
    journey_id = await publish(api, spec)
    base = ["--api-url", str(api.base_url).rstrip("/")]

    assert "list " + list_id + ": 30 customers" in await journeys_ok(
        "audience-upload", list_id, str(source), *base
    )
    out = await journeys_ok("audience", journey_id, *base)
    assert "completed: 30 handled, 30 entered, 0 already enrolled" in out
    assert "30/30" in out
    # The same for scripts: one JSON answer each, no bar.
    again = json.loads(await journeys_ok("audience-upload", list_id, str(source), "--json", *base))
    assert (again["size"], again["uploaded"], again["skipped"]) == (30, 30, [])
    rerun = json.loads(await journeys_ok("audience", journey_id, "--json", *base))
    assert (rerun["status"], rerun["done"], rerun["already"]) == ("completed", 30, 0)


@pytest.mark.slow
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)  # (a worker's crash)
async def test_a_run_resumes_after_its_worker_is_killed_and_enrols_each_customer_once(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    list_id = unique("list")
    members = [unique("member") for _ in range(150)]
    await api.post(f"/v1/audiences/{list_id}/members", json={"customer_ids": members})
    # Enrollments that only wait keep the worker's queue short under a loaded CI machine.
    spec = JourneySpec(
        id=unique("resumed"),
        name="resumed",
        entry=Entry(audience=Audience(list=list_id, rate_per_second=30)),
        steps=[WaitStep(id="wait", duration=timedelta(days=1), next="end"), ExitStep(id="end")],
    )
    await publish(api, spec)
    queue = unique("audience-crash")
    # Its own process: no tracing, no metrics port (the test process holds it).
    settings = stack.settings.model_copy(
        update={"task_queue": queue, "tracing": False, "metrics_address": None}
    )
    process = spawn(settings)
    try:
        handle = await start_run(stack.client, spec, 1, "crash", None, queue)
        await eventually(
            lambda: api.get(f"/v1/journeys/{spec.id}/audience-runs/crash"),
            lambda r: r.json()["progress"]["done"] >= 40,
            timeout=60,
        )
        process.kill()
        process.wait(10)
        process = spawn(settings)
        final = await asyncio.wait_for(handle.result(), 300)
    finally:
        process.terminate()
        process.wait(20)

    assert final.status == "completed" and final.done == final.total == 150
    assert final.entered + final.already == 150
    runs = await eventually(
        lambda: stack.client.count_workflows(f'JourneyId = "{spec.id}"'),
        lambda counted: counted.count >= 150,
    )
    assert runs.count == 150  # one enrollment per customer, none started twice


async def test_a_bad_schedule_publishes_nothing_and_names_the_field(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Issue 14, item 7: a cron Temporal refuses, or an unknown time zone, is a 422 naming
    the schedule, and neither a version nor a Schedule is left behind."""
    list_id = unique("list")
    base = one_send(unique("bad-schedule")).model_dump(mode="json")
    for schedule, where in (
        ({"cron": "61 25 * * *"}, ["body", "entry", "schedule"]),
        ({"cron": "0 9 * * MON", "timezone": "Mars/Olympus"}, ["body", "entry", "schedule"]),
    ):
        body = {**base, "entry": {"audience": {"list": list_id}, "schedule": schedule}}
        refused = await api.post("/v1/journeys", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["loc"][:3] == where
        assert (await api.get(f"/v1/journeys/{base['id']}")).status_code == 404
    good = {**base, "entry": {"audience": {"list": list_id}, "schedule": {"cron": "0 9 * * MON"}}}
    assert (await api.post("/v1/journeys", json=good)).json()["version"] == 1
    handle = stack.client.get_schedule_handle(schedule_id(base["id"]))
    spec = (await handle.describe()).schedule.spec  # the server keeps a cron as calendars
    assert spec.cron_expressions == ["0 9 * * MON"] or len(spec.calendars) == 1
    await handle.delete()
