"""Starting audience entry runs, on request or on a Temporal Schedule kept in step with
the journey's latest version."""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from journeys.schemas.audience import AudienceProgress, AudienceRunInput, audience_run_id
from journeys.schemas.journey import JourneySpec
from journeys.workflows.audience import AudienceEntryWorkflow


def schedule_id(journey_id: str) -> str:
    return f"journey-schedule/{journey_id}"


def run_input(spec: JourneySpec, version: int, rate: float | None) -> AudienceRunInput:
    audience = spec.entry.audience
    assert audience is not None
    rate = rate or audience.rate_per_second
    # Pages of about two seconds of starts: progress moves at least that often.
    page_size = min(1000, max(20, int(rate * 2)))
    return AudienceRunInput(
        journey=spec, version=version, rate_per_second=rate, page_size=page_size
    )


async def start_run(
    client: Client, spec: JourneySpec, version: int, run: str, rate: float | None, task_queue: str
) -> WorkflowHandle[AudienceEntryWorkflow, AudienceProgress]:
    """Start the run `run`, or return the one of that name: a run is never repeated."""
    workflow_id = audience_run_id(spec.id, run)
    try:
        return await client.start_workflow(
            AudienceEntryWorkflow.run,
            run_input(spec, version, rate),
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Audience entry into {spec.name} (v{version}), run {run}",
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(workflow_id, result_type=AudienceProgress)


async def sync_schedule(client: Client, spec: JourneySpec, version: int, task_queue: str) -> None:
    """Create or update the journey's schedule for `version`, or delete it when the journey
    no longer has one. Each scheduled run's workflow id ends with its scheduled time."""
    handle = client.get_schedule_handle(schedule_id(spec.id))
    rule = spec.entry.schedule
    if rule is None:
        try:
            await handle.delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            AudienceEntryWorkflow.run,
            run_input(spec, version, None),
            id=audience_run_id(spec.id, "scheduled"),
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            cron_expressions=[rule.cron] if rule.cron else [],
            intervals=[ScheduleIntervalSpec(every=rule.every)] if rule.every else [],
            time_zone_name=rule.timezone,
        ),
    )
    try:
        await client.create_schedule(schedule_id(spec.id), schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
