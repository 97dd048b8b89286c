"""Request and response bodies of the HTTP API (the tables live in `storage/`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StrictBool

from journeys.schemas.base import Schema
from journeys.schemas.delivery import TemplateContent
from journeys.schemas.events import CUSTOMER_ID, CustomerEvent, sent_by_caller
from journeys.schemas.journey import Channel, JourneySpec
from journeys.schemas.profile import EMAIL, PHONE_MAX, Location
from journeys.schemas.wire import Timestamp
from journeys.schemas.zones import TimeZone


class EventIn(Schema):
    """One event. `message_id` makes retries safe; it is generated when missing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "golfer-42",
                    "name": "registration.completed",
                    "properties": {"source": "ad", "plan": "trial"},
                    "timestamp": "2026-11-29T08:00:00Z",
                    "message_id": "evt-1",
                }
            ]
        }
    )

    customer_id: str = Field(min_length=1, max_length=200, pattern=CUSTOMER_ID)
    """Whose event it is: your id for the customer (1 to 200 printable characters; no
    `/`, quotes or spaces)."""
    name: Annotated[str, AfterValidator(sent_by_caller)] = Field(min_length=1, max_length=200)
    """What happened, e.g. `registration.completed`: journeys enter, wait and convert on
    names (`message.*` are the reactions this API makes itself)."""
    properties: dict[str, Any] = Field(default_factory=dict)
    """Details of the event; predicates and templates read them as `event.properties.*`."""
    timestamp: Timestamp | None = None
    """When it happened (ISO 8601, with a zone); default: when it arrived."""
    message_id: str | None = Field(default=None, min_length=1, max_length=200)
    """Your id for this event: a retry with the same id changes nothing; default: a fresh one."""

    def to_event(self) -> CustomerEvent:
        return CustomerEvent.create(
            self.customer_id,
            self.name,
            self.properties,
            timestamp=self.timestamp,
            message_id=self.message_id,
        )


class EventBatchIn(Schema):
    """Several events in one request."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {"customer_id": "golfer-42", "name": "bag.club_added", "message_id": "e2"},
                        {"customer_id": "golfer-7", "name": "registration.completed"},
                    ]
                }
            ]
        }
    )
    events: list[EventIn] = Field(min_length=1, max_length=1000)
    """Up to 1,000 events, routed in order per customer."""


class RoutedOut(Schema):
    message_id: str
    """The event's message id."""
    entered: list[str]
    """Journeys the customer entered (or was already in) with it."""
    signalled: list[str]
    """Running enrollments that received it."""
    not_reentered: list[str]
    """Journeys it would have entered, but they do not allow re-entry."""
    duplicate: bool
    """True when this message id was routed before: nothing happened again."""


class EventsAccepted(Schema):
    accepted: int
    """Events taken (each once, by `message_id`)."""
    results: list[RoutedOut]
    """What each event did, in the order sent."""


class Published(Schema):
    id: str
    """The journey's id."""
    version: int
    """The version this publish made (or found, for a retry with the same Idempotency-Key)."""


class JourneySummary(Schema):
    id: str
    """The journey's id."""
    name: str
    """Its name."""
    version: int
    """Its latest version."""
    entry_event: str | None
    """The event that enters customers (none for an audience entry)."""
    steps: int
    """How many steps the latest version has."""


class JourneyVersionOut(Schema):
    id: str
    """The journey's id."""
    version: int
    """This version's number."""
    versions: list[int]
    """Every version of the journey, oldest first."""
    spec: JourneySpec
    """The journey as published."""


class ProfileIn(Schema):
    """A profile as written over the API; the path names the customer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ana@example.com",
                    "phone": "+4915112345678",
                    "timezone": "Europe/Berlin",
                    "locale": "de-DE",
                    "push_tokens": ["device-token-1"],
                    "attributes": {"first_name": "Ana", "tier": "gold"},
                    "consent": {"sms": False},
                }
            ]
        }
    )

    attributes: dict[str, Any] = Field(default_factory=dict)
    """Anything about the customer; predicates and templates read `profile.attributes.*`."""
    timezone: TimeZone = "UTC"
    """IANA time zone (`Europe/Berlin`): local-time waits and quiet hours use it."""
    locale: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    """BCP 47 language tag (`de-DE`): picks template variants."""
    lifecycle_stage: str | None = Field(default=None, max_length=80)
    """Where the customer is in their lifecycle (`trial`, `active`, ...)."""
    location: Location | None = None
    """The last known location (`geofence` predicates)."""
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL)
    """The email address sends go to."""
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    """The phone number SMS and WhatsApp sends go to (E.164)."""
    push_tokens: list[str] = Field(default_factory=list)
    """The customer's devices, for push sends."""
    consent: dict[Channel, StrictBool] = Field(default_factory=dict)
    """Per channel: false means never use it, not even for transactional messages."""
    unsubscribed: list[Channel | Literal["all"]] = Field(default_factory=list)
    """Channels (or `all`) the customer left marketing on."""
    preferred_channel: Channel | None = None
    """The channel a `best_channel` send tries first."""


class TemplateIn(Schema):
    """A template as written over the API; `variants` by channel, locale or both
    (`push`, `de`, `de/push`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "subject": "{{ profile.attributes.first_name | default('Golfer') }}, your bag",
                    "body": "Add your clubs to unlock shot tracking.",
                    "url": "golfapp://bag",
                    "variants": {
                        "de": {
                            "subject": "Deine Tasche wartet",
                            "body": "Füge deine Schläger hinzu.",
                        }
                    },
                }
            ]
        }
    )

    subject: str | None = None
    """The email subject (Jinja)."""
    title: str | None = None
    """The title of a push or in-app message (Jinja)."""
    body: str
    """The text (Jinja): `{{ profile.attributes.first_name }}`, `{{ event.properties.x }}`."""
    html: str | None = None
    """An email's HTML part (Jinja, autoescaped)."""
    url: str | None = None
    """Where a tap or click leads (push, in-app)."""
    variants: dict[str, TemplateContent] = Field(default_factory=dict)
    """The same fields per locale (`de`, `pt-BR`), picked by the customer's locale."""


class UnsubscribeIn(Schema):
    """Withdraw marketing consent on one channel, or on every channel when omitted."""

    channel: Channel | None = None
    """Only this channel; default: marketing on every channel."""
