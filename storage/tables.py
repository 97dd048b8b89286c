"""SQLModel tables. API and workflow payloads are the pydantic models in `schemas/`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class JourneyVersionRow(SQLModel, table=True):
    __tablename__ = "journey_versions"
    journey_id: str = Field(primary_key=True, max_length=80)
    version: int = Field(primary_key=True)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    published_at: datetime = Field(default_factory=utcnow)


class PublishKeyRow(SQLModel, table=True):
    """The version a publish with an `Idempotency-Key` made, so its retry makes no other."""

    __tablename__ = "publish_keys"
    journey_id: str = Field(primary_key=True, max_length=80)
    key: str = Field(primary_key=True, max_length=200)
    version: int


class TemplateRow(SQLModel, table=True):
    __tablename__ = "templates"
    id: str = Field(primary_key=True, max_length=80)
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class ErasureRow(SQLModel, table=True):
    """A customer being erased: their events are refused (503, retry) until it is done,
    so no event can start an enrollment or rebuild a profile halfway through."""

    __tablename__ = "erasures"
    customer_id: str = Field(primary_key=True, max_length=200)
    started_at: datetime = Field(default_factory=utcnow)


class ProfileRow(SQLModel, table=True):
    __tablename__ = "profiles"
    customer_id: str = Field(primary_key=True, max_length=200)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class AliasRow(SQLModel, table=True):
    """An anonymous id merged into a known customer (Segment's `alias`, or an `identify`
    carrying both ids): events sent with it are routed to the customer."""

    __tablename__ = "aliases"
    anonymous_id: str = Field(primary_key=True, max_length=200)
    customer_id: str = Field(index=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class GroupRow(SQLModel, table=True):
    """A Segment group (an account, a company) and its traits, which branch predicates
    read as `group.*` for the group a customer joined last."""

    __tablename__ = "groups"
    group_id: str = Field(primary_key=True, max_length=200)
    traits: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryRow(SQLModel, table=True):
    """The delivery ledger: the unique idempotency key is what makes sends exactly-once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_deliveries_key"),
        Index("ix_deliveries_caps", "customer_id", "status", "reserved_at"),
        Index("ix_deliveries_status", "status", "updated_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=600)
    customer_id: str = Field(index=True, max_length=200)
    journey_id: str = Field(max_length=80)
    version: int
    step_id: str = Field(max_length=80)
    channel: str = Field(max_length=20)
    topic: str = Field(default="marketing", max_length=20)
    priority: int = 0
    status: str = Field(max_length=20)
    reason: str | None = None
    reserved_at: datetime | None = None
    """When the send took its cap slot, on the enrollment's clock."""
    until: datetime | None = None
    """For a deferred send: when it is tried again."""
    content: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    provider_id: str | None = Field(default=None, index=True, max_length=200)
    """The provider's id for the message (Twilio SID, FCM name, SMTP Message-ID)."""
    provider_status: str | None = Field(default=None, max_length=200)
    """The provider's latest word on it (Twilio's status callbacks update it)."""
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class InboxRow(SQLModel, table=True):
    """In-app messages; `delivery_key` ties each to exactly one ledger entry."""

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("delivery_key", name="uq_inbox_delivery"),)
    id: int | None = Field(default=None, primary_key=True)
    delivery_key: str = Field(max_length=600)
    customer_id: str = Field(index=True, max_length=200)
    journey_id: str = Field(max_length=80)
    step_id: str = Field(max_length=80)
    title: str | None = None
    body: str = ""
    url: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None
    dismissed_at: datetime | None = None


class OfferRow(SQLModel, table=True):
    """The decisioning catalogue: an offer stored whole as JSON."""

    __tablename__ = "offers"
    id: str = Field(primary_key=True, max_length=80)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class OfferGrantRow(SQLModel, table=True):
    """How often an offer was chosen for a customer: what offer caps count."""

    __tablename__ = "offer_grants"
    offer_id: str = Field(primary_key=True, max_length=80)
    customer_id: str = Field(primary_key=True, max_length=200)
    count: int = 0


class DecisionRow(SQLModel, table=True):
    """A decision by its idempotency key, so a retried request gets the first answer."""

    __tablename__ = "decisions"
    key: str = Field(primary_key=True, max_length=600)
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class AcceptedEventRow(SQLModel, table=True):
    """Every event message id ever accepted, and when it reached Temporal: a retried
    request (same message id) after `routed_at` changes nothing; before it, it is routed
    again (enrollments drop the duplicate signal)."""

    __tablename__ = "accepted_events"
    message_id: str = Field(primary_key=True, max_length=200)
    received_at: datetime = Field(default_factory=utcnow)
    routed_at: datetime | None = None


class RecordedEventRow(SQLModel, table=True):
    """The event log: every event accepted, as it was (name, properties, when), kept for
    `Settings.events_kept` so a backtest can replay the past. Erased with its customer."""

    __tablename__ = "recorded_events"
    __table_args__ = (Index("ix_recorded_events_at", "timestamp", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True, max_length=200)
    name: str = Field(max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timestamp: datetime
    """When it happened (the producer's clock)."""
    message_id: str = Field(max_length=200)
    received_at: datetime = Field(default_factory=utcnow)


class ReactionRow(SQLModel, table=True):
    """A message's reactions of one kind (a machine's apart): the first became an event,
    the repeats are counted here. Erased with its customer."""

    __tablename__ = "reactions"
    __table_args__ = (
        UniqueConstraint("delivery_id", "reaction", "machine", name="uq_reactions_kind"),
        Index("ix_reactions_step", "journey_id", "version", "step_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int
    """The ledger row of the message."""
    customer_id: str = Field(index=True, max_length=200)
    journey_id: str = Field(max_length=80)
    version: int
    step_id: str = Field(max_length=80)
    channel: str = Field(max_length=20)
    reaction: str = Field(max_length=20)
    machine: bool = False
    count: int = 1
    first_at: datetime = Field(default_factory=utcnow)
    last_at: datetime = Field(default_factory=utcnow)


class SuppressionRow(SQLModel, table=True):
    """An address on the suppression list (`schemas.suppression`). A row that counts soft
    bounces is not yet `active`. Erased with the customer it was found on."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_suppressions_address"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=20)
    address: str = Field(max_length=320)
    active: bool = True
    reason: str = Field(max_length=20)
    source: str = Field(max_length=20)
    detail: str | None = Field(default=None, max_length=500)
    soft_bounces: int = 0
    customer_id: str | None = Field(default=None, index=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ProviderCallbackRow(SQLModel, table=True):
    """A provider's callback event, once: a replay of its id changes nothing. Those about a
    message this deployment does not know (`outcome` `unknown_message`) are kept for the
    operator (`GET /v1/providers/callbacks`). Forgotten after `event_ids_kept`."""

    __tablename__ = "provider_callbacks"
    __table_args__ = (UniqueConstraint("source", "event_id", name="uq_provider_callbacks_event"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=20)
    event_id: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    delivery_id: int | None = None
    outcome: str = Field(max_length=40)
    received_at: datetime = Field(default_factory=utcnow, index=True)


class AudienceMemberRow(SQLModel, table=True):
    """One customer of an uploaded audience list."""

    __tablename__ = "audience_members"
    audience_id: str = Field(primary_key=True, max_length=80)
    customer_id: str = Field(primary_key=True, max_length=200)


class ApiKeyRow(SQLModel, table=True):
    """An API key: its SHA-256 only, never the token."""

    __tablename__ = "api_keys"
    id: str = Field(primary_key=True, max_length=20)
    name: str = Field(max_length=80)
    scopes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class AuditRow(SQLModel, table=True):
    """One change made through the API, by key."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    key_id: str = Field(max_length=20)
    key_name: str = Field(max_length=80)
    action: str = Field(max_length=200)
    target: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: int
    client: str | None = Field(default=None, max_length=64)


class SplitDecisionRow(SQLModel, table=True):
    """An operator's word on a bandit split (`schemas.experiments.Decision`): its frozen
    weights, or its winner. Released, the row goes."""

    __tablename__ = "split_decisions"
    journey_id: str = Field(primary_key=True, max_length=80)
    split_id: str = Field(primary_key=True, max_length=80)
    action: str = Field(max_length=10)
    weights: list[float] | None = Field(default=None, sa_column=Column(JSON))
    arm: str | None = Field(default=None, max_length=80)
    reason: str = Field(max_length=200)
    decided_at: datetime = Field(default_factory=utcnow)


class PaceRow(SQLModel, table=True):
    """A paced bucket (a provider account, an SMS number, a journey): when its next send
    may go (`tat`, the GCRA's theoretical arrival time) and the ceiling an operator set at
    run time, which wins over the settings' (`schemas.pace`)."""

    __tablename__ = "pace_buckets"
    bucket: str = Field(primary_key=True, max_length=200)
    tat: datetime | None = None
    tail: datetime | None = None
    """Where the bucket's queue of tickets ends."""
    tails: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Where it ends for a send of each priority (ISO times by priority; schemas.pace)."""
    per_second: float | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class DeviceSendRow(SQLModel, table=True):
    """A device a push message was accepted for: a retry of the send skips it."""

    __tablename__ = "device_sends"
    delivery_key: str = Field(primary_key=True, max_length=600)
    token_hash: str = Field(primary_key=True, max_length=64)
    message_name: str = Field(default="", max_length=300)
