"""The customer profile: what journeys may read to branch, address and personalise."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, StrictFloat

from journeys.schemas import suppression
from journeys.schemas.base import Schema
from journeys.schemas.guardrails import Topic
from journeys.schemas.journey import Channel
from journeys.schemas.wire import Timestamp

ALL_CHANNELS = "all"
SEEN_KEPT = 100
"""How many event names `seen` remembers (the most recent)."""


class Location(Schema):
    """The last known location: from an event's `context.location` or a geofence event."""

    lat: StrictFloat = Field(ge=-90, le=90)
    """Latitude."""
    lon: StrictFloat = Field(ge=-180, le=180)
    """Longitude."""
    at: Timestamp | None = None
    """When the customer was there."""
    place: str | None = None
    """A named place (a store id)."""


EMAIL = r"^[^@\s]+@[^@\s]+$"
"""An email address, as profiles take it (over the API and from Segment's identify)."""
PHONE_MAX = 32

CONTACT = frozenset({"email", "phone", "push_tokens", "location"})
"""Profile fields that address or locate the customer: never in a workflow's history."""


class Profile(Schema):
    """A customer's attributes, time zone, addresses, consent and activity.

    `consent` is per channel, for every topic: a channel set to false is never used, not
    even for transactional messages (opt-out default: a missing channel means allowed).
    `unsubscribed` lists the channels (or "all") the customer left marketing on; those
    still carry transactional messages. `active_hours` counts the customer's events per UTC
    hour of day, for send-time optimisation; `seen` the last time of each event name and
    `location` the last known location: the ingestion path maintains those.
    """

    customer_id: str
    """Your id for the customer."""
    attributes: dict[str, Any] = Field(default_factory=dict)
    """Anything about the customer; predicates and templates read `profile.attributes.*`."""
    timezone: str = "UTC"
    """IANA time zone: local-time waits and quiet hours use it."""
    locale: str | None = None
    """BCP 47 (`de-DE`, `id`): picks template variants."""
    lifecycle_stage: str | None = None
    """Where the customer is in their lifecycle."""
    email: str | None = None
    """The email address sends go to."""
    phone: str | None = None
    """The phone number SMS and WhatsApp sends go to."""
    push_tokens: list[str] = Field(default_factory=list)
    """The customer's devices, for push sends."""
    consent: dict[Channel, bool] = Field(default_factory=dict)
    """Per channel: false means never use it."""
    unsubscribed: list[Channel | Literal["all"]] = Field(default_factory=list)
    """Channels (or `all`) the customer left marketing on."""
    preferred_channel: Channel | None = None
    """The channel a `best_channel` send tries first."""
    active_hours: list[int] = Field(default_factory=lambda: [0] * 24)
    """Events per UTC hour of day (send-time optimisation)."""
    last_seen_at: datetime | None = None
    """The customer's latest event."""
    seen: dict[str, datetime] = Field(default_factory=dict)
    """The last time of each event name (`seen within` predicates)."""
    location: Location | None = None
    """The last known location."""
    group_id: str | None = None
    """The group (Segment `group` call: an account, a company) the customer joined last;
    branch predicates read its traits as `group.*`."""

    def refusal(self, channel: str, topic: Topic) -> Literal["no_consent", "unsubscribed"] | None:
        """Why this channel may not carry this topic to the customer, or None."""
        if self.consent.get(channel, True) is False:  # type: ignore[call-overload]
            return "no_consent"
        if topic == "marketing" and {ALL_CHANNELS, channel} & set(self.unsubscribed):
            return "unsubscribed"
        return None

    def reachable(
        self, candidates: list[str], topic: Topic, suppressed: Mapping[str, str] | None = None
    ) -> tuple[str | None, str]:
        """The first candidate channel with consent and an address (not on the suppression
        list: `suppressed` names its channels and why), or None and why the first
        candidate was refused."""
        refusals: list[str] = []
        for channel in candidates:
            refusal: str | None = self.refusal(channel, topic) or (
                None if self.address(channel) else "no_address"
            )
            if refusal is None and suppressed and channel in suppressed:
                refusal = suppression.refusal(suppressed[channel])
            if refusal is None:
                return channel, ""
            refusals.append(refusal)
        return None, refusals[0] if refusals else "no_address"

    def address(self, channel: str) -> str | None:
        """Where the customer is reached on `channel`, or None."""
        found = self.addresses(channel)
        return found[0] if found else None

    def addresses(self, channel: str) -> list[str]:
        """Every address on `channel` (push: each device token)."""
        if channel == "push":
            return list(self.push_tokens)
        one = {
            "email": self.email,
            "sms": self.phone,
            "whatsapp": self.phone,
            "in_app": self.customer_id,
            "webhook": self.customer_id,
        }.get(channel)
        return [one] if one else []

    def observed(self, event: Any) -> None:
        """Learn from one event (a `CustomerEvent`): last seen per name, and the location
        when its properties carry numeric `lat` and `lon`."""
        previous = self.seen.get(event.name)
        if previous is None or event.timestamp > previous:
            self.seen[event.name] = event.timestamp
            if len(self.seen) > SEEN_KEPT:
                oldest = min(self.seen, key=lambda n: self.seen[n])
                del self.seen[oldest]
        p = event.properties
        if isinstance(p.get("lat"), int | float) and isinstance(p.get("lon"), int | float):
            place = p.get("place") or p.get("store_id")
            if (
                self.location is None
                or self.location.at is None
                or event.timestamp >= self.location.at
            ):
                self.location = Location(
                    lat=p["lat"],
                    lon=p["lon"],
                    at=event.timestamp,
                    place=str(place) if place else None,
                )

    def absorb(self, anonymous: Profile) -> Profile:
        """This profile with an anonymous visitor's merged in (identity resolution): what
        this one says wins, the visitor's fills the gaps; activity adds up; an opt-out on
        either side stays (a channel without consent, an unsubscribe)."""
        mine = self.model_dump()
        theirs = anonymous.model_dump()
        merged = {k: mine[k] if mine[k] not in (None, "UTC") else theirs[k] for k in mine}
        merged["customer_id"] = self.customer_id
        merged["attributes"] = {**anonymous.attributes, **self.attributes}
        merged["push_tokens"] = list(dict.fromkeys(self.push_tokens + anonymous.push_tokens))
        channels = {**anonymous.consent, **self.consent}
        merged["consent"] = {
            c: self.consent.get(c, True) and anonymous.consent.get(c, True) for c in channels
        }
        merged["unsubscribed"] = list(dict.fromkeys(self.unsubscribed + anonymous.unsubscribed))
        merged["active_hours"] = [
            a + b for a, b in zip(self.active_hours, anonymous.active_hours, strict=True)
        ]
        seen = dict(anonymous.seen)
        for name, at in self.seen.items():
            seen[name] = max(at, seen.get(name, at))
        merged["seen"] = seen
        times = [t for t in (self.last_seen_at, anonymous.last_seen_at) if t is not None]
        merged["last_seen_at"] = max(times) if times else None
        return Profile.model_validate(merged)

    def scope(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"active_hours"})

    def view(self, fields: Iterable[str] | None) -> dict[str, Any]:
        """Only what predicates over `fields` (`profile.attributes.tier`, ...) read, in
        the shape of `scope()`: what a workflow may hold (and its history keep) of the
        profile. Without fields, everything but addresses."""
        scope = self.scope()
        if fields is None:
            return {k: v for k, v in scope.items() if k not in CONTACT}
        view: dict[str, Any] = {}
        for field in fields:
            path = field.split(".")[1:] if field.startswith("profile.") else []
            source, target = scope, view
            for i, part in enumerate(path):
                if not isinstance(source, dict) or part not in source:
                    break
                if i == len(path) - 1 or not isinstance(source[part], dict):
                    target[part] = source[part]
                    break
                source, target = source[part], target.setdefault(part, {})
        return view
