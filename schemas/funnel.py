"""How a journey version performs, step by step: what the funnel API, CLI and page show."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Schema


class StepFunnel(Schema):
    id: str
    type: str
    reached: int
    """Enrollments that reached the step at least once (at most `Funnel.unlisted` fewer
    than that, in journeys too long to list every step an enrollment reached)."""
    here: int
    """Enrollments at the step now (active or paused)."""
    sent: int = 0
    suppressed: dict[str, int] = Field(default_factory=dict)
    """Sends suppressed, by reason (no consent, no address, frequency cap...)."""
    failed: int = 0
    deferred: int = 0
    """Sends waiting for quiet hours or a cap to free."""


class ArmFunnel(Schema):
    split: str
    arm: str
    entered: int
    converted: int
    conversion: float | None
    """converted / entered; None before anyone entered the arm."""


class Funnel(Schema):
    journey_id: str
    name: str
    version: int
    versions: list[int]
    entered: int
    active: int
    paused: int
    completed: int
    converted: int
    exited: int
    stopped: int = 0
    """Ended in Temporal outside the journey (terminated, timed out, failed): not here."""
    unlisted: int = 0
    """Enrollments that reached more steps than their `JourneyReached` list holds (2 KB):
    steps after the list is full are not counted in `reached` for them."""
    conversion: float | None
    steps: list[StepFunnel]
    arms: list[ArmFunnel]
    mermaid: str
    """The journey as a Mermaid flowchart, each step labelled with its live counts."""
