"""Request and response bodies of the HTTP API (the tables live in `storage/`)."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import Field, StrictBool, field_validator

from schemas.base import Schema
from schemas.delivery import TemplateContent
from schemas.events import CUSTOMER_ID, CustomerEvent
from schemas.journey import Channel, JourneySpec
from schemas.profile import EMAIL, PHONE_MAX, Location
from schemas.wire import Timestamp

_ZONES = available_timezones()


class EventIn(Schema):
    """One event. `message_id` makes retries safe; it is generated when missing."""

    customer_id: str = Field(min_length=1, max_length=200, pattern=CUSTOMER_ID)
    name: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: Timestamp | None = None
    message_id: str | None = Field(default=None, min_length=1, max_length=200)

    def to_event(self) -> CustomerEvent:
        return CustomerEvent.create(
            self.customer_id,
            self.name,
            self.properties,
            timestamp=self.timestamp,
            message_id=self.message_id,
        )


class EventBatchIn(Schema):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class RoutedOut(Schema):
    message_id: str
    entered: list[str]
    signalled: list[str]
    not_reentered: list[str]
    duplicate: bool


class EventsAccepted(Schema):
    accepted: int
    results: list[RoutedOut]


class Published(Schema):
    id: str
    version: int


class JourneySummary(Schema):
    id: str
    name: str
    version: int
    entry_event: str | None
    steps: int


class JourneyVersionOut(Schema):
    id: str
    version: int
    versions: list[int]
    spec: JourneySpec


class ProfileIn(Schema):
    """A profile as written over the API; the path names the customer."""

    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str = "UTC"
    locale: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    lifecycle_stage: str | None = Field(default=None, max_length=80)
    location: Location | None = None
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    push_tokens: list[str] = Field(default_factory=list)
    consent: dict[Channel, StrictBool] = Field(default_factory=dict)
    unsubscribed: list[Channel | Literal["all"]] = Field(default_factory=list)
    preferred_channel: Channel | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _ZONES and value != "UTC":
            raise ValueError("unknown time zone (use an IANA name like Europe/Berlin)")
        ZoneInfo(value)
        return value


class TemplateIn(Schema):
    """A template as written over the API; `variants` by channel, locale or both
    (`push`, `de`, `de/push`)."""

    subject: str | None = None
    title: str | None = None
    body: str
    html: str | None = None
    url: str | None = None
    variants: dict[str, TemplateContent] = Field(default_factory=dict)


class UnsubscribeIn(Schema):
    """Withdraw marketing consent on one channel, or on every channel when omitted."""

    channel: Channel | None = None
