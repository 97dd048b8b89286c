"""Scenario 3, a news subscription: seven days before it expires (the billing system sends
`subscription.expiring`) the customer gets an in-app message; three days before, an email
and a push; on the last day a WhatsApp message, only if they opted in to WhatsApp. Renewal
ends it as converted.

These are service messages about the customer's own subscription (`transactional`), so the
marketing frequency cap does not hold back the fourth reminder; consent per channel still
applies to every one, and WhatsApp needs an explicit opt-in (`consent.whatsapp: true`).
"""

from datetime import timedelta

from journeys.schemas.delivery import Template
from journeys.schemas.journey import (
    BranchCase,
    BranchStep,
    Entry,
    EventCondition,
    ExitStep,
    JourneySpec,
    SendStep,
    UpdateProfileStep,
    WaitForEventStep,
)

JOURNEY = JourneySpec(
    id="subscription-renewal",
    name="Subscription renewal",
    description="In-app at 7 days, email and push at 3, WhatsApp on the last day.",
    entry=Entry(event="subscription.expiring"),
    goal=EventCondition(event="subscription.renewed"),
    exit_when=[EventCondition(event="subscription.cancelled")],
    reentry="after_exit",
    priority=10,
    steps=[
        UpdateProfileStep(id="mark", lifecycle_stage="renewal_due", next="in-app"),
        SendStep(
            id="in-app",
            channel="in_app",
            template="renewal-in-app",
            topic="transactional",
            next="wait-3-days-left",
        ),
        WaitForEventStep(
            id="wait-3-days-left",
            event="subscription.renewed",
            timeout=timedelta(days=4),
            on_event="done",
            on_timeout="email",
        ),
        SendStep(
            id="email",
            channel="email",
            template="renewal-email",
            topic="transactional",
            next="push",
        ),
        SendStep(
            id="push",
            channel="push",
            template="renewal-push",
            topic="transactional",
            next="wait-last-day",
        ),
        WaitForEventStep(
            id="wait-last-day",
            event="subscription.renewed",
            timeout=timedelta(days=2),
            on_event="done",
            on_timeout="opted-in",
        ),
        BranchStep(
            id="opted-in",
            cases=[
                BranchCase(
                    when={"field": "profile.consent.whatsapp", "op": "eq", "value": True},
                    next="whatsapp",
                )
            ],
            default="done",
        ),
        SendStep(
            id="whatsapp",
            channel="whatsapp",
            template="renewal-whatsapp",
            topic="transactional",
            next="done",
        ),
        ExitStep(id="done"),
    ],
)

TEMPLATES = [
    Template(
        id="renewal-in-app",
        title="Your subscription ends in 7 days",
        body="Keep reading without interruption: renew your {{ event.plan | default('') }} plan.",
        url="news://account/renew",
    ),
    Template(
        id="renewal-email",
        subject="3 days left on your subscription",
        body="Your {{ event.plan | default('') }} subscription ends on "
        "{{ event.expires_at | default('soon') }}. Renew now to keep your archive access.",
        html="<p>Your subscription ends on {{ event.expires_at | default('soon') }}.</p>"
        '<p><a href="https://news.example/renew">Renew now</a></p>',
        variants={
            "de": {
                "subject": "Noch 3 Tage Abo",
                "body": "Ihr Abo endet am {{ event.expires_at | default('bald') }}.",
            }
        },
    ),
    Template(
        id="renewal-push",
        title="3 days left",
        body="Renew your subscription to keep reading.",
        url="news://account/renew",
    ),
    Template(
        id="renewal-whatsapp",
        body="Last day of your subscription. Reply RENEW or tap https://news.example/renew",
    ),
]
