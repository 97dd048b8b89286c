"""The steps that call services: `decide`, `update_profile` and `action`, and templates
with locale variants, checked when published and failing clearly when sent."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx

from journeys.activities.actions import ActionInput, action
from journeys.schemas.journey import (
    ActionStep,
    DecideStep,
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    RateLimit,
    SendStep,
    UpdateProfileStep,
    WaitForEventStep,
)
from tests.conftest import Receiver, eventually, unique
from tests.helpers import customer, deliveries, ended, event, one_send, publish_copy

STAMPS: dict[str, list[float]] = {}
HELD: dict[str, asyncio.Event] = {}


@action("tests.stamp")
async def stamp(call: ActionInput) -> dict[str, Any]:
    """Records when each call ran, per test run (`input.run`)."""
    STAMPS.setdefault(call.input["run"], []).append(time.monotonic())
    return {"customer": call.customer_id}


@action("tests.hold")
async def hold(call: ActionInput) -> dict[str, Any]:
    """Runs until the test releases it (`input.run`), like a slow provider call."""
    released = HELD.setdefault(call.input["run"], asyncio.Event())
    STAMPS.setdefault(call.input["run"], []).append(time.monotonic())
    await released.wait()
    return {}


def journey(*steps: Any) -> JourneySpec:
    return JourneySpec(
        id=unique("steps"),
        name="steps",
        entry=Entry(event="go"),
        steps=[*steps, ExitStep(id="end")],
    )


def inbox_send(step_id: str, body: str, next: str = "end") -> SendStep:
    return SendStep(id=step_id, channel="in_app", content=MessageContent(body=body), next=next)


async def inbox(api: httpx.AsyncClient, cid: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]


async def test_decide_puts_offers_in_context_for_templates(api: httpx.AsyncClient) -> None:
    placement = unique("recs")
    for oid, priority in (("shoes", 3), ("socks", 1)):
        body = {
            "name": oid,
            "placements": [placement],
            "priority": priority,
            "fields": {"title": oid.upper()},
        }
        await api.put(f"/v1/offers/{unique(oid)}", json=body)
    spec = journey(
        DecideStep(id="recs", placement=placement, limit=2, next="show", on_empty="none"),
        inbox_send(
            "show",
            "{% for o in context.decisions.recs.offers %}{{ o.fields.title }} {% endfor %}",
        ),
        inbox_send("none", "nothing for you"),
    )
    copy = await publish_copy(api, spec)
    cid = await customer(api)
    await event(api, cid, copy.entry)
    state = await ended(api, copy.id, cid)
    assert [p["outcome"] for p in state["path"]][:1] == ["2 offer(s)"]
    assert await inbox(api, cid) == ["SHOES SOCKS "]

    empty = await publish_copy(
        api,
        spec.model_copy(
            update={
                "steps": [
                    DecideStep(
                        id="recs", placement=unique("nothing"), next="show", on_empty="none"
                    ),
                    *spec.steps[1:],
                ]
            }
        ),
    )
    other = await customer(api)
    await event(api, other, empty.entry)
    await ended(api, empty.id, other)
    assert await inbox(api, other) == ["nothing for you"]


async def test_update_profile_sets_attributes_and_lifecycle(api: httpx.AsyncClient) -> None:
    spec = journey(
        UpdateProfileStep(
            id="mark",
            attributes={"vip": True, "old": None},
            lifecycle_stage="engaged",
            next="end",
        )
    )
    copy = await publish_copy(api, spec)
    cid = await customer(api, attributes={"old": 1, "keep": "yes"})
    await event(api, cid, copy.entry)
    await ended(api, copy.id, cid)
    profile = (await api.get(f"/v1/customers/{cid}")).json()
    assert profile["attributes"] == {"keep": "yes", "vip": True}
    assert profile["lifecycle_stage"] == "engaged"


async def test_registered_action_output_reaches_the_message(api: httpx.AsyncClient) -> None:
    spec = journey(
        ActionStep(id="coupon", activity="coupons.issue", input={"percent": 15}, next="tell"),
        inbox_send("tell", "Your code: {{ context.actions.coupon.code }}"),
    )
    copy = await publish_copy(api, spec)
    cid = await customer(api)
    await event(api, cid, copy.entry)
    await ended(api, copy.id, cid)
    [body] = await inbox(api, cid)
    assert body.startswith("Your code: SAVE15-")


async def test_http_action_and_its_failure_edge(api: httpx.AsyncClient, receiver: Receiver) -> None:
    base = receiver.url
    spec = journey(
        ActionStep(
            id="call",
            http={"url": f"{base}/offers", "body": {"customer_id": "x"}},
            next="ok",
            on_failed="failed",
        ),
        inbox_send("ok", "got {{ context.actions.call.offers[0].name }}"),
        inbox_send("failed", "failed: {{ context.actions.call.error }}"),
    )
    copy = await publish_copy(api, spec)
    cid = await customer(api)
    await event(api, cid, copy.entry)
    await ended(api, copy.id, cid)
    assert await inbox(api, cid) == ["got called"]

    refused = spec.model_copy(deep=True)
    refused.steps[0].http.url = f"{base}/no-such-endpoint"  # type: ignore[union-attr]
    copy = await publish_copy(api, refused)
    other = await customer(api)
    await event(api, other, copy.entry)
    await ended(api, copy.id, other)
    [body] = await inbox(api, other)
    assert body.startswith("failed: ") and "HTTP 404" in body


async def test_action_rate_limit_spaces_calls(api: httpx.AsyncClient) -> None:
    run = unique("run")
    spec = journey(
        ActionStep(
            id="stamp",
            activity="tests.stamp",
            input={"run": run},
            rate_limit=RateLimit(limit=2, per=1),
            next="end",
        )
    )
    copy = await publish_copy(api, spec)
    customers = [unique("c") for _ in range(6)]
    await asyncio.gather(*(event(api, c, copy.entry) for c in customers))
    await asyncio.gather(*(ended(api, copy.id, c) for c in customers))
    stamps = sorted(STAMPS[run])
    assert len(stamps) == 6
    # A leaky bucket of 2 per second: any n calls span at least (n - 2) / 2 seconds, so
    # the six took at least two seconds although they all arrived at once.
    for i in range(len(stamps)):
        for j in range(i + 2, len(stamps)):
            assert stamps[j] - stamps[i] >= (j - i + 1 - 2) / 2 - 0.1, (i, j, stamps)


async def test_template_variants_by_locale_and_channel(api: httpx.AsyncClient) -> None:
    tid = unique("tpl")
    template = {
        "subject": "Hello",
        "body": "Hi {{ profile.attributes.name }}",
        "variants": {
            "de": {"body": "Hallo {{ profile.attributes.name }}"},
            "de/in_app": {"title": "Neu"},
        },
    }
    assert (await api.put(f"/v1/templates/{tid}", json=template)).status_code == 200
    spec = journey(SendStep(id="send", channel="in_app", template=tid, next="end"))
    copy = await publish_copy(api, spec)
    german = await customer(api, locale="de-AT", attributes={"name": "Lena"})
    english = await customer(api, locale="en-GB", attributes={"name": "Sam"})
    for cid in (german, english):
        await event(api, cid, copy.entry)
        await ended(api, copy.id, cid)
    [de] = (await api.get(f"/v1/customers/{german}/inbox")).json()["items"]
    assert (de["title"], de["body"]) == ("Neu", "Hallo Lena")
    assert await inbox(api, english) == ["Hi Sam"]


async def test_missing_variables_fail_publish_and_then_send(api: httpx.AsyncClient) -> None:
    tid = unique("tpl")
    await api.put(f"/v1/templates/{tid}", json={"body": "Hi {{ customer.name }}"})
    spec = journey(SendStep(id="send", channel="in_app", template=tid, next="end"))
    response = await api.post("/v1/journeys", json=spec.model_dump(mode="json"))
    assert response.status_code == 422
    [detail] = response.json()["errors"]
    assert detail["loc"] == ["body", "steps", 0, "template"]
    assert "unknown variable 'customer'" in detail["msg"]

    inline = one_send(unique("inline"), body="{{ context.decisions.nope.top.name }}")
    response = await api.post("/v1/journeys", json=inline.model_dump(mode="json"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "steps", 0, "content", "body"]

    # A template changed after publishing fails at send time, for good, with the reason.
    await api.put(f"/v1/templates/{tid}", json={"body": "Hi {{ profile.attributes.name }}"})
    copy = await publish_copy(api, spec)
    await api.put(f"/v1/templates/{tid}", json={"body": "Hi {{ event.missing.deep }}"})
    cid = await customer(api)
    await event(api, cid, copy.entry)
    await ended(api, copy.id, cid)
    [failed] = await deliveries(api, cid)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    assert f"template {tid}: body:" in failed["reason"] and "missing" in failed["reason"]


async def test_event_while_a_step_runs_counts_for_the_next_wait(api: httpx.AsyncClient) -> None:
    """A customer who reacts while the step before a wait is still running (a send
    settling, a slow action) is not missed: the wait sees the event at once."""
    run = unique("run")
    spec = journey(
        ActionStep(id="slow", activity="tests.hold", input={"run": run}, next="wait"),
        WaitForEventStep(
            id="wait", event="reacted", timeout=timedelta(days=1), on_event="yes", on_timeout="end"
        ),
        inbox_send("yes", "seen"),
    )
    copy = await publish_copy(api, spec)
    cid = await customer(api)
    await event(api, cid, copy.entry)

    async def started() -> bool:
        return run in STAMPS

    await eventually(started, bool)
    signalled = await event(api, cid, "reacted")
    assert signalled["signalled"], signalled
    HELD[run].set()
    final = await ended(api, copy.id, cid)
    assert [p["step"] for p in final["path"]] == ["slow", "wait", "yes", "end"]
    assert await inbox(api, cid) == ["seen"]
