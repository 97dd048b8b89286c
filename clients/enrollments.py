"""Client calls on enrollments: starting one (the one place that turns a journey version, a
customer and a trigger event into a `JourneyWorkflow` start, for the event router and for
audience entry), and `Enrollment`, a typed handle on one for its signal, updates and queries
(the API's controls and reads, the authors' testing kit)."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from journeys.schemas.enrollment import (
    Control,
    ControlRequest,
    EnrollmentInput,
    EnrollmentOptions,
    EnrollmentState,
    MigrateRequest,
    MigrationPlan,
    enrollment_workflow_id,
)
from journeys.schemas.events import CustomerEvent
from journeys.schemas.journey import JourneySpec
from journeys.workflows import search_attributes as sa
from journeys.workflows.journey import PATCH_SET, JourneyWorkflow

T = TypeVar("T")
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
                patch_set=PATCH_SET,
            ),
            id=enrollment_workflow_id(spec.id, trigger.customer_id),
            task_queue=task_queue,
            id_reuse_policy=REUSE[spec.reentry],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="event" if deliver_to_running else None,
            start_signal_args=[trigger] if deliver_to_running else [],
            search_attributes=sa.at_start(spec.id, version, trigger.customer_id, spec.steps[0].id),
            static_summary=f"{spec.name} (v{version}) for customer {trigger.customer_id}",
            static_details=f"Journey `{spec.id}` version {version}, entered on {entry}; "
            f"first step `{spec.steps[0].id}`.",
        )
    except WorkflowAlreadyStartedError:
        return "not_reentered"
    return "started" if started_a_run(handle) else "running"


def started_a_run(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether a signal-with-start (conflict policy USE_EXISTING) started a new run, or
    found one running. The start's response says so; the SDK keeps it on the handle but
    exposes no accessor for it yet (temporalio 1.2x), so this is the one place that reads
    the private field. Without it (a future SDK), "started" is the safe answer: a running
    enrollment de-duplicates the trigger either way."""
    response = getattr(handle, "_start_workflow_response", None)
    started = getattr(response, "started", True)
    return bool(started)


class Enrollment:
    """A typed handle on one customer's enrollment in one journey: the workflow's signal,
    updates and queries by method reference, never by string name."""

    def __init__(self, client: Client, workflow_id: str) -> None:
        self.handle = client.get_workflow_handle_for(JourneyWorkflow.run, workflow_id)

    @classmethod
    def of(cls, client: Client, journey_id: str, customer_id: str) -> Enrollment:
        return cls(client, enrollment_workflow_id(journey_id, customer_id))

    async def event(self, event: CustomerEvent) -> None:
        await self.handle.signal(JourneyWorkflow.event, event)

    async def state(self) -> EnrollmentState:
        return await self.handle.query(JourneyWorkflow.state)

    async def control(self, action: Control, request: ControlRequest) -> EnrollmentState:
        """pause, resume, skip or exit, as one validated update."""
        update = {
            "pause": JourneyWorkflow.pause,
            "resume": JourneyWorkflow.resume,
            "skip": JourneyWorkflow.skip,
            "exit": JourneyWorkflow.exit,
        }[action]
        return await self._update(update, request, EnrollmentState)

    async def migrate(self, request: MigrateRequest) -> MigrationPlan:
        return await self._update(JourneyWorkflow.migrate, request, MigrationPlan)

    async def _update(self, update: Any, request: Any, answer: type[T]) -> T:
        """An update by method reference. (The SDK's overloads type an async handler
        declared with `name=` as answering a coroutine, hence `answer`.)"""
        result: T = await self.handle.execute_update(update, request, result_type=answer)
        return result

    async def plan_migration(self, request: MigrateRequest) -> MigrationPlan:
        """`migrate`'s dry run: a query, so nothing is written to the history."""
        return await self.handle.query(JourneyWorkflow.plan_migration, request)

    async def result(self) -> EnrollmentState:
        return await self.handle.result()
