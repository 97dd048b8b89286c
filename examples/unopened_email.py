"""The field's most common reaction journey: email an offer; not opened within 3 days,
send a push instead; opened but not clicked within 2 days, an in-app reminder. Reactions
come from the email's own pixel and tracked links (a privacy proxy's open does not count),
and a bounce ends it: the address is suppressed, so nothing more is mailed."""

from datetime import timedelta

from journeys.schemas.delivery import Template
from journeys.schemas.journey import (
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    SendStep,
    WaitForReactionStep,
)

JOURNEY = JourneySpec(
    id="unopened-email",
    name="Offer, then push if unopened",
    description="Email an offer; no open in 3 days: push; opened, no click in 2 days: in-app.",
    entry=Entry(event="offer.ready"),
    goal=EventCondition(event="order.completed"),
    exit_when=[EventCondition(event="unsubscribed")],
    reentry="after_exit",
    steps=[
        SendStep(id="offer", channel="email", template="offer-email", next="wait-open"),
        WaitForReactionStep(
            id="wait-open",
            send="offer",
            reaction="opened",
            timeout=timedelta(days=3),
            on_reaction="wait-click",
            on_timeout="push",
        ),
        SendStep(id="push", channel="push", template="offer-push", next="done"),
        WaitForReactionStep(
            id="wait-click",
            send="offer",
            reaction="clicked",
            timeout=timedelta(days=2),
            on_reaction="done",
            on_timeout="in-app",
        ),
        SendStep(id="in-app", channel="in_app", template="offer-in-app", next="done"),
        ExitStep(id="done"),
    ],
)

TEMPLATES = [
    Template(
        id="offer-email",
        subject="{{ profile.attributes.first_name | default('Hi') }}, 20% off this week",
        body="Your code: WEEK20. Shop now: https://shop.example/offer",
        html="<p>Your code: <b>WEEK20</b>.</p>"
        '<p><a href="https://shop.example/offer">Shop now</a></p>',
    ),
    Template(id="offer-push", title="20% off this week", body="Your code WEEK20 is waiting."),
    Template(
        id="offer-in-app",
        title="Still thinking it over?",
        body="WEEK20 takes 20% off until Sunday.",
        url="shop://offer",
    ),
]
