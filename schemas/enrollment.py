"""What a journey enrollment workflow takes, carries across continue-as-new, and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from journeys.schemas.base import Schema
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import JourneySpec

Status = Literal["active", "converted", "exited", "completed", "stopped"]
"""`stopped`: ended in Temporal outside the journey (terminated, timed out, failed or
cancelled there); the API says so, the workflow never does."""
Control = Literal["exit", "pause", "resume", "skip"]
"""Operator controls: each a validated workflow update of the same name."""
ENDED: tuple[str, ...] = ("converted", "exited", "completed")


def enrollment_workflow_id(journey_id: str, customer_id: str) -> str:
    """One enrollment per customer per journey at a time, addressable from any event."""
    return f"journey/{journey_id}/{customer_id}"


class EnrollmentOptions(Schema):
    """Per-enrollment knobs. `send_timeout` bounds one delivery attempt (seconds)."""

    dry_run: bool = False
    send_timeout: float = 30.0


class PathEntry(Schema):
    step: str
    """A step the enrollment took."""
    at: datetime
    """When."""
    outcome: str | None = None
    """How it left it (`sent`, `timeout`, `case 0`, ...)."""


class Carry(Schema):
    """Everything a continued-as-new run needs to pick up exactly where the last one was."""

    enrollment_id: str
    entered_at: datetime
    step: str
    path: list[PathEntry]
    context: dict[str, Any]
    visits: dict[str, int]
    seen: list[str]
    last_event: CustomerEvent | None
    steps_taken: int
    paused: bool = False


class EnrollmentInput(Schema):
    """The pinned journey version this enrollment runs, for its whole life."""

    journey: JourneySpec
    version: int
    customer_id: str
    trigger: CustomerEvent
    options: EnrollmentOptions = Field(default_factory=EnrollmentOptions)
    carry: Carry | None = None
    timezone: str | None = None
    """The customer's time zone when the enrollment began: its current details state waits
    in local time (None: UTC)."""
    patch_set: str | None = None
    """The patch set its starter's code takes (`workflows.journey.PATCH_SET`): the run
    takes those branches without recording a patch marker. None (a starter from before
    this field): the run asks `workflow.patched`, which records one."""


class Waiting(Schema):
    """What the enrollment is waiting for (None = time alone) and until when; `reason`
    says why a send waits (quiet hours, a frequency cap, the customer's best time)."""

    event: str | None = None
    """The event that would end the wait."""
    until: datetime
    """When the wait ends by itself."""
    reason: str | None = None
    """What for: a timer, an event, quiet hours, a cap, a pause."""


class EnrollmentState(Schema):
    """The answer to the `state` query and the enrollment API."""

    journey_id: str
    """The journey."""
    version: int
    """The version the enrollment runs."""
    customer_id: str
    """The customer."""
    status: Status
    """`active`, `completed`, `converted`, `exited` or `stopped`."""
    step: str | None
    """The step it is at; null once ended."""
    waiting: Waiting | None
    """What it waits for, and until when."""
    entered_at: datetime
    """When the customer entered."""
    ended_reason: str | None = None
    """Why it ended."""
    paused: bool = False
    """True while an operator holds it."""
    path: list[PathEntry]
    """The latest steps (up to 200; `steps_taken` counts them all)."""
    context: dict[str, Any]
    """Values steps stored for later steps (decisions, action results)."""
    steps_taken: int = 0
    """Steps entered since enrollment, across continue-as-new runs."""


class MigrateRequest(Schema):
    """Move an enrollment to a newer version of its journey. Its position maps by step
    id: `mapping` renames (old step -> new step); a step it leaves out keeps its id."""

    journey: JourneySpec
    version: int
    mapping: dict[str, str] = Field(default_factory=dict)
    reason: str = Field(default="operator", max_length=200)


class MigrationPlan(Schema):
    """What a migration does (or, from a dry run, would do), in data and in words."""

    customer_id: str
    """The customer."""
    from_version: int
    """The version it runs now."""
    to_version: int
    """The version it moves to."""
    from_step: str
    """The step it is at now."""
    to_step: str
    """The step it goes on from there."""
    effect: str
    """What the move does to a wait in progress."""


class ControlRequest(Schema):
    """An operator's pause, resume, skip or exit, with why (kept in the path)."""

    reason: str = Field(default="operator", max_length=200)
    """Why: kept in the enrollment's path and the audit log."""
