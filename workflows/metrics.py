"""The journeys' own metrics, through the SDK's replay-safe metric meter: a replayed
workflow task counts nothing twice. Exported with the SDK's metrics (runtime/telemetry.py)."""

from __future__ import annotations

from temporalio import workflow


def count(name: str, description: str, **labels: str | int) -> None:
    counter = workflow.metric_meter().create_counter(name, description)
    counter.add(1, labels)


def enrolled(journey_id: str, version: int) -> None:
    count("journey_enrollments", "Enrollments started", journey=journey_id, version=version)


def ended(journey_id: str, version: int, status: str) -> None:
    count(
        "journey_enrollments_ended",
        "Enrollments ended, by status (completed, converted, exited)",
        journey=journey_id,
        version=version,
        status=status,
    )


def stepped(journey_id: str, step_id: str, step_type: str) -> None:
    count("journey_steps", "Steps entered", journey=journey_id, step=step_id, type=step_type)


def sent(journey_id: str, step_id: str, channel: str, status: str, reason: str | None) -> None:
    """Final send outcomes; suppressions keep their reason (a short code), failures don't
    (their reasons are free text)."""
    count(
        "journey_sends",
        "Send outcomes, suppressions by reason",
        journey=journey_id,
        step=step_id,
        channel=channel,
        status=status,
        reason=(reason or "") if status == "suppressed" else "",
    )
