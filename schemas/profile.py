"""The customer profile: what journeys may read to branch, address and personalise."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schemas.journey import Channel


class Profile(BaseModel):
    """A customer's attributes, time zone, addresses and per-channel consent.

    Consent is opt-out by default (a missing channel means allowed); a channel set to
    false is never used.
    """

    customer_id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    timezone: str = "UTC"
    email: str | None = None
    phone: str | None = None
    push_tokens: list[str] = Field(default_factory=list)
    consent: dict[Channel, bool] = Field(default_factory=dict)

    def allows(self, channel: Channel) -> bool:
        return self.consent.get(channel, True)

    def scope(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
