"""Scenario 4, a bank: every credit-card customer without a direct debit is enrolled from an
audience (a predicate over profiles), at a controlled rate with progress, and gets an in-app
prompt in the banking app. Setting up a direct debit converts at any point; a customer who
has not after two weeks gets one reminder.

Start it with `journeys audience direct-debit-prompt` (or `POST
/v1/journeys/direct-debit-prompt/audience-runs`); the run shows done/total, rate and ETA.
"""

from datetime import timedelta

from journeys.schemas.delivery import Template
from journeys.schemas.journey import (
    Audience,
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    SendStep,
    WaitForEventStep,
)
from journeys.schemas.predicates import AllOf, Comparison, Not

AUDIENCE = Audience(
    where=AllOf(
        all=[
            Comparison(field="profile.attributes.products", op="contains", value="credit_card"),
            Not(not_=Comparison(field="profile.attributes.direct_debit", op="eq", value=True)),
        ]
    ),
    rate_per_second=500,
)

JOURNEY = JourneySpec(
    id="direct-debit-prompt",
    name="Direct-debit prompt",
    description="In-app prompt to card holders without a direct debit; reminder after 14 days.",
    entry=Entry(audience=AUDIENCE),
    goal=EventCondition(event="direct_debit.set_up"),
    reentry="never",
    steps=[
        SendStep(id="prompt", channel="in_app", template="direct-debit-prompt", next="wait"),
        WaitForEventStep(
            id="wait",
            event="direct_debit.set_up",
            timeout=timedelta(days=14),
            on_event="done",
            on_timeout="reminder",
        ),
        SendStep(id="reminder", channel="in_app", template="direct-debit-reminder", next="done"),
        ExitStep(id="done"),
    ],
)

TEMPLATES = [
    Template(
        id="direct-debit-prompt",
        title="Never miss a card payment",
        body="Set up a direct debit and your card bill is paid on time, every month.",
        url="bank://cards/direct-debit",
    ),
    Template(
        id="direct-debit-reminder",
        title="Still paying your card by hand?",
        body="A direct debit takes two minutes to set up.",
        url="bank://cards/direct-debit",
    ),
]
