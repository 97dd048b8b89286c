"""Scenarios 2 and 3 of ../shared/SCENARIOS.md, end to end through the API, the decisioning
service and the channel sandboxes, with their waits shortened by `time_scale`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from examples import cart_abandonment, subscription_renewal
from services.mailbox import Mailbox
from tests.conftest import eventually, unique
from tests.helpers import customer, deliveries, ended, event, publish_copy, received

HOUR_IN_A_SECOND = 3600.0
DAY_IN_A_SECOND = 86400.0


async def pushes(api: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    return [r["message"] for r in await received(api, "fcm", token)]


def sends(history: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(d["step_id"], d["status"], d["reason"]) for d in history]


async def test_cart_abandonment_geofence_brings_store_offers(api: httpx.AsyncClient) -> None:
    copy = await publish_copy(api, cart_abandonment.JOURNEY, time_scale=HOUR_IN_A_SECOND)
    token = unique("tok")
    cid = await customer(api, push_tokens=[token], attributes={"city": "Bandung"})
    await event(api, cid, copy.entry, properties={"total": "Rp 450.000"})
    reminder = await eventually(lambda: pushes(api, token), lambda p: len(p) == 1)
    assert reminder[0]["notification"]["body"] == "Your cart is waiting (Rp 450.000)."

    store = {"store_id": "bandung-dago", "store_name": "Dago", "lat": -6.885, "lon": 107.613}
    await event(api, cid, "geofence.entered", properties=store)
    final = await ended(api, copy.id, cid)
    assert final["status"] == "completed"
    assert [p["step"] for p in final["path"]] == [
        "wait-checkout",
        "push-reminder",
        "wait-store",
        "store_offers",
        "store-push",
        "done",
    ]
    store_push = (await pushes(api, token))[-1]
    assert store_push["notification"] == {
        "title": "You're at Dago",
        "body": "In store today: sneakers, buy one get one half price",
    }
    assert store_push["data"]["url"] == "shop://stores/bandung-dago"
    decided = final["context"]["decisions"]["store_offers"]
    assert [o["id"] for o in decided["offers"]] == ["dago-sneakers", "free-shipping"]
    profile = (await api.get(f"/v1/customers/{cid}")).json()
    assert profile["location"]["place"] == "bandung-dago"


async def test_cart_abandonment_email_recommends_and_festival_takes_over(
    api: httpx.AsyncClient, mailbox: tuple[Mailbox, int]
) -> None:
    copy = await publish_copy(api, cart_abandonment.JOURNEY, time_scale=DAY_IN_A_SECOND)
    before = await customer(api, push_tokens=[unique("tok")])
    await event(api, before, copy.entry)
    await ended(api, copy.id, before)
    [email] = mailbox[0].to(f"{before}@test.example")
    assert email.message["Subject"] == "Shoppers who liked your cart also bought these"
    assert "- Free shipping on this order" in email.message.get_body(("plain",)).get_content()

    # The festival is live over the next days. Decisions are made on the enrollment's
    # clock, which test mode runs a day per second: the email's "day later" is tomorrow.
    festival = cart_abandonment.OFFERS[0]
    now = datetime.now(UTC)
    live = festival.model_dump(mode="json", exclude={"id"}) | {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=3)).isoformat(),
    }
    assert (await api.put(f"/v1/offers/{festival.id}", json=live)).status_code == 200
    try:
        during = await customer(api, push_tokens=[unique("tok")])
        await event(api, during, copy.entry)
        await ended(api, copy.id, during)
    finally:
        original = festival.model_dump(mode="json", exclude={"id"})
        await api.put(f"/v1/offers/{festival.id}", json=original)
    [email] = mailbox[0].to(f"{during}@test.example")
    assert email.message["Subject"] == "12.12 festival: 20% off your whole cart"


async def test_cart_abandonment_checkout_converts(api: httpx.AsyncClient) -> None:
    copy = await publish_copy(api, cart_abandonment.JOURNEY)
    cid = await customer(api, push_tokens=[unique("tok")])
    await event(api, cid, copy.entry)
    await event(api, cid, "checkout.completed")
    final = await ended(api, copy.id, cid)
    assert final["status"] == "converted"
    assert await deliveries(api, cid) == []


async def test_subscription_renewal_across_channels_with_consent(
    api: httpx.AsyncClient, mailbox: tuple[Mailbox, int]
) -> None:
    copy = await publish_copy(api, subscription_renewal.JOURNEY, time_scale=DAY_IN_A_SECOND)
    opted_in = await customer(
        api, phone="+6281234567890", push_tokens=[unique("tok")], consent={"whatsapp": True}
    )
    no_push = await customer(api, phone="+6281234567891", consent={"push": False})
    renews = await customer(api, push_tokens=[unique("tok")])
    expiring = {"plan": "Digital", "expires_at": "2026-12-01"}
    for cid in (opted_in, no_push, renews):
        await event(api, cid, copy.entry, properties=expiring)
    await eventually(lambda: deliveries(api, renews), lambda d: len(d) == 1)
    await event(api, renews, "subscription.renewed")
    finals = await asyncio.gather(*(ended(api, copy.id, c) for c in (opted_in, no_push, renews)))

    assert [f["status"] for f in finals] == ["completed", "completed", "converted"]
    assert sends(await deliveries(api, opted_in)) == [
        ("in-app", "sent", None),
        ("email", "sent", None),
        ("push", "sent", None),
        ("whatsapp", "sent", None),
    ]
    assert sends(await deliveries(api, no_push)) == [
        ("in-app", "sent", None),
        ("email", "sent", None),
        ("push", "suppressed", "no_consent"),
    ]
    assert "opted-in" in [p["step"] for p in finals[1]["path"]]  # asked, not opted in
    assert sends(await deliveries(api, renews)) == [("in-app", "sent", None)]

    [email] = mailbox[0].to(f"{opted_in}@test.example")
    assert email.message["Subject"] == "3 days left on your subscription"
    assert "List-Unsubscribe" not in email.message  # a service message, not marketing
    whatsapp = await received(api, "twilio", "whatsapp:+6281234567890")
    assert whatsapp[-1]["form"]["Body"].startswith("Last day of your subscription")
    profile = (await api.get(f"/v1/customers/{opted_in}")).json()
    assert profile["lifecycle_stage"] == "renewal_due"
