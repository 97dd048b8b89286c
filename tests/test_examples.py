"""The example journeys (scenarios 1-3 of ../shared/SCENARIOS.md) at their real durations,
with the authors' testing kit: virtual time, the real router, worker, decisioning service,
SMTP server and provider sandboxes (no API, no PostgreSQL). Scenario 4 (audience entry) is
in test_audiences; the HTTP path end to end in test_onboarding_api."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from journeys.examples import cart_abandonment
from journeys.testkit import JourneyKit

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def summary(sent: list) -> list[tuple[str, str, str | None]]:  # type: ignore[type-arg]
    return [(s.step, s.status, s.reason) for s in sent]


async def test_onboarding_nudge_reminds_then_emails(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.profile("golfer-1", email="golfer-1@test.example",
                              attributes={"first_name": "Ana"})  # fmt: skip
    routed = await journey_kit.event("golfer-1", "registration.completed")
    assert routed.entered == ["onboarding-nudge"]
    run = journey_kit.run("onboarding-nudge", "golfer-1")

    state = await run.advance(timedelta(hours=23))
    assert state.step == "wait-club" and await run.sent() == []
    await run.advance(timedelta(hours=14))  # the timeout, then at most 12 h to the best time
    [push] = await run.sent()
    assert (push.step, push.channel, push.status, push.template) == (
        "push", "in_app", "sent", "come-back"
    )  # fmt: skip
    assert push.text.startswith("Ana, add your clubs")

    final = await run.finish()
    assert final.status == "completed"
    assert await run.path() == ["wait-club", "push", "wait-more", "email", "done"]
    email = (await run.sent())[-1]
    assert (email.channel, email.subject) == ("email", "Ana, your bag is waiting")
    [received] = journey_kit.emails("golfer-1@test.example")
    assert received.subject == "Ana, your bag is waiting"
    assert "have not added any clubs" in received.text()


async def test_adding_clubs_converts(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.event("golfer-2", "registration.completed")
    run = journey_kit.run("onboarding-nudge", "golfer-2")
    await run.advance(timedelta(hours=3))
    await journey_kit.event("golfer-2", "bag.club_added", club="driver")
    state = await run.state()
    assert state.status == "converted" and await run.sent() == []


async def test_cart_abandonment_geofence_brings_store_offers(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.profile("shopper-1", push_tokens=["tok-1"], attributes={"city": "Bandung"})
    await journey_kit.event("shopper-1", "cart.updated", total="Rp 450.000")
    run = journey_kit.run("cart-abandonment", "shopper-1")
    await run.advance(HOUR + timedelta(minutes=1))
    [reminder] = journey_kit.received("fcm")
    assert reminder["message"]["notification"]["body"] == "Your cart is waiting (Rp 450.000)."

    store = {"store_id": "bandung-dago", "store_name": "Dago", "lat": -6.885, "lon": 107.613}
    await journey_kit.event("shopper-1", "geofence.entered", **store)
    final = await run.state()
    assert final.status == "completed"
    assert [p.step for p in final.path] == [
        "wait-checkout", "push-reminder", "wait-store", "store_offers", "store-push", "done"
    ]  # fmt: skip
    store_push = journey_kit.received("fcm")[-1]["message"]
    assert store_push["notification"] == {
        "title": "You're at Dago",
        "body": "In store today: sneakers, buy one get one half price",
    }
    assert store_push["data"]["url"] == "shop://stores/bandung-dago"
    decided = final.context["decisions"]["store_offers"]
    assert [o["id"] for o in decided["offers"]] == ["dago-sneakers", "free-shipping"]
    profile = await journey_kit.stores.profiles.get("shopper-1")
    assert profile is not None and profile.location is not None
    assert profile.location.place == "bandung-dago"


async def test_cart_abandonment_email_recommends_and_festival_takes_over(
    journey_kit: JourneyKit,
) -> None:
    await journey_kit.examples()
    await journey_kit.profile("before", email="before@test.example", push_tokens=["tok-b"])
    await journey_kit.event("before", "cart.updated")
    final = await journey_kit.run("cart-abandonment", "before").finish()
    assert final.status == "completed"
    [email] = journey_kit.emails("before@test.example")
    assert email.subject == "Shoppers who liked your cart also bought these"
    assert "- Free shipping on this order" in email.text()

    # The festival is live over the next days (the enrollment's clock starts now).
    festival = cart_abandonment.OFFERS[0]
    now = datetime.now(UTC)
    live = festival.model_copy(update={"starts_at": now - HOUR, "ends_at": now + timedelta(days=3)})
    await journey_kit.stores.offers.put(live)
    await journey_kit.profile("during", email="during@test.example", push_tokens=["tok-d"])
    await journey_kit.event("during", "cart.updated")
    await journey_kit.run("cart-abandonment", "during").finish()
    [email] = journey_kit.emails("during@test.example")
    assert email.subject == "12.12 festival: 20% off your whole cart"


async def test_cart_abandonment_checkout_converts(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.profile("buyer", push_tokens=["tok-c"])
    await journey_kit.event("buyer", "cart.updated")
    await journey_kit.event("buyer", "checkout.completed")
    run = journey_kit.run("cart-abandonment", "buyer")
    assert (await run.state()).status == "converted"
    assert await run.sent() == []


async def test_subscription_renewal_across_channels_with_consent(
    journey_kit: JourneyKit,
) -> None:
    kit = journey_kit
    await kit.examples()
    await kit.profile("opted-in", email="opted-in@test.example", phone="+6281234567890",
                      push_tokens=["tok-o"], consent={"whatsapp": True})  # fmt: skip
    await kit.profile("no-push", email="no-push@test.example", phone="+6281234567891",
                      consent={"push": False})  # fmt: skip
    await kit.profile("renews", email="renews@test.example", push_tokens=["tok-r"])
    expiring = {"plan": "Digital", "expires_at": "2026-12-01"}
    for cid in ("opted-in", "no-push", "renews"):
        await kit.event(cid, "subscription.expiring", **expiring)
    assert summary(await kit.sent("renews")) == [("in-app", "sent", None)]
    await kit.event("renews", "subscription.renewed")
    runs = [kit.run("subscription-renewal", c) for c in ("opted-in", "no-push", "renews")]
    finals = [await r.finish() for r in runs[:2]] + [await runs[2].state()]

    assert [f.status for f in finals] == ["completed", "completed", "converted"]
    assert summary(await kit.sent("opted-in")) == [
        ("in-app", "sent", None),
        ("email", "sent", None),
        ("push", "sent", None),
        ("whatsapp", "sent", None),
    ]
    assert summary(await kit.sent("no-push")) == [
        ("in-app", "sent", None),
        ("email", "sent", None),
        ("push", "suppressed", "no_consent"),
    ]
    assert "opted-in" in [p.step for p in finals[1].path]  # asked, not opted in
    assert summary(await kit.sent("renews")) == [("in-app", "sent", None)]

    [email] = kit.emails("opted-in@test.example")
    assert email.subject == "3 days left on your subscription"
    assert "List-Unsubscribe" not in email.message  # a service message, not marketing
    assert str(email.message["Date"]).endswith("+0000")  # UTC, a known zone (not "-0000")
    whatsapp = [r for r in kit.received("twilio") if r["form"]["To"] == "whatsapp:+6281234567890"]
    assert whatsapp[-1]["form"]["Body"].startswith("Last day of your subscription")
    profile = await kit.stores.profiles.get("opted-in")
    assert profile is not None and profile.lifecycle_stage == "renewal_due"


async def test_unopened_email_pushes_after_three_days(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.profile("reader-1", email="reader-1@test.example", push_tokens=["tok-r1"])
    await journey_kit.event("reader-1", "offer.ready")
    run = journey_kit.run("unopened-email", "reader-1")
    # Apple Mail Privacy Protection fetches the pixel: a machine's open, which does not count.
    assert await journey_kit.open(run, "offer", user_agent="Mozilla/5.0") == 200
    final = await run.finish()
    assert await run.path() == ["offer", "wait-open", "push", "done"]
    assert summary(await run.sent()) == [("offer", "sent", None), ("push", "sent", None)]
    assert final.status == "completed"


async def test_unopened_email_opened_and_clicked_sends_nothing_more(
    journey_kit: JourneyKit,
) -> None:
    await journey_kit.examples()
    await journey_kit.profile("reader-2", email="reader-2@test.example", push_tokens=["tok-r2"])
    await journey_kit.event("reader-2", "offer.ready")
    run = journey_kit.run("unopened-email", "reader-2")
    [email] = journey_kit.emails("reader-2@test.example")
    assert "https://shop.example/offer" not in email.text()  # the link is tracked
    await run.advance(DAY)
    assert await journey_kit.open(run, "offer") == 200
    await run.advance(DAY)
    assert await journey_kit.click(run, "offer") == 302
    await run.finish()
    assert await run.path() == ["offer", "wait-open", "wait-click", "done"]
    assert len(await run.sent()) == 1


async def test_unopened_email_bounced_is_never_mailed_again(journey_kit: JourneyKit) -> None:
    await journey_kit.examples()
    await journey_kit.profile("reader-3", email="reader-3@test.example")
    await journey_kit.event("reader-3", "offer.ready")
    run = journey_kit.run("unopened-email", "reader-3")
    await journey_kit.bounce(run, "offer")
    await run.finish()
    await journey_kit.event("reader-3", "offer.ready")  # re-entry after the exit
    await journey_kit.run("unopened-email", "reader-3").finish()
    offers = [s for s in await journey_kit.sent("reader-3") if s.step == "offer"]
    assert [(s.status, s.reason) for s in offers] == [
        ("sent", None), ("suppressed", "suppressed_hard_bounce")
    ]  # fmt: skip
