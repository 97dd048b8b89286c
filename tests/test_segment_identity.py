"""Segment identity, with the real `segment-analytics-python` client: what a visitor did
before signing up follows them once `identify` carries both ids or `alias` joins them;
later events sent with the anonymous id reach the customer; `group` traits steer branches
as `group.*`; numeric ids are ids; `/v1/import` is `/v1/batch`."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from segment.analytics import Client as SegmentClient

from journeys.api.app import create_app
from journeys.schemas.journey import (
    BranchCase,
    BranchStep,
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
)
from journeys.stack.embedded import Stack
from tests.conftest import eventually, unique, write_key
from tests.helpers import ended, one_send, publish_copy, state

pytestmark = pytest.mark.both_databases


def segment(stack: Stack) -> SegmentClient:
    s = stack.settings
    return SegmentClient(
        write_key(stack), host=f"http://{s.api_host}:{s.api_port}", sync_mode=True, max_retries=0
    )


async def call(client: SegmentClient, method: str, **kwargs: Any) -> None:
    success, _ = await asyncio.to_thread(getattr(client, method), **kwargs)
    assert success, (method, kwargs)


async def profile(api: httpx.AsyncClient, cid: str) -> dict[str, Any] | None:
    response = await api.get(f"/v1/customers/{cid}")
    return response.json() if response.status_code == 200 else None


async def inbox(api: httpx.AsyncClient, cid: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]


async def test_identify_with_both_ids_merges_the_visitor_into_the_customer(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    copy = await publish_copy(api, one_send("merged", body="welcome back"))
    anon, cid = unique("anon"), unique("user")
    client = segment(stack)
    await call(client, "identify", anonymous_id=anon, traits={"plan": "trial", "name": "Ana"})
    await call(client, "track", anonymous_id=anon, event="Pricing Viewed")
    await call(client, "track", anonymous_id=anon, event="Pricing Viewed")
    visitor = await profile(api, anon)
    assert visitor is not None and sum(visitor["active_hours"]) == 2

    await call(
        client, "identify", user_id=cid, anonymous_id=anon, traits={"email": f"{cid}@t.example"}
    )
    known = await profile(api, cid)
    assert known is not None
    assert known["attributes"] == {"plan": "trial", "name": "Ana"}
    assert known["email"] == f"{cid}@t.example"
    assert "Pricing Viewed" in known["seen"] and sum(known["active_hours"]) == 2
    assert await profile(api, anon) is None  # folded in, not kept twice

    # Later events with the anonymous id are the customer's: the enrollment is theirs.
    await call(client, "track", anonymous_id=anon, event=copy.entry)
    assert (await ended(api, copy.id, cid))["status"] == "completed"
    assert await inbox(api, cid) == ["welcome back"]
    missing = await api.get(f"/v1/journeys/{copy.id}/enrollments/{anon}")
    assert missing.status_code == 404

    erased = await api.delete(f"/v1/customers/{cid}")  # the merged id goes with them
    assert erased.status_code == 200 and erased.json()["rows_deleted"]["aliases"] == 1


async def test_alias_joins_an_earlier_id_and_what_was_merged_into_it(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    copy = await publish_copy(api, one_send("aliased", body="hi"))
    first, second, cid = unique("anon"), unique("anon"), unique("user")
    client = segment(stack)
    await call(client, "identify", anonymous_id=first, traits={"source": "ad"})
    await call(client, "alias", previous_id=first, user_id=second)  # an interim id
    await call(client, "alias", previous_id=second, user_id=cid)
    assert (await profile(api, cid) or {})["attributes"] == {"source": "ad"}
    await call(client, "track", anonymous_id=first, event=copy.entry)  # the oldest id
    assert (await ended(api, copy.id, cid))["status"] == "completed"


async def test_group_traits_steer_a_branch(api: httpx.AsyncClient, stack: Stack) -> None:
    plan = BranchCase(when={"field": "group.plan", "op": "eq", "value": "enterprise"}, next="vip")
    spec = JourneySpec(
        id="by-account",
        name="By account",
        entry=Entry(event="go"),
        steps=[
            BranchStep(id="which", cases=[plan], default="std"),
            SendStep(id="vip", channel="in_app", content=MessageContent(body="vip"), next="end"),
            SendStep(id="std", channel="in_app", content=MessageContent(body="std"), next="end"),
            ExitStep(id="end"),
        ],
    )
    copy = await publish_copy(api, spec)
    client = segment(stack)
    big, small = unique("user"), unique("user")
    account = unique("acme")
    await call(client, "group", user_id=big, group_id=account, traits={"plan": "enterprise"})
    await call(client, "group", user_id=small, group_id=unique("shop"), traits={"plan": "free"})
    for cid in (big, small):
        await call(client, "track", user_id=cid, event=copy.entry)
        await ended(api, copy.id, cid)
    assert await inbox(api, big) == ["vip"]
    assert await inbox(api, small) == ["std"]
    assert (await profile(api, big) or {})["group_id"] == account


async def test_numeric_ids_and_the_import_call(api: httpx.AsyncClient, stack: Stack) -> None:
    copy = await publish_copy(api, one_send("numeric", body="n"))
    number = random.randint(10**9, 10**12)
    auth = (write_key(stack), "")
    track = {"userId": number, "event": copy.entry}
    assert (await api.post("/v1/track", json=track, auth=auth)).status_code == 200
    assert (await ended(api, copy.id, str(number)))["status"] == "completed"

    other = random.randint(10**9, 10**12)
    batch = {"batch": [{"type": "track", "userId": other, "event": copy.entry}]}
    imported = await api.post("/v1/import", json=batch, auth=auth)
    assert imported.status_code == 200 and imported.json()["accepted"] == 1
    await eventually(lambda: state(api, copy.id, str(other)), lambda s: s["status"] != "active")

    flag = await api.post("/v1/track", json={"userId": True, "event": "x"}, auth=auth)
    assert flag.status_code == 400  # a boolean is not an id
    lacking = await api.post("/v1/alias", json={"userId": "u1"}, auth=auth)
    assert lacking.status_code == 400


async def test_segment_routes_answer_errors_in_segments_shape_too(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, stack: Stack
) -> None:
    refused = await api.post("/v1/track", json={"event": "x"}, auth=(write_key(stack), ""))
    body = refused.json()
    assert refused.status_code == 400 and body["code"] == "invalid_request"
    assert body["message"] == body["detail"] and body["status"] == 400  # problem details too
    assert "either userId or anonymousId" in body["message"]
    unknown = await anonymous.post("/v1/batch", json={"batch": [{}]})
    assert unknown.status_code == 401 and unknown.json()["code"] == "unauthorized"
    elsewhere = await api.post("/v1/events", json={})
    assert "code" not in elsewhere.json()  # other routes keep plain problem details


async def test_browsers_send_from_the_configured_origins_only(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"segment_origins": ["https://shop.example"]})
    app = create_app(settings, stack.stores, stack.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as browser:

        async def preflight(path: str, origin: str) -> httpx.Response:
            return await browser.options(
                path,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )

        allowed = await preflight("/v1/track", "https://shop.example")
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        assert (await preflight("/v1/batch", "https://evil.example")).status_code == 400
        # the shop's origin opens the Segment routes, nothing else
        assert (await preflight("/codec/decode", "https://shop.example")).status_code == 400
        sent = await browser.post(
            "/v1/track",
            json={"anonymousId": unique("anon"), "event": "Browsed"},
            headers={"Origin": "https://shop.example"},
            auth=(write_key(stack), ""),
        )
        assert sent.status_code == 200
        assert sent.headers["access-control-allow-origin"] == "https://shop.example"
