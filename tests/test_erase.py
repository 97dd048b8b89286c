"""Customer erase: `DELETE /v1/customers/{id}` ends the customer's running enrollments,
removes their rows, and deletes every workflow run that names them; other customers keep
theirs."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

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
from tests.helpers import customer, ended, event, journeys_ok, one_send, publish_copy, state

pytestmark = pytest.mark.both_databases


async def gone(stack: Stack, workflow_id: str) -> bool:
    try:
        await stack.client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


async def test_erase_ends_enrollments_and_removes_data_and_runs(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    waiting = JourneySpec(
        id=unique("erase-wait"),
        name="erase",
        entry=Entry(event=unique("go")),
        steps=[
            SendStep(
                id="hello", channel="in_app", content=MessageContent(body="hello"), next="wait"
            ),
            WaitStep(id="wait", duration=timedelta(days=30), next="end"),
            ExitStep(id="end"),
        ],
    )
    response = await api.post("/v1/journeys", json=waiting.model_dump(mode="json"))
    assert response.status_code == 201, response.text
    done = await publish_copy(api, one_send("erase-done", body="done"))
    cid, other = await customer(api), await customer(api)
    for who in (cid, other):
        await event(api, who, str(waiting.entry.event))
        await event(api, who, done.entry)
        await ended(api, done.id, who)
        await eventually(lambda w=who: state(api, waiting.id, w), lambda s: s["step"] == "wait")

    response = await api.delete(f"/v1/customers/{cid}")
    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["enrollments_ended"] == 1 and erased["runs_deleted"] == 2
    assert erased["rows_deleted"]["profiles"] == 1
    assert erased["rows_deleted"]["deliveries"] == 2 and erased["rows_deleted"]["inbox"] == 2

    assert (await api.get(f"/v1/customers/{cid}")).status_code == 404
    assert (await api.get(f"/v1/customers/{cid}/deliveries")).json()["items"] == []
    assert (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"] == []
    # (That Temporal then deletes the runs: the slow test below.)

    # The other customer keeps everything.
    assert (await api.get(f"/v1/customers/{other}")).status_code == 200
    assert len((await api.get(f"/v1/customers/{other}/deliveries")).json()["items"]) == 2
    assert (await state(api, waiting.id, other))["status"] == "active"
    out = await journeys_ok("erase", other, "--yes", "--api-url", str(api.base_url).rstrip("/"))
    assert f"{other}: 1 enrollments ended, 2 runs deleted" in out and "1 profiles" in out
    assert (await api.get(f"/v1/customers/{other}")).status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_an_erased_customers_runs_are_gone_from_temporal(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Temporal deletes runs asynchronously: on the dev server they vanish after 20 to 55 s
    (what the database does is the same on both, so one stack)."""
    waiting = await publish_copy(api, WAITING)
    done = await publish_copy(api, one_send("erase-gone", body="done"))
    cid = await customer(api)
    await event(api, cid, waiting.entry)
    await event(api, cid, done.entry)
    await ended(api, done.id, cid)
    response = await api.delete(f"/v1/customers/{cid}")
    assert response.status_code == 200 and response.json()["runs_deleted"] == 2, response.text
    for journey_id in (waiting.id, done.id):
        workflow_id = enrollment_workflow_id(journey_id, cid)
        await eventually(lambda w=workflow_id: gone(stack, w), lambda g: g, timeout=120)
    query = f'CustomerId = "{cid}"'
    await eventually(
        lambda: stack.client.count_workflows(query), lambda c: c.count == 0, timeout=120
    )


WAITING = JourneySpec(
    id="erase-ids",
    name="Waits a month",
    entry=Entry(event="erase.ids"),
    steps=[WaitStep(id="wait", duration=timedelta(days=30), next="end"), ExitStep(id="end")],
)
ODD_BUT_VALID = ["ü@example.com+1", "a%2Fb?c#d", "😀&=;:,|~*()[]{}<>", "x" * 200]
INVALID = ["a/b", 'a"b', "a\\b", "a b", "a'b", "tab\there", "x" * 201]


async def test_every_valid_customer_id_is_readable_and_erasable(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Issue 14, item 5: ids a backend may well use, percent-encoded in paths as any HTTP
    client does, enter, read and erase like any other (Temporal then deletes the runs
    within a minute: the first test waits for that)."""
    journey = await publish_copy(api, WAITING)
    for raw in ODD_BUT_VALID:
        cid = f"{unique('odd')}{raw}"[:200]
        path = quote(cid, safe="")
        assert (await api.put(f"/v1/customers/{path}", json={})).status_code == 200
        await event(api, cid, journey.entry)
        now = await state(api, journey.id, path)
        assert now["status"] == "active" and now["customer_id"] == cid
        erased = (await api.delete(f"/v1/customers/{path}")).json()
        assert erased["enrollments_ended"] == 1 and erased["runs_deleted"] >= 1, raw
        assert erased["rows_deleted"]["profiles"] == 1


async def test_invalid_customer_ids_are_refused_everywhere(api: httpx.AsyncClient) -> None:
    for cid in INVALID:
        sent = await api.post("/v1/events", json={"customer_id": cid, "name": "x"})
        assert sent.status_code == 422, cid
        assert sent.json()["errors"][0]["loc"] == ["body", "customer_id"], cid
        for method in ("GET", "PUT", "DELETE"):
            response = await api.request(method, f"/v1/customers/{quote(cid, safe='')}", json={})
            assert response.status_code in (404, 422), (method, cid, response.status_code)
    batch = {"batch": [{"type": "track", "userId": cid, "event": "x"} for cid in INVALID]}
    answer = await api.post("/v1/batch", json=batch)
    assert answer.status_code == 200
    assert [r["index"] for r in answer.json()["rejected"]] == list(range(len(INVALID)))


async def test_events_during_an_erase_are_refused_and_start_nothing(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """An entry event that arrives while the customer is being erased is answered 503 with
    Retry-After (nothing of it stored), so it cannot start an enrollment halfway through;
    once the erase is done the same event is taken."""
    journey = await publish_copy(api, WAITING)
    cid = unique("erasing")
    async with stack.stores.erasures.window(cid):
        body = {"customer_id": cid, "name": journey.entry, "message_id": f"{cid}-1"}
        refused = await api.post("/v1/events", json=body)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert cid not in refused.text
        identify = await api.post("/v1/identify", json={"userId": cid, "traits": {"a": 1}})
        assert identify.status_code == 503
        assert (await api.delete(f"/v1/customers/{cid}")).status_code == 409
        assert (await api.put(f"/v1/customers/{cid}", json={})).status_code == 503
        assert (await api.get(f"/v1/customers/{cid}")).status_code == 404
        assert await gone(stack, enrollment_workflow_id(journey.id, cid))
    taken = await api.post("/v1/events", json=body)
    assert taken.status_code == 202 and taken.json()["results"][0]["entered"] == [journey.id]
