"""Sends and their outcome as recorded in the delivery ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.events import CustomerEvent
from schemas.journey import Channel, MessageContent

DeliveryStatus = Literal["pending", "sent", "suppressed", "failed"]


class Template(BaseModel):
    """A stored message template; fields are sandboxed Jinja2 over profile, event, context."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,79}$")
    subject: str | None = None
    title: str | None = None
    body: str
    html: str | None = None
    url: str | None = None

    def content(self) -> MessageContent:
        return MessageContent(**self.model_dump(exclude={"id"}))


class SendRequest(BaseModel):
    """One send, identified by `idempotency_key` (workflow, enrollment, step, visit)."""

    idempotency_key: str
    journey_id: str
    version: int
    step_id: str
    customer_id: str
    channel: Channel
    template: str | None = None
    content: MessageContent | None = None
    event: CustomerEvent
    last_event: CustomerEvent | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False


class SendResult(BaseModel):
    status: Literal["sent", "suppressed", "failed"]
    reason: str | None = None
    delivery_id: int | None = None


class Delivery(BaseModel):
    """A ledger row as the API shows it."""

    id: int
    idempotency_key: str
    customer_id: str
    journey_id: str
    version: int
    step_id: str
    channel: Channel
    status: DeliveryStatus
    reason: str | None
    attempts: int
    content: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class InboxMessage(BaseModel):
    id: int
    customer_id: str
    journey_id: str
    step_id: str
    title: str | None
    body: str
    url: str | None
    created_at: datetime
