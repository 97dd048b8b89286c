"""Customer events as they enter the runner and travel to enrollments as signals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from journeys.schemas.base import Schema
from journeys.schemas.wire import Timestamp

RESERVED_PREFIX = "message."
"""Event names of this product's own: a message's reactions (`message.opened`, ...), which
only the tracking routes and provider callbacks make."""


def sent_by_caller(name: str) -> str:
    """An event name a caller may send: not a reaction's, so no key can forge an open."""
    if name.startswith(RESERVED_PREFIX):
        raise ValueError(f"names starting {RESERVED_PREFIX!r} are reactions this API makes")
    return name


CUSTOMER_ID = r"""^[^\s\x00-\x1f\x7f-\x9f/\\"']+$"""
"""Customer ids: 1 to 200 characters, none of them whitespace, a control character, `/`,
`\\`, `"` or `'`: so every id is one path segment of the API and a plain literal in a
Temporal visibility query, hence readable and erasable. Refused everywhere with a 4xx."""


class CustomerEvent(Schema):
    """One thing a customer did. `message_id` makes redelivery harmless everywhere."""

    customer_id: str = Field(min_length=1, max_length=200, pattern=CUSTOMER_ID)
    name: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: Timestamp
    message_id: str = Field(min_length=1, max_length=200)
    contested: bool = True
    """Whether the router gave this event to more than one journey that sends marketing
    messages: their sends may race for the customer's cap slots from this one cause, so
    they are arbitrated by priority. True for any event it did not route (an audience's
    entry, an event from before this field)."""

    @classmethod
    def create(
        cls,
        customer_id: str,
        name: str,
        properties: dict[str, Any] | None = None,
        *,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> CustomerEvent:
        """A new event as a producer makes it: stamped now (a naive time is UTC) with a
        fresh `message_id` unless given. Never called in workflows (clock, randomness)."""
        stamp = timestamp or datetime.now(UTC)
        return cls(
            customer_id=customer_id,
            name=name,
            properties=properties or {},
            timestamp=stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC),
            message_id=message_id or str(uuid.uuid4()),
        )

    def scope(self) -> dict[str, Any]:
        """The event as predicates see it: its properties plus name and timestamp."""
        return {**self.properties, "name": self.name, "timestamp": self.timestamp.isoformat()}
