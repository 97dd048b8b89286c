"""Segment-compatible ingestion, driven by the real `segment-analytics-python` client, and
de-duplication by message id end to end."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from segment.analytics import Client as SegmentClient

from journeys.schemas.journey import (
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForEventStep,
)
from journeys.stack.embedded import Stack
from tests.conftest import eventually, unique, write_key
from tests.helpers import customer, ended, one_send, publish_copy

pytestmark = pytest.mark.both_databases


async def inbox(api: httpx.AsyncClient, cid: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/customers/{cid}/inbox")).json()["items"]]


def segment(stack: Stack) -> SegmentClient:
    s = stack.settings
    return SegmentClient(
        write_key(stack), host=f"http://{s.api_host}:{s.api_port}", sync_mode=True, max_retries=0
    )


async def test_segment_client_identifies_tracks_and_pages(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    spec = JourneySpec(
        id="segment",
        name="Segment",
        entry=Entry(event="Trial Started"),
        steps=[
            WaitForEventStep(
                id="wait-pricing",
                event="page.viewed",
                where={"field": "event.page_name", "op": "eq", "value": "Pricing"},
                timeout=timedelta(days=1),
                on_event="nudge",
                on_timeout="end",
            ),
            SendStep(
                id="nudge",
                channel="in_app",
                content=MessageContent(body="{{ profile.attributes.first_name }}, 20% off today"),
                next="end",
            ),
            ExitStep(id="end"),
        ],
    )
    copy = await publish_copy(api, spec)
    cid = unique("seg")
    client = segment(stack)
    traits = {"email": f"{cid}@test.example", "first_name": "Ana", "plan": "trial"}
    await asyncio.to_thread(client.identify, cid, traits, {"timezone": "Asia/Jakarta"})
    await asyncio.to_thread(client.track, cid, copy.entry, {"source": "ad"})
    await asyncio.to_thread(client.page, cid, "Docs", "Home")  # not the page it waits for
    await asyncio.to_thread(client.page, cid, "Web", "Pricing")

    final = await ended(api, copy.id, cid)
    assert final["status"] == "completed"
    assert await inbox(api, cid) == ["Ana, 20% off today"]
    profile = (await api.get(f"/v1/customers/{cid}")).json()
    assert profile["email"] == f"{cid}@test.example"
    assert profile["timezone"] == "Asia/Jakarta"
    assert profile["attributes"] == {"first_name": "Ana", "plan": "trial"}
    assert set(profile["seen"]) == {copy.entry, "page.viewed"}


async def batch(api: httpx.AsyncClient, stack: Stack, *messages: dict[str, Any]) -> httpx.Response:
    return await api.post("/v1/batch", json={"batch": list(messages)}, auth=(write_key(stack), ""))


async def test_a_repeated_message_id_changes_nothing_even_after_the_enrollment_ended(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    copy = await publish_copy(api, one_send("dedup", body="once"), reentry="after_exit")
    cid = await customer(api)
    track = {"type": "track", "userId": cid, "event": copy.entry, "messageId": unique("m")}
    first = await batch(api, stack, track, track)  # a duplicate inside the batch too
    assert first.status_code == 200 and first.json()["success"] is True
    await ended(api, copy.id, cid)
    again = await batch(api, stack, track)  # a producer's retry, after the journey ended
    assert again.status_code == 200
    routed = await api.post(
        "/v1/events",
        json={"customer_id": cid, "name": copy.entry, "message_id": track["messageId"]},
    )
    assert routed.json()["results"][0]["duplicate"] is True
    await asyncio.sleep(1)  # give a wrongly re-entered enrollment the time to send
    assert await inbox(api, cid) == ["once"]


async def test_an_event_claimed_but_not_routed_is_routed_on_retry(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """The API died after recording the message id and before Temporal had the event: the
    producer got no answer, retries, and the event goes through."""
    copy = await publish_copy(api, one_send("crash", body="after the crash"))
    cid = await customer(api)
    message_id = unique("m")
    new, _ = await stack.stores.events.claim([message_id])
    assert new == {message_id}
    track = {"type": "track", "userId": cid, "event": copy.entry, "messageId": message_id}
    assert (await batch(api, stack, track)).status_code == 200
    await ended(api, copy.id, cid)
    assert await inbox(api, cid) == ["after the crash"]


async def test_a_batch_takes_its_valid_messages_and_reports_the_others(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Segment's libraries drop a whole batch answered 400: so, as Segment does, the valid
    messages are accepted and each invalid one is reported by its index."""
    copy = await publish_copy(api, one_send("partial", body="hi"))
    cid, other = await customer(api), await customer(api)
    good = {"type": "track", "userId": cid, "event": copy.entry, "messageId": unique("m")}
    no_user = {"type": "track", "event": copy.entry}
    long_id = {"type": "track", "userId": "u" * 250, "event": copy.entry}
    too_big = {"type": "track", "userId": other, "event": copy.entry,
               "properties": {"blob": "x" * 33_000}}  # fmt: skip
    answer = await batch(api, stack, no_user, good, long_id, too_big)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True and body["accepted"] == 1
    assert [(r["index"], r["loc"]) for r in body["rejected"]] == [
        (0, []),
        (2, ["userId"]),
        (3, []),
    ]
    assert "userId" in body["rejected"][0]["msg"] and "u" * 250 not in answer.text
    await eventually(lambda: inbox(api, cid), lambda bodies: bodies == ["hi"])
    await asyncio.sleep(0.5)
    assert await inbox(api, other) == []

    wrong_key = await api.post("/v1/track", json=good, auth=("not-the-key", ""))
    assert wrong_key.status_code == 401
    single = await api.post("/v1/track", json=no_user, auth=(write_key(stack), ""))
    assert single.status_code == 400  # one call, one message: refused as Segment does

    # A retried batch (gzip, as the Segment libraries can) changes nothing: same message id.
    again = gzip.compress(json.dumps({"batch": [good]}).encode())
    accepted = await api.post(
        "/v1/batch",
        content=again,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
        auth=(write_key(stack), ""),
    )
    assert accepted.status_code == 200, accepted.text
    await asyncio.sleep(0.5)
    assert await inbox(api, cid) == ["hi"]


async def test_message_ids_are_forgotten_after_the_retention(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Routed ids older than `event_ids_kept` are dropped (a producer retrying that late
    would enter a customer again); ids claimed but never routed are kept."""
    routed_old, routed_new, unrouted = unique("old"), unique("new"), unique("pending")
    events = stack.stores.events
    await events.claim([routed_old, routed_new, unrouted])
    await events.routed([routed_old, routed_new])
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await events.forget(routed_before=later) >= 2
    new, pending = await events.claim([routed_old, routed_new, unrouted])
    assert new == {routed_old, routed_new}  # forgotten: seen as new again
    assert pending == {unrouted}
    assert await events.forget(routed_before=later - timedelta(days=1)) == 0


async def test_identify_holds_addresses_to_the_profile_rules(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    """Issue 14, item 12: an identify cannot store what `PUT /v1/customers` refuses."""
    cid = unique("ident")
    bad = {"userId": cid, "traits": {"email": "not an email", "plan": "gold"}}
    refused = await api.post("/v1/identify", json=bad, auth=(write_key(stack), ""))
    assert refused.status_code == 400 and "traits.email" in refused.json()["detail"]
    assert (await api.get(f"/v1/customers/{cid}")).status_code == 404
    good = {"userId": cid, "traits": {"email": f"{cid}@example.com"}}
    assert (await api.post("/v1/identify", json=good, auth=(write_key(stack), ""))).is_success
    assert (await api.get(f"/v1/customers/{cid}")).json()["email"] == f"{cid}@example.com"
