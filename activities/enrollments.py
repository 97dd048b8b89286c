"""Starting an enrollment: the one place that turns (journey version, customer, trigger
event) into a `JourneyWorkflow` start, used by the event router and by audience entry."""

from __future__ import annotations

from typing import Literal

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from schemas.enrollment import EnrollmentInput, EnrollmentOptions, enrollment_workflow_id
from schemas.events import CustomerEvent
from schemas.journey import JourneySpec
from workflows import search_attributes as sa
from workflows.journey import JourneyWorkflow

REUSE = {
    "never": WorkflowIDReusePolicy.REJECT_DUPLICATE,
    "after_exit": WorkflowIDReusePolicy.ALLOW_DUPLICATE,
}


async def start_enrollment(
    client: Client,
    spec: JourneySpec,
    version: int,
    trigger: CustomerEvent,
    *,
    task_queue: str,
    options: EnrollmentOptions,
    deliver_to_running: bool = True,
    timezone: str | None = None,
) -> Literal["started", "running", "not_reentered"]:
    """Signal-with-start `journey/{id}/{customer}`: a running enrollment only receives the
    trigger (which it de-duplicates), so a repeated entry never makes a second one; an
    ended one is re-entered only as the journey's `reentry` allows. Says which happened.
    Without `deliver_to_running` (audience entry, whose trigger means nothing to a running
    enrollment) it is a plain start: one history event and one server call fewer."""
    entry = f"`{trigger.name}`" if spec.entry.event else "its audience"
    try:
        handle = await client.start_workflow(
            JourneyWorkflow.run,
            EnrollmentInput(
                journey=spec,
                version=version,
                customer_id=trigger.customer_id,
                trigger=trigger,
                options=options,
                timezone=timezone,
            ),
            id=enrollment_workflow_id(spec.id, trigger.customer_id),
            task_queue=task_queue,
            id_reuse_policy=REUSE[spec.reentry],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="event" if deliver_to_running else None,
            start_signal_args=[trigger] if deliver_to_running else [],
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.JOURNEY_ID, spec.id),
                    SearchAttributePair(sa.JOURNEY_VERSION, version),
                    SearchAttributePair(sa.CUSTOMER_ID, trigger.customer_id),
                    SearchAttributePair(sa.JOURNEY_STEP, spec.steps[0].id),
                    SearchAttributePair(sa.JOURNEY_STATUS, "active"),
                ]
            ),
            static_summary=f"{spec.name} (v{version}) for customer {trigger.customer_id}",
            static_details=f"Journey `{spec.id}` version {version}, entered on {entry}; "
            f"first step `{spec.steps[0].id}`.",
        )
    except WorkflowAlreadyStartedError:
        return "not_reentered"
    # The start's response says whether it started a run (the SDK keeps the response on
    # the handle but exposes no accessor for it yet).
    response = getattr(handle, "_start_workflow_response", None)
    return "running" if response is not None and not response.started else "started"
