"""How a journey version performs, step by step: what the funnel API, CLI and page show."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from journeys.schemas.base import Schema
from journeys.schemas.experiments import Experiment
from journeys.schemas.pace import QueueView


class StepReactions(Schema):
    """What became of a send step's messages: messages with each reaction (a repeat open
    of one message counts once), and rates over the messages sent."""

    delivered: int = 0
    """Messages the provider reported delivered."""
    opened: int = 0
    """Messages opened by a person (the pixel, the app)."""
    opened_machine: int = 0
    """Messages opened by a machine (a mail privacy proxy)."""
    clicked: int = 0
    """Messages with a person's click."""
    clicked_machine: int = 0
    """Messages with a link scanner's click."""
    bounced: int = 0
    """Messages that bounced (hard or soft)."""
    complained: int = 0
    """Messages reported as spam."""
    replied: int = 0
    """Messages answered (SMS, WhatsApp)."""
    unsubscribed: int = 0
    """Messages the customer unsubscribed from (a STOP reply, a provider's unsubscribe)."""
    dismissed: int = 0
    """In-app and push messages dismissed."""
    failed: int = 0
    """Messages the provider reported failed after taking them."""
    open_rate: float | None = None
    """opened / sent (people only)."""
    click_rate: float | None = None
    """clicked / sent (people only)."""
    bounce_rate: float | None = None
    """bounced / sent."""
    complaint_rate: float | None = None
    """complained / sent (Gmail and Yahoo want bulk senders under 0.003)."""

    def rated(self, sent: int) -> StepReactions:
        def rate(n: int) -> float | None:
            return round(n / sent, 4) if sent else None

        return self.model_copy(
            update={
                "open_rate": rate(self.opened),
                "click_rate": rate(self.clicked),
                "bounce_rate": rate(self.bounced),
                "complaint_rate": rate(self.complained),
            }
        )


class StepFunnel(Schema):
    id: str
    """The step."""
    type: str
    """Its type."""
    reached: int
    """Enrollments that reached the step at least once (at most `Funnel.unlisted` fewer
    than that, in journeys too long to list every step an enrollment reached)."""
    here: int
    """Enrollments at the step now (active or paused)."""
    sent: int = 0
    """Messages sent here."""
    suppressed: dict[str, int] = Field(default_factory=dict)
    """Sends suppressed, by reason (no consent, no address, frequency cap...)."""
    failed: int = 0
    """Sends that failed here."""
    deferred: int = 0
    """Sends waiting for quiet hours or a cap to free."""
    queued: int = 0
    """Sends waiting for their paced slot (a provider's ceiling, the journey's pace)."""
    unknown: int = 0
    """Sends whose last attempt timed out: the provider may or may not have them."""
    converted: int = 0
    """Enrollments that reached the journey's goal while at this step."""
    reactions: StepReactions | None = None
    """A send step's messages' reactions (none before any)."""
    ui_reached: str | None = None
    """The Temporal UI's list of the enrollments that reached this step."""
    ui_here: str | None = None
    """The Temporal UI's list of the enrollments at this step now (to act on them)."""


class ArmFunnel(Schema):
    split: str
    """The split step."""
    arm: str
    """The arm's name."""
    entered: int
    """Enrollments that took this arm."""
    converted: int
    """Of those, how many converted."""
    conversion: float | None
    """converted / entered; None before anyone entered the arm."""


class Funnel(Schema):
    journey_id: str
    """The journey."""
    name: str
    """Its name."""
    version: int
    """The version counted."""
    versions: list[int]
    """Every version of the journey."""
    counted_at: datetime | None = None
    """When these counts were taken: callers within a few seconds of each other share
    one count (a long journey's funnel is counted once, however many pages show it)."""
    entered: int
    """Enrollments into this version."""
    active: int
    """Running now."""
    paused: int
    """Held by an operator now."""
    completed: int
    """Ended at an exit step."""
    converted: int
    """Reached the goal."""
    exited: int
    """Left on an exit event or by an operator."""
    stopped: int = 0
    """Ended in Temporal outside the journey (terminated, timed out, failed): not here."""
    unlisted: int = 0
    """Enrollments that reached more steps than their `JourneyReached` list holds (2 KB):
    steps after the list is full are not counted in `reached` for them."""
    conversion: float | None
    """converted / entered; null before anyone entered."""
    steps: list[StepFunnel]
    """Counts per step."""
    arms: list[ArmFunnel]
    """Conversion per split arm (and per holdout group, as split `holdout`)."""
    experiments: list[Experiment] = Field(default_factory=list)
    """Each split's and the holdout's statistics: intervals, an always-valid p-value, the
    probability to be best and a sample-ratio check."""
    queues: list[QueueView] = Field(default_factory=list)
    """The send queues its sends wait in: its own pace's, and each provider's (read now,
    not with the counts)."""
    goal: str | None = None
    """The event that converts (the journey's goal), if it has one."""
    ui_entered: str | None = None
    """The Temporal UI's list of every enrollment of this version."""
    mermaid: str
    """The journey as a Mermaid flowchart, each step labelled with its live counts."""
