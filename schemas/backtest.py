"""A backtest's request and report: what a journey version would have done over recorded
events, per step and per customer, and the difference between two versions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from journeys.schemas.base import Schema
from journeys.schemas.events import CUSTOMER_ID
from journeys.schemas.journey import SLUG, JourneySpec

MAX_RANGE = timedelta(days=400)
CustomerIdText = Annotated[str, Field(min_length=1, max_length=200, pattern=CUSTOMER_ID)]


class BacktestRequest(Schema):
    """Backtest `journey` (a draft: nothing is published) over the events recorded in
    [`since`, `until`), optionally against another version (`compare_version`, a published
    one, or `compare`, another draft)."""

    journey: JourneySpec
    """The version to try."""
    since: AwareDatetime
    """The range's start (events before it are not replayed), with its time zone."""
    until: AwareDatetime | None = None
    """The range's end; now by default. Enrollments still waiting then are reported so."""
    customers: list[CustomerIdText] | None = Field(default=None, max_length=10_000)
    """Only these customers' events; all by default."""
    sample: int | None = Field(default=None, ge=1, le=10_000_000)
    """At most this many customers (the first ones in a stable hash order: the same
    customers for both versions of a comparison and for a rerun)."""
    compare_version: int | None = Field(default=None, ge=1)
    """A published version of the same journey to backtest beside it."""
    compare: JourneySpec | None = None
    """Or another draft to backtest beside it."""

    @model_validator(mode="after")
    def _one_baseline(self) -> BacktestRequest:
        if self.compare is not None and self.compare_version is not None:
            raise ValueError("compare with a published version or with a draft, not both")
        until = self.until
        if until is not None and until <= self.since:
            raise ValueError("`until` must be after `since`")
        if until is not None and until - self.since > MAX_RANGE:
            raise ValueError(f"a backtest covers at most {MAX_RANGE.days} days")
        return self


class StepReport(Schema):
    """What one step would have seen."""

    id: str
    """The step's id."""
    type: str
    """The step's type."""
    reached: int = 0
    """Enrollments that entered it (once each, however often they looped)."""
    waiting: int = 0
    """Enrollments still there at the range's end."""
    sent: dict[str, int] = Field(default_factory=dict)
    """Messages sent, by channel."""
    suppressed: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Messages suppressed, by channel, then by reason (consent, capped, dry run...)."""
    held: dict[str, int] = Field(default_factory=dict)
    """Sends held before going (or being suppressed), by reason: quiet_hours, capped,
    best_time."""
    converted: int = 0
    """Enrollments that reached the goal while here."""
    exited: int = 0
    """Enrollments that left on an exit event while here."""
    completed: int = 0
    """Enrollments that ended here (an exit step)."""


class Frequency(Schema):
    """Messages per customer per week, against the deployment's cap."""

    mean: float
    """Across the customers with events in the range (those sent nothing count as 0)."""
    p50: float
    """The median customer's."""
    p95: float
    """The 95th percentile's."""
    max: float
    """The most messaged customer's."""
    cap: str | None
    """The deployment's tightest marketing cap, in words (None: no cap)."""
    over_cap: int
    """Customers whose weekly rate is above that cap's weekly rate."""


class TopCustomer(Schema):
    """One of the customers who would get the most messages."""

    customer_id: str
    """Their id (nothing else about them)."""
    messages: int
    """Messages they would get in the range."""


class BacktestReport(Schema):
    """What one journey version would have done over the range."""

    journey_id: str
    """The journey."""
    label: str
    """Which version: `draft`, or `v3`."""
    since: datetime
    """The range's start."""
    until: datetime
    """The range's end."""
    customers: int
    """Customers with events in the range (after the sample)."""
    events: int
    """Events replayed."""
    enrolled: int
    """Enrollments that would have started (re-entries count again)."""
    by_status: dict[str, int]
    """Enrollments by how they ended: completed, converted, exited, or waiting."""
    messages: dict[str, int]
    """Messages sent, by channel."""
    suppressed: int
    """Sends suppressed, all reasons."""
    conversion: float | None
    """Converted / enrolled; null when no one enrolled."""
    steps: list[StepReport]
    """Per step, in the spec's order."""
    per_week: Frequency
    """Messages per customer per week."""
    top_customers: list[TopCustomer]
    """The customers who would get the most messages (ids only)."""
    assumptions: list[str]
    """What the backtest assumed where the past cannot say (shown with every report)."""
    mermaid: str = ""
    """The journey's diagram drawn with these counts."""
    seconds: float = 0.0
    """How long the simulation took."""


class StepDifference(Schema):
    """One step's change: the candidate's figure minus the baseline's."""

    id: str
    """The step's id (in either version)."""
    reached: int
    """Enrollments reaching it."""
    sent: dict[str, int]
    """Messages sent, by channel."""
    converted: int
    """Conversions while there."""


class BacktestComparison(Schema):
    """`candidate` minus `baseline`, per step (steps of either) and in total."""

    baseline: BacktestReport
    """The version compared with (the published one, or the other draft)."""
    candidate: BacktestReport
    """The version under review."""
    steps: list[StepDifference]
    """Per step of either version, the candidate's first."""
    messages: dict[str, int]
    """Messages sent, by channel."""
    converted: int
    """Conversions in all."""


class BacktestJob(Schema):
    """A backtest run in the background: poll `GET /v1/journeys/backtests/{id}`."""

    id: str = Field(pattern=SLUG)
    """Poll it with `GET /v1/journeys/backtests/{id}`."""
    status: Literal["running", "done", "failed"]
    """Running, done (see `report`), or failed (see `error`)."""
    progress: float = 0.0
    """0 to 1: customers simulated so far."""
    report: BacktestReport | None = None
    """The version's report, once done."""
    comparison: BacktestComparison | None = None
    """With a version to compare with: both reports and their difference."""
    error: str | None = None
    """Why it failed."""
