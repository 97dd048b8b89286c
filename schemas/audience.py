"""Audience entry runs: their input, progress and the activities' payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from journeys.schemas.base import Schema
from journeys.schemas.enrollment import EnrollmentOptions
from journeys.schemas.journey import Audience, JourneySpec

AUDIENCE_EVENT = "audience.entered"
"""The trigger event of an enrollment started by an audience run (`properties.run`)."""


def audience_run_id(journey_id: str, run: str) -> str:
    return f"audience/{journey_id}/{run}"


class AudienceProgress(Schema):
    """Where a run is: `done` of `total` customers handled, of which `entered` started an
    enrollment and `already` had one (or may not re-enter)."""

    journey_id: str
    """The journey enrolling its audience."""
    version: int
    """The version enrolled into."""
    status: Literal["counting", "running", "completed", "cancelled"] = "counting"
    """`running`, `completed` or `cancelled`."""
    total: int | None = None
    """Customers in the audience (known once counted)."""
    done: int = 0
    """Customers handled so far."""
    entered: int = 0
    """Customers enrolled by this run."""
    already: int = 0
    """Customers who were enrolled already."""
    cursor: str | None = None
    """Where the run is in the audience (it resumes from here)."""
    started_at: datetime
    """When the run started."""
    updated_at: datetime
    """When this progress was recorded."""
    rate_per_second: float = 0.0
    """Enrollments per second, lately."""
    eta_seconds: float | None = None
    """Seconds until done at that rate."""

    def measured(self, now: datetime) -> AudienceProgress:
        """With rate (customers/s since the start) and ETA as of `now`."""
        elapsed = (now - self.started_at).total_seconds()
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total or 0) - self.done
        eta = left / rate if rate > 0 and self.total is not None else None
        if self.status == "completed":
            eta = 0.0
        return self.model_copy(update={"rate_per_second": rate, "eta_seconds": eta})


class AudienceRunInput(Schema):
    journey: JourneySpec
    version: int
    rate_per_second: float = Field(gt=0)
    page_size: int = Field(default=1000, ge=1, le=10_000)
    options: EnrollmentOptions = Field(default_factory=EnrollmentOptions)
    progress: AudienceProgress | None = None
    """Carried across continue-as-new."""


class AudiencePageRequest(Schema):
    audience: Audience
    after: str | None
    limit: int


class AudiencePage(Schema):
    customer_ids: list[str]
    next: str | None
    """The cursor for the next page; None at the end."""


class EnrollRequest(Schema):
    journey: JourneySpec
    version: int
    run: str
    """The run's workflow id: with the customer id, each trigger's message id."""
    customer_ids: list[str]
    rate_per_second: float
    options: EnrollmentOptions


class Enrolled(Schema):
    entered: int = 0
    already: int = 0


class AudienceRunOut(Schema):
    run: str
    """The run's name."""
    workflow_id: str
    """Its workflow, in the Temporal UI."""
    progress: AudienceProgress
    """How far it is."""
