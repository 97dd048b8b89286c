"""Scenario 1, a golf community app: registered but no clubs in the bag after a day gets a
nudge; two days later still none gets an email. Adding clubs converts at any point.

The nudge is a push to the customer's devices, or an in-app message for a customer without
a device token (`best_channel`: push first). It is sent at the customer's usual active
hour (learned from their events, at most 12 hours later) and never in their quiet hours
(the deployment's, 21:00-08:00 by default); both messages are marketing, so they count
against the global frequency cap and need marketing consent.
"""

from datetime import timedelta

from journeys.schemas.delivery import Template
from journeys.schemas.journey import (
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    SendStep,
    WaitForEventStep,
)

JOURNEY = JourneySpec(
    id="onboarding-nudge",
    name="Onboarding nudge",
    description="Nudge new members to add their clubs: in-app after a day, email after three.",
    entry=Entry(event="registration.completed"),
    goal=EventCondition(event="bag.club_added"),
    exit_when=[EventCondition(event="unsubscribed")],
    reentry="never",
    steps=[
        WaitForEventStep(
            id="wait-club",
            event="bag.club_added",
            timeout=timedelta(days=1),
            on_event="done",
            on_timeout="push",
        ),
        SendStep(
            id="push",
            channel="best_channel",
            fallbacks=["push", "in_app"],
            template="come-back",
            send_at="best_time",
            best_time_within=timedelta(hours=12),
            next="wait-more",
        ),
        WaitForEventStep(
            id="wait-more",
            event="bag.club_added",
            timeout=timedelta(days=2),
            on_event="done",
            on_timeout="email",
        ),
        SendStep(id="email", channel="email", template="add-your-clubs", next="done"),
        ExitStep(id="done"),
    ],
)

TEMPLATES = [
    Template(
        id="come-back",
        title="Your bag is empty",
        body="{{ profile.attributes.first_name | default('Hi') }}, add your clubs to get "
        "shot tracking and club recommendations.",
        url="golfapp://bag",
    ),
    Template(
        id="add-your-clubs",
        subject="{{ profile.attributes.first_name | default('Golfer') }}, your bag is waiting",
        body="You registered {{ event.timestamp[:10] }} but have not added any clubs yet.\n"
        "Add them in the app to unlock shot tracking.",
        html="<p>You registered on {{ event.timestamp[:10] }} but have not added any clubs "
        'yet.</p><p><a href="https://golf.example/bag">Add your clubs</a></p>',
    ),
]
