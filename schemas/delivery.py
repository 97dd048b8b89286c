"""Sends and their outcome as recorded in the delivery ledger."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from journeys.schemas.base import Schema
from journeys.schemas.events import CustomerEvent
from journeys.schemas.guardrails import FrequencyCap, QuietHours, Topic
from journeys.schemas.journey import Channel, MessageContent, SendChannel
from journeys.schemas.pace import Pace

DeliveryStatus = Literal[
    "pending", "contending", "deferred", "queued", "sent", "suppressed", "failed", "unknown"
]
"""`pending`: reserved, being delivered (counts against caps); `contending`: waiting to be
arbitrated by priority for a contended cap slot; `deferred`: waiting for quiet hours or a
cap to free (the enrollment retries it); `queued`: granted, waiting for its paced slot (a
provider's ceiling, the journey's pace; it holds its cap slot); the rest are final.
`unknown`: the last attempt timed out, and whether the provider took it cannot be told."""
FINAL: tuple[str, ...] = ("sent", "suppressed", "failed", "unknown")


VARIANT_KEY = r"^(?:[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*(?:/[a-z_]+)?|[a-z_]+)$"


class TemplateContent(Schema):
    """A variant's fields; those left out come from the less specific content."""

    subject: str | None = None
    """The email subject (Jinja)."""
    title: str | None = None
    """The title of a push or in-app message (Jinja)."""
    body: str | None = None
    """The text (Jinja)."""
    html: str | None = None
    """An email's HTML part (Jinja, autoescaped)."""
    url: str | None = None
    """Where a tap or click leads."""


class Template(Schema):
    """A stored message template: sandboxed Jinja2 over profile, event, last_event, context.

    `variants` override fields per channel (`push`), per locale (`de`, `de-DE`) or both
    (`de/push`). A send uses the most specific that applies: the customer's full locale,
    then its language, each with the channel first, then the channel alone, then the base.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,79}$")
    """The template's id (a send's `template`)."""
    subject: str | None = None
    """The email subject (Jinja)."""
    title: str | None = None
    """The title of a push or in-app message (Jinja)."""
    body: str
    """The text (Jinja)."""
    html: str | None = None
    """An email's HTML part (Jinja, autoescaped)."""
    url: str | None = None
    """Where a tap or click leads."""
    variants: dict[Annotated[str, StringConstraints(pattern=VARIANT_KEY)], TemplateContent] = Field(
        default_factory=dict
    )
    """The same fields per locale, picked by the customer's locale."""

    def content(self, channel: str | None = None, locale: str | None = None) -> MessageContent:
        fields = self.model_dump(exclude={"id", "variants"})
        for key in reversed(variant_keys(channel, locale)):
            variant = self.variants.get(key)
            if variant is not None:
                fields.update(variant.model_dump(exclude_none=True))
        return MessageContent(**fields)

    def sources(self) -> dict[str, str]:
        """Every template source, by where it is (`body`, `variants.de.subject`)."""
        found = {k: v for k, v in self.model_dump(exclude={"id", "variants"}).items() if v}
        for key, variant in self.variants.items():
            for name, source in variant.model_dump(exclude_none=True).items():
                found[f"variants.{key}.{name}"] = source
        return found


def variant_keys(channel: str | None, locale: str | None) -> list[str]:
    """Variant keys from most to least specific."""
    keys: list[str] = []
    tags = [locale, locale.split("-")[0]] if locale else []
    for tag in dict.fromkeys(tags):
        if channel:
            keys.append(f"{tag}/{channel}")
        keys.append(tag)  # type: ignore[arg-type]
    if channel:
        keys.append(channel)
    return keys


class SendRequest(Schema):
    """One send, identified by `idempotency_key` (workflow, enrollment, step, visit).

    `at` is the enrollment's clock (the workflow's time, sped up by the journey's
    `time_scale` in test mode): caps and quiet hours are judged at `at`, so they hold in
    virtual time too. A send deferred past `deadline` is suppressed instead.
    """

    idempotency_key: str
    journey_id: str
    version: int
    step_id: str
    customer_id: str
    channel: SendChannel
    fallbacks: list[Channel] = Field(default_factory=list)
    template: str | None = None
    content: MessageContent | None = None
    variant: str | None = None
    """A content experiment's arm this message is (kept with the ledger's content)."""
    event: CustomerEvent
    last_event: CustomerEvent | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False
    topic: Topic = "marketing"
    priority: int = 0
    when_capped: Literal["suppress", "defer"] = "suppress"
    at: datetime | None = None
    deadline: datetime | None = None
    quiet_hours: QuietHours | None = None
    journey_caps: list[FrequencyCap] = Field(default_factory=list)
    abandon: bool = False
    """The enrollment ended while this send was deferred: settle it, send nothing."""
    tracking: bool = True
    """The journey's `tracking`: an email's opens and clicks are tracked."""
    best_time_within: timedelta | None = None
    """`send_at: best_time`, first attempt: defer (reason `best_time`) to the customer's
    usual active hour when it is within this and not now; at it, send."""
    pace: Pace | None = None
    """The journey's (or the step's) own pace, in `pace_bucket`."""
    pace_bucket: str | None = None
    slots: dict[str, datetime] = Field(default_factory=dict)
    """The tickets this send holds from when it was queued, by bucket: honoured, not
    booked again."""
    passed: list[str] = Field(default_factory=list)
    """The paced buckets whose turn this send already took (a journey's pace, before the
    provider's queued it)."""

    def contested(self) -> bool:
        """Whether another journey's send may race this one from the same cause: the
        event this send's timing comes from (the last one its enrollment waited for, else
        the one it entered on) reached another journey that sends marketing messages."""
        return (self.last_event or self.event).contested


class SendResult(Schema):
    status: Literal["sent", "suppressed", "failed", "deferred", "unknown"]
    reason: str | None = None
    delivery_id: int | None = None
    channel: str | None = None
    until: datetime | None = None
    """For `deferred`: when to try again (on the enrollment's clock)."""
    wait: timedelta | None = None
    """For a send queued for its paced slot (or told to wait by a provider's 429): how
    long until it (real time), instead of `until`."""
    slots: dict[str, datetime] = Field(default_factory=dict)
    """For a queued send: its tickets, to present when it comes back."""
    passed: list[str] = Field(default_factory=list)
    """For a queued send: the buckets whose turn it took already."""


class Delivery(Schema):
    """A ledger row as the API shows it."""

    id: int
    """The ledger entry's number."""
    idempotency_key: str
    """What makes the send exactly-once (journey, version, customer, step, run)."""
    customer_id: str
    """Whom it was for."""
    journey_id: str
    """The journey that sent it."""
    version: int
    """The journey version."""
    step_id: str
    """The send step."""
    channel: str
    """The channel used."""
    topic: str
    """`marketing` or `transactional`."""
    priority: int
    """The journey's priority (arbitration between rival sends)."""
    status: DeliveryStatus
    """`pending`, `queued`, `sent`, `suppressed`, `deferred`, `failed` or `unknown`."""
    reason: str | None
    """Why it was suppressed, deferred or failed."""
    attempts: int
    """Provider calls made."""
    reserved_at: datetime | None
    """When it took its frequency-cap slot."""
    until: datetime | None
    """For a deferred send: when it is tried again."""
    content: dict[str, Any] | None
    """What was rendered and sent."""
    provider_id: str | None = None
    """The provider's id for the message (Twilio's sid, FCM's name, ...)."""
    provider_status: str | None = None
    """The provider's latest status for it (delivered, undelivered, ...)."""
    created_at: datetime
    """When the entry was made."""
    updated_at: datetime
    """When it last changed."""


class InboxMessage(Schema):
    id: int
    """The message's id (for read and dismiss)."""
    customer_id: str
    """Whose inbox it is in."""
    journey_id: str
    """The journey that sent it."""
    step_id: str
    """The send step."""
    title: str | None
    """Its title."""
    body: str
    """Its text."""
    url: str | None
    """Where a tap leads."""
    created_at: datetime
    """When it arrived."""
    read_at: datetime | None = None
    """When the app showed it; null until then."""
    dismissed_at: datetime | None = None
    """When the customer dismissed it."""
