"""The customer profile: what journeys may read to branch, address and personalise."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.guardrails import Topic
from schemas.journey import Channel

ALL_CHANNELS = "all"


class Profile(BaseModel):
    """A customer's attributes, time zone, addresses, consent and activity.

    `consent` is per channel, for every topic: a channel set to false is never used, not
    even for transactional messages (opt-out default: a missing channel means allowed).
    `unsubscribed` lists the channels (or "all") the customer left marketing on; those
    still carry transactional messages. `active_hours` counts the customer's events per UTC
    hour of day, for send-time optimisation; the ingestion path maintains it.
    """

    customer_id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str = "UTC"
    email: str | None = None
    phone: str | None = None
    push_tokens: list[str] = Field(default_factory=list)
    consent: dict[Channel, bool] = Field(default_factory=dict)
    unsubscribed: list[Channel | Literal["all"]] = Field(default_factory=list)
    preferred_channel: Channel | None = None
    active_hours: list[int] = Field(default_factory=lambda: [0] * 24)
    last_seen_at: datetime | None = None

    def refusal(self, channel: str, topic: Topic) -> Literal["no_consent", "unsubscribed"] | None:
        """Why this channel may not carry this topic to the customer, or None."""
        if self.consent.get(channel, True) is False:  # type: ignore[call-overload]
            return "no_consent"
        if topic == "marketing" and {ALL_CHANNELS, channel} & set(self.unsubscribed):
            return "unsubscribed"
        return None

    def reachable(self, candidates: list[str], topic: Topic) -> tuple[str | None, str]:
        """The first candidate channel with consent and an address, or None and why the
        first candidate was refused."""
        refusals: list[str] = []
        for channel in candidates:
            refusal = self.refusal(channel, topic) or (
                None if self.address(channel) else "no_address"
            )
            if refusal is None:
                return channel, ""
            refusals.append(refusal)
        return None, refusals[0] if refusals else "no_address"

    def address(self, channel: str) -> str | None:
        """Where the customer is reached on `channel`, or None."""
        if channel == "email":
            return self.email
        if channel in ("sms", "whatsapp"):
            return self.phone
        if channel == "push":
            return self.push_tokens[0] if self.push_tokens else None
        if channel in ("in_app", "webhook"):
            return self.customer_id
        return None

    def scope(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"active_hours"})
