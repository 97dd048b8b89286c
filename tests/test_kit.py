"""The authors' testing kit on this repo's own example journeys: scenario 1 in virtual time
through the real router, the worker and the channels (no API, no PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from testkit import JourneyKit

pytestmark = pytest.mark.asyncio


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
