"""Listening after the send (issue 30): an email's open pixel and tracked links become
`message.opened` / `message.clicked` events that a `wait_for_reaction` step takes, in
virtual time, through the real SMTP server, ledger, router and tracking routes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from journeys.schemas import reactions
from journeys.schemas.journey import (
    Entry,
    ExitStep,
    JourneySpec,
    MessageContent,
    SendStep,
    WaitForReactionStep,
)
from journeys.schemas.validation import check_journey
from journeys.testkit import JourneyKit
from journeys.testkit.kit import SERVICES

LINK = "https://shop.example/deal?id=7"


def reacting(reaction: str = "clicked", *, count_machine: bool = False) -> JourneySpec:
    """Email, then wait 3 days for its reaction: the reacted edge and the timeout edge
    each end at an exit of their own, so the path says which was taken."""
    tag = uuid.uuid4().hex[:8]
    return JourneySpec(
        id=f"react-{tag}",
        name="React",
        entry=Entry(event=f"go-{tag}"),
        steps=[
            SendStep(
                id="mail",
                channel="email",
                content=MessageContent(
                    subject="A deal",
                    body=f"See {LINK} today.",
                    html=f'<p><a href="{LINK}">the deal</a> '
                    '<a data-no-track href="https://shop.example/help">help</a></p>',
                ),
                next="wait",
            ),
            WaitForReactionStep(
                id="wait",
                send="mail",
                reaction=reaction,  # type: ignore[arg-type]
                count_machine=count_machine,
                timeout=timedelta(days=3),
                on_reaction="reacted",
                on_timeout="ignored",
            ),
            ExitStep(id="reacted"),
            ExitStep(id="ignored"),
        ],
    )


async def entered(kit: JourneyKit, spec: JourneySpec) -> str:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    await kit.profile(customer, email=f"{customer}@example.com")
    await kit.publish(spec)
    assert spec.entry.event is not None
    await kit.event(customer, spec.entry.event)
    return customer


async def test_a_click_within_the_window_takes_the_reaction_edge(journey_kit: JourneyKit) -> None:
    spec = reacting("clicked")
    customer = await entered(journey_kit, spec)
    run = journey_kit.run(spec.id, customer)
    [email] = journey_kit.emails(f"{customer}@example.com")
    part = email.message.get_body(("html",))
    assert part is not None
    html = part.get_content()  # type: ignore[attr-defined]
    assert f"{SERVICES}/v1/track/open/" in html and LINK not in html  # tracked, with a pixel
    assert 'data-no-track href="https://shop.example/help"' in html  # opted out, untouched
    assert f"{SERVICES}/v1/track/click/" in email.text() and LINK not in email.text()
    await run.advance(timedelta(days=1))
    assert await journey_kit.click(run, "mail") == 302
    state = await run.finish()
    assert [p.step for p in state.path] == ["mail", "wait", "reacted"]
    assert state.path[1].outcome == "clicked"
    counts = await journey_kit.stores.reactions.step_counts(spec.id, 1)
    assert counts == [("mail", "clicked", False, 1, 1)]


async def test_no_open_ends_on_the_timeout_edge_and_a_machine_open_does_not_count(
    journey_kit: JourneyKit,
) -> None:
    spec = reacting("opened")
    customer = await entered(journey_kit, spec)
    run = journey_kit.run(spec.id, customer)
    # Apple Mail Privacy Protection fetches the pixel with a bare user agent.
    assert await journey_kit.open(run, "mail", user_agent="Mozilla/5.0") == 200
    state = await run.finish()
    assert [p.step for p in state.path] == ["mail", "wait", "ignored"]
    assert state.path[1].outcome == "timeout"


async def test_a_machine_open_counts_when_the_journey_says_so_and_repeats_count_once(
    journey_kit: JourneyKit,
) -> None:
    spec = reacting("opened", count_machine=True)
    customer = await entered(journey_kit, spec)
    run = journey_kit.run(spec.id, customer)
    for _ in range(3):
        assert await journey_kit.open(run, "mail", user_agent="Mozilla/5.0") == 200
    state = await run.finish()
    assert [p.step for p in state.path] == ["mail", "wait", "reacted"]
    counts = await journey_kit.stores.reactions.step_counts(spec.id, 1)
    assert counts == [("mail", "opened", True, 1, 3)]  # one message opened, three fetches


async def test_a_forged_or_altered_token_is_a_404_and_records_nothing(
    journey_kit: JourneyKit,
) -> None:
    spec = reacting("clicked")
    customer = await entered(journey_kit, spec)
    [delivery] = await journey_kit.stores.ledger.for_customer(customer)
    real = reactions.token(b"k" * 32, delivery.id, 0)  # signed with another key
    http = journey_kit._http
    assert http is not None
    for token in (real, f"{delivery.id}.0.AAAAAAAAAAAAAAAA", f"{delivery.id}.9.x"):
        answer = await http.get(f"{SERVICES}/v1/track/click/{token}")
        assert answer.status_code in (404, 422), token
        assert "location" not in answer.headers
    assert await journey_kit.stores.reactions.step_counts(spec.id, 1) == []


def test_publish_refuses_a_reaction_the_channel_cannot_report() -> None:
    spec = reacting("clicked")
    sms = spec.model_copy(
        update={
            "steps": [
                SendStep(id="mail", channel="sms", content=MessageContent(body="hi"), next="wait"),
                *spec.steps[1:],
            ]
        }
    )
    [problem] = check_journey(sms)
    assert problem.loc == ("steps", 1, "reaction")
    assert "cannot be clicked" in problem.msg
    no_link = spec.model_copy(
        update={
            "steps": [
                SendStep(
                    id="mail",
                    channel="email",
                    content=MessageContent(subject="s", body="no link"),
                    next="wait",
                ),
                *spec.steps[1:],
            ]
        }
    )
    assert ["no link to click" in p.msg for p in check_journey(no_link)] == [True]


@pytest.mark.parametrize(
    ("agent", "seconds", "reaction", "machine"),
    [
        ("Mozilla/5.0", 100, "opened", True),  # Apple MPP
        ("Mozilla/5.0 (Windows NT 10.0) Outlook", 100, "opened", False),
        ("Mozilla/5.0 Barracuda Sentinel", 100, "clicked", True),
        ("Mozilla/5.0 (iPhone) Safari", 2, "clicked", True),  # within seconds of the send
        ("Mozilla/5.0 (iPhone) Safari", 60, "clicked", False),
    ],
)
def test_machine_opens_and_clicks(agent: str, seconds: float, reaction: str, machine: bool) -> None:
    assert reactions.is_machine(agent, seconds, reaction, 5.0) is machine


def test_tokens_name_a_message_and_a_target_and_nothing_else() -> None:
    key = b"s" * 32
    token = reactions.token(key, 42, 3)
    assert reactions.verify(key, token) == (42, 3)
    assert reactions.verify(key, reactions.token(key, 42, reactions.OPEN)) == (42, "o")
    assert reactions.verify(b"t" * 32, token) is None
    assert reactions.verify(key, token.replace("42.", "43.", 1)) is None


async def test_the_kit_bounces_an_email_and_the_address_is_suppressed_for_the_next_send(
    journey_kit: JourneyKit,
) -> None:
    spec = reacting("bounced")
    customer = await entered(journey_kit, spec)
    run = journey_kit.run(spec.id, customer)
    applied = await journey_kit.bounce(run, "mail")
    assert applied == {"applied": 1, "unknown_message": 0, "replayed": 0}
    state = await run.finish()
    assert [p.step for p in state.path] == ["mail", "wait", "reacted"]
    again = reacting("opened")
    await journey_kit.publish(again)
    assert again.entry.event is not None
    await journey_kit.event(customer, again.entry.event)
    await journey_kit.run(again.id, customer).finish()
    [*_, last] = await journey_kit.sent(customer)
    assert (last.status, last.reason) == ("suppressed", "suppressed_hard_bounce")


async def test_the_kit_replies_yes_and_the_journey_takes_the_reply(journey_kit: JourneyKit) -> None:
    tag = uuid.uuid4().hex[:8]
    spec = JourneySpec(
        id=f"confirm-{tag}",
        name="Reply YES",
        entry=Entry(event=f"go-{tag}"),
        steps=[
            SendStep(id="ask", channel="sms", content=MessageContent(body="Reply YES"), next="w"),
            WaitForReactionStep(
                id="w",
                send="ask",
                reaction="replied",
                timeout=timedelta(days=1),
                on_reaction="yes",
                on_timeout="no",
            ),  # fmt: skip
            ExitStep(id="yes"),
            ExitStep(id="no"),
        ],
    )
    customer = f"c-{tag}"
    await journey_kit.profile(customer, phone=f"+1555{int(tag, 16) % 10**7:07d}")
    await journey_kit.publish(spec)
    await journey_kit.event(customer, f"go-{tag}")
    run = journey_kit.run(spec.id, customer)
    await run.settled()
    assert await journey_kit.reply(run, "yes") == 200
    state = await run.finish()
    assert [p.step for p in state.path] == ["ask", "w", "yes"]
    assert state.path[1].outcome == "replied"
    # STOP withdraws SMS consent: the next SMS is not sent.
    assert await journey_kit.reply(run, "STOP") == 200
    profile = await journey_kit.stores.profiles.get_or_default(customer)
    assert profile.consent.get("sms") is False
