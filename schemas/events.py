"""Customer events as they enter the runner and travel to enrollments as signals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class CustomerEvent(BaseModel):
    """One thing a customer did. `message_id` makes redelivery harmless everywhere."""

    customer_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime
    message_id: str = Field(min_length=1, max_length=200)

    def scope(self) -> dict[str, Any]:
        """The event as predicates see it: its properties plus name and timestamp."""
        return {**self.properties, "name": self.name, "timestamp": self.timestamp.isoformat()}
